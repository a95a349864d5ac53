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

func gcsSpec(bin string) spec {
	return spec{
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
	}
}

func gcsServer(port int) GCSServer {
	host := "127.0.0.1:" + strconv.Itoa(port)
	return GCSServer{Endpoint: "http://" + host + "/storage/v1/", Host: host}
}

// GCS starts fake-gcs-server for the test; see the package documentation.
func GCS(t testing.TB) GCSServer {
	t.Helper()
	bin := find(t, "fake-gcs-server", "bin/fake-gcs-server")
	return gcsServer(start(t, gcsSpec(bin)))
}

// newClient returns a GCS client for the server's JSON API.
func (s GCSServer) newClient(ctx context.Context) (*storage.Client, error) {
	return storage.NewClient(ctx,
		option.WithEndpoint(s.Endpoint),
		option.WithoutAuthentication(),
		storage.WithJSONReads(),
	)
}

// Client returns a GCS client for the server's JSON API; the test closes
// it.
func (s GCSServer) Client(t testing.TB) *storage.Client {
	t.Helper()
	c, err := s.newClient(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// CreateBucket creates a bucket.
func (s GCSServer) CreateBucket(ctx context.Context, name string) error {
	c, err := s.newClient(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Bucket(name).Create(ctx, "mlfs-test", nil)
}

// NewBucket creates a bucket with a random name and returns the name.
func (s GCSServer) NewBucket(t testing.TB) string {
	t.Helper()
	name := RandomName()
	if err := s.CreateBucket(context.Background(), name); err != nil {
		t.Fatalf("fake-gcs-server: create bucket %s: %v", name, err)
	}
	return name
}

// Env is what the GCS SDK reads to reach the server instead of Google's.
func (s GCSServer) Env() []string {
	return []string{"STORAGE_EMULATOR_HOST=" + s.Host}
}
