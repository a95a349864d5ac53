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

func azureSpec(bin string) spec {
	return spec{
		name: "azurite-blob",
		bin:  bin,
		args: func(port int, dir string) []string {
			return []string{
				"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
				"--location", dir, "--loose", "--skipApiVersionCheck", "--disableTelemetry", "--silent",
			}
		},
		probe: "/" + AzureAccount + "?comp=list",
	}
}

func azureServer(port int) AzureServer {
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port) + "/" + AzureAccount + "/"
	return AzureServer{
		Endpoint: endpoint,
		ConnectionString: "DefaultEndpointsProtocol=http;AccountName=" + AzureAccount +
			";AccountKey=" + AzureKey + ";BlobEndpoint=" + endpoint + ";",
	}
}

// Azure starts azurite-blob for the test; see the package documentation.
func Azure(t testing.TB) AzureServer {
	t.Helper()
	bin := find(t, "azurite-blob", "azurite/node_modules/.bin/azurite-blob")
	return azureServer(start(t, azureSpec(bin)))
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

// CreateContainer creates a container.
func (s AzureServer) CreateContainer(ctx context.Context, name string) error {
	c, err := azblob.NewClientFromConnectionString(s.ConnectionString, nil)
	if err != nil {
		return err
	}
	_, err = c.CreateContainer(ctx, name, nil)
	return err
}

// NewContainer creates a container with a random name and returns the
// name.
func (s AzureServer) NewContainer(t testing.TB) string {
	t.Helper()
	name := RandomName()
	if err := s.CreateContainer(context.Background(), name); err != nil {
		t.Fatalf("azurite: create container %s: %v", name, err)
	}
	return name
}

// Env is what mlfs's Azure backend reads to reach the server: the
// connection string (with the public development key).
func (s AzureServer) Env() []string {
	return []string{"AZURE_STORAGE_CONNECTION_STRING=" + s.ConnectionString}
}
