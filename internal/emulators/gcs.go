package emulators

import (
	"context"
	"strconv"
	"testing"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
)

// GCSServer is a running fake-gcs-server.
type GCSServer struct {
	// Endpoint is the JSON API's base URL,
	// "http://127.0.0.1:port/storage/v1/", for option.WithEndpoint.
	Endpoint string
	// Host is "127.0.0.1:port", for STORAGE_EMULATOR_HOST. The server
	// calls itself by that name (-public-host), so the SDK's XML reads,
	// which go to the public host, reach it too.
	Host string
}

// GCS starts fake-gcs-server for the test; see the package documentation.
func GCS(t testing.TB) GCSServer {
	t.Helper()
	bin := find(t, "fake-gcs-server", "bin/fake-gcs-server")
	port := start(t, spec{
		name: "fake-gcs-server",
		bin:  bin,
		args: func(port int, dir string) []string {
			host := "127.0.0.1:" + strconv.Itoa(port)
			return []string{
				"-scheme", "http", "-host", "127.0.0.1", "-port", strconv.Itoa(port),
				"-public-host", host, "-external-url", "http://" + host,
				"-backend", "filesystem", "-filesystem-root", dir,
				"-log-level", "warn",
			}
		},
		probe: "/storage/v1/b",
	})
	host := "127.0.0.1:" + strconv.Itoa(port)
	return GCSServer{Endpoint: "http://" + host + "/storage/v1/", Host: host}
}

// Client returns a GCS client for the server's JSON API; the test closes
// it.
func (s GCSServer) Client(t testing.TB) *storage.Client {
	t.Helper()
	c, err := storage.NewClient(context.Background(),
		option.WithEndpoint(s.Endpoint),
		option.WithoutAuthentication(),
		storage.WithJSONReads(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// NewBucket creates a bucket with a random name and returns the name.
func (s GCSServer) NewBucket(t testing.TB) string {
	t.Helper()
	name := RandomName()
	if err := s.Client(t).Bucket(name).Create(context.Background(), "mlfs-test", nil); err != nil {
		t.Fatalf("fake-gcs-server: create bucket %s: %v", name, err)
	}
	return name
}
