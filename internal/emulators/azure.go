package emulators

import (
	"context"
	"strconv"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// Azurite's well-known development account; its key is public.
const (
	AzureAccount = "devstoreaccount1"
	AzureKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// AzureServer is a running Azurite blob service. It checks shared-key
// signatures against AzureKey.
type AzureServer struct {
	// Endpoint is the account's blob endpoint,
	// "http://127.0.0.1:port/devstoreaccount1/".
	Endpoint string
	// ConnectionString names the endpoint, AzureAccount and AzureKey.
	ConnectionString string
}

// Azure starts azurite-blob for the test; see the package documentation.
func Azure(t testing.TB) AzureServer {
	t.Helper()
	bin := find(t, "azurite-blob", "azurite/node_modules/.bin/azurite-blob")
	port := start(t, spec{
		name: "azurite-blob",
		bin:  bin,
		args: func(port int, dir string) []string {
			return []string{
				"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
				"--location", dir, "--loose", "--skipApiVersionCheck", "--disableTelemetry", "--silent",
			}
		},
		probe: "/" + AzureAccount + "?comp=list",
	})
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port) + "/" + AzureAccount + "/"
	return AzureServer{
		Endpoint: endpoint,
		ConnectionString: "DefaultEndpointsProtocol=http;AccountName=" + AzureAccount +
			";AccountKey=" + AzureKey + ";BlobEndpoint=" + endpoint + ";",
	}
}

// Client returns an azblob client for the server, signing with AzureKey.
func (s AzureServer) Client(t testing.TB) *azblob.Client {
	t.Helper()
	c, err := azblob.NewClientFromConnectionString(s.ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewContainer creates a container with a random name and returns the
// name.
func (s AzureServer) NewContainer(t testing.TB) string {
	t.Helper()
	name := RandomName()
	if _, err := s.Client(t).CreateContainer(context.Background(), name, nil); err != nil {
		t.Fatalf("azurite: create container %s: %v", name, err)
	}
	return name
}
