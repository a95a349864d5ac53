package gcs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/castest"
	"github.com/mlfs/mlfs/cas/gcs"
	"github.com/mlfs/mlfs/cas/retry"
	"github.com/mlfs/mlfs/internal/faultproxy"
)

const (
	bucket = "mlfs"
	prefix = "team/mlfs"
)

// server starts an in-memory GCS on 127.0.0.1 with the bucket created, and
// returns its JSON API endpoint.
func server(t *testing.T) (*fakestorage.Server, string) {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:     "http",
		Host:       "127.0.0.1",
		Port:       0,
		NoListener: false,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Fatalf("fake server listens at %s, want 127.0.0.1", srv.URL())
	}
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	return srv, srv.URL() + "/storage/v1/"
}

// client talks to the fake server at endpoint. Reads use the JSON API: the
// default XML reads go to the public host, which the emulator does not
// match, and fail with "object doesn't exist".
func client(t *testing.T, endpoint string) *storage.Client {
	t.Helper()
	c, err := storage.NewClient(context.Background(),
		option.WithEndpoint(endpoint),
		option.WithoutAuthentication(),
		storage.WithJSONReads(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func open(t *testing.T, c *storage.Client, prefix string) *gcs.Store {
	t.Helper()
	s, err := gcs.Open(context.Background(), gcs.Options{Bucket: bucket, Prefix: prefix, Client: c})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rawGet(t *testing.T, c *storage.Client, key string) []byte {
	t.Helper()
	r, err := c.Bucket(bucket).Object(key).NewReader(context.Background())
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rawPut(t *testing.T, c *storage.Client, key string, data []byte) {
	t.Helper()
	w := c.Bucket(bucket).Object(key).NewWriter(context.Background())
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func harness(newStore func(t *testing.T) cas.Store, reopen func(t *testing.T, s *gcs.Store) cas.Store) castest.Harness {
	return castest.Harness{
		New: newStore,
		Corrupt: func(t *testing.T, cs cas.Store, id cas.ID) {
			s := cs.(*gcs.Store)
			// Behind the store's back, through its client.
			key := s.ObjectKey(id)
			b := rawGet(t, s.Client(), key)
			b[len(b)/2] ^= 1
			rawPut(t, s.Client(), key, b)
		},
		Reopen: func(t *testing.T, cs cas.Store) cas.Store {
			s := cs.(*gcs.Store)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return reopen(t, s)
		},
	}
}

func TestConformance(t *testing.T) {
	castest.Run(t, harness(func(t *testing.T) cas.Store {
		_, endpoint := server(t)
		return open(t, client(t, endpoint), prefix)
	}, func(t *testing.T, s *gcs.Store) cas.Store {
		return gcs.New(s.Client(), s.Bucket(), s.Prefix())
	}))
}

// Without a prefix, and with a client that Open builds from Options (and
// Close closes, so Reopen opens again from the same Options).
func TestConformanceOpenedFromOptions(t *testing.T) {
	var endpoints sync.Map // *gcs.Store -> endpoint
	openOpts := func(t *testing.T, endpoint string) *gcs.Store {
		s, err := gcs.Open(context.Background(), gcs.Options{Bucket: bucket, Endpoint: endpoint})
		if err != nil {
			t.Fatal(err)
		}
		if s.Prefix() != "" {
			t.Fatalf("prefix %q", s.Prefix())
		}
		endpoints.Store(s, endpoint)
		return s
	}
	castest.Run(t, harness(func(t *testing.T) cas.Store {
		_, endpoint := server(t)
		return openOpts(t, endpoint)
	}, func(t *testing.T, s *gcs.Store) cas.Store {
		e, _ := endpoints.Load(s)
		return openOpts(t, e.(string))
	}))
}

func TestLayout(t *testing.T) {
	ctx := context.Background()
	_, endpoint := server(t)
	c := client(t, endpoint)
	s := open(t, c, "/"+prefix+"/")
	data := []byte("hello, bucket")
	id := cas.Sum(data)
	if err := s.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRef(ctx, "iris/v1", id); err != nil {
		t.Fatal(err)
	}
	h := id.String()
	if got := rawGet(t, c, prefix+"/objects/"+h[:2]+"/"+h); string(got) != string(data) {
		t.Fatalf("object holds %q", got)
	}
	if got := rawGet(t, c, prefix+"/refs/iris/v1"); string(got) != h+"\n" {
		t.Fatalf("ref holds %q", got)
	}
	if s.String() != "gs://mlfs/team/mlfs" {
		t.Fatalf("String() = %q", s.String())
	}
}

// The fake server must honour the DoesNotExist condition for the ref race
// to mean anything: check it directly, then race sixteen creators on one
// name, five times.
func TestConditionalCreate(t *testing.T) {
	ctx := context.Background()
	_, endpoint := server(t)
	c := client(t, endpoint)
	put := func() error {
		w := c.Bucket(bucket).Object("cond").If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
		if _, err := w.Write([]byte("x")); err != nil {
			return err
		}
		return w.Close()
	}
	if err := put(); err != nil {
		t.Fatalf("first conditional write: %v", err)
	}
	err := put()
	var ge *googleapi.Error
	if !errors.As(err, &ge) || ge.Code != http.StatusPreconditionFailed {
		t.Fatalf("second conditional write: %v; want HTTP 412", err)
	}

	s := open(t, c, prefix)
	const n = 16
	for round := 0; round < 5; round++ {
		name := "race/v" + string(rune('0'+round))
		var wins atomic.Int32
		var winner atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				err := s.CreateRef(ctx, name, cas.Sum([]byte{byte(i)}))
				switch {
				case err == nil:
					wins.Add(1)
					winner.Store(int32(i))
				case !errors.Is(err, cas.ErrExists):
					t.Errorf("creator %d: %v", i, err)
				case !strings.Contains(err.Error(), "gs://mlfs/team/mlfs: create ref "+name):
					t.Errorf("creator %d: error %q does not name the store and ref", i, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d creators won, want exactly 1", round, wins.Load())
		}
		got, err := s.GetRef(ctx, name)
		if err != nil || got != cas.Sum([]byte{byte(winner.Load())}) {
			t.Fatalf("round %d: ref does not point at the winner's id: %v", round, err)
		}
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	_, endpoint := server(t)
	c := client(t, endpoint)
	s := open(t, c, prefix)
	id := cas.Sum([]byte("absent"))
	_, err := s.Get(ctx, id)
	want := "gs://mlfs/team/mlfs: get " + id.Short() + ": "
	if !errors.Is(err, cas.ErrNotFound) || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Get: %v; want ErrNotFound and prefix %q", err, want)
	}
	if _, err := s.Stat(ctx, id); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("Stat: %v", err)
	}
	if _, err := s.GetRange(ctx, id, 0, 10); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("GetRange: %v", err)
	}
	if _, err := s.GetRef(ctx, "no/such"); !errors.Is(err, cas.ErrNotFound) || !strings.Contains(err.Error(), "gs://mlfs/team/mlfs: get ref no/such") {
		t.Fatalf("GetRef: %v", err)
	}

	// A missing bucket is an error, and not ErrNotFound.
	_, err = gcs.Open(ctx, gcs.Options{Bucket: "no-such-bucket", Endpoint: endpoint})
	if err == nil || errors.Is(err, cas.ErrNotFound) || gcs.Denied(err) ||
		!strings.HasPrefix(err.Error(), "gs://no-such-bucket/: open: no such bucket, or credentials it does not accept: ") ||
		!strings.Contains(err.Error(), "GOOGLE_APPLICATION_CREDENTIALS") {
		t.Fatalf("Open of a missing bucket: %v", err)
	}

	// A refusal (401, 403) points at the credentials, and is not worth
	// another try.
	for _, code := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		deny := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"error": {"code": %d, "message": "denied"}}`, code)
		}))
		_, err := gcs.Open(ctx, gcs.Options{Bucket: "bkt", Endpoint: deny.URL + "/storage/v1/"})
		deny.Close()
		if err == nil || !gcs.Denied(err) || gcs.Transient(err) ||
			!strings.HasPrefix(err.Error(), "gs://bkt/: open: refused: check the credentials (GOOGLE_APPLICATION_CREDENTIALS") {
			t.Fatalf("Open refused with %d: %v", code, err)
		}
	}
	if _, err := gcs.Open(ctx, gcs.Options{}); err == nil {
		t.Fatal("Open without a bucket succeeded")
	}
}

// Names under objects/ that are not objects are not listed.
func TestListIgnoresStrayKeys(t *testing.T) {
	ctx := context.Background()
	_, endpoint := server(t)
	c := client(t, endpoint)
	s := open(t, c, prefix)
	data := []byte("real")
	id := cas.Sum(data)
	if err := s.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	h := id.String()
	for _, k := range []string{"objects/zz/" + h, "objects/" + h, "objects/" + h[:2] + "/" + h + ".tmp", "objects/" + h[:2] + "/notes"} {
		rawPut(t, c, prefix+"/"+k, []byte("x"))
	}
	var got []cas.ID
	if err := s.List(ctx, func(id cas.ID, _ int64) error { got = append(got, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != id {
		t.Fatalf("listed %v", got)
	}
}

// Two stores under different prefixes of one bucket do not see each other.
func TestPrefixesAreSeparate(t *testing.T) {
	ctx := context.Background()
	_, endpoint := server(t)
	c := client(t, endpoint)
	a, b := open(t, c, "a"), open(t, c, "b")
	data := []byte("only in a")
	id := cas.Sum(data)
	if err := a.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateRef(ctx, "x/v1", id); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, id); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("b sees a's object: %v", err)
	}
	if err := b.CreateRef(ctx, "x/v1", id); err != nil {
		t.Fatalf("b's ref collides with a's: %v", err)
	}
}

// Putting an id that exists leaves the stored object alone.
func TestPutExistingIsNoOp(t *testing.T) {
	ctx := context.Background()
	_, endpoint := server(t)
	c := client(t, endpoint)
	s := open(t, c, prefix)
	data := []byte("once")
	id := cas.Sum(data)
	if err := s.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	before, err := c.Bucket(bucket).Object(s.ObjectKey(id)).Attrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	after, err := c.Bucket(bucket).Object(s.ObjectKey(id)).Attrs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != before.Generation {
		t.Fatalf("second Put rewrote the object: generation %d, then %d", before.Generation, after.Generation)
	}
	if got := rawGet(t, c, s.ObjectKey(id)); !bytes.Equal(got, data) {
		t.Fatalf("object holds %q", got)
	}
}

func TestTransient(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"503", &googleapi.Error{Code: 503}, true},
		{"500", fmt.Errorf("put: %w", &googleapi.Error{Code: 500}), true},
		{"429", &googleapi.Error{Code: 429}, true},
		{"408", &googleapi.Error{Code: 408}, true},
		{"501", &googleapi.Error{Code: 501}, false},
		{"403", &googleapi.Error{Code: 403}, false},
		{"412", &googleapi.Error{Code: 412}, false},
		{"grpc unavailable", status.Error(codes.Unavailable, "down"), true},
		{"grpc permission", status.Error(codes.PermissionDenied, "no"), false},
		{"reset", fmt.Errorf("get: %w", reset), true},
		{"short body", fmt.Errorf("get: %w", io.ErrUnexpectedEOF), true},
		{"timeout", context.DeadlineExceeded, true},
		{"canceled", fmt.Errorf("get: %w", context.Canceled), false},
		{"not found", fmt.Errorf("get: %w", cas.ErrNotFound), false},
		{"exists", fmt.Errorf("create: %w", cas.ErrExists), false},
		{"corrupt", fmt.Errorf("get: %w", cas.ErrCorrupt), false},
		{"range", fmt.Errorf("get: %w", cas.ErrRange), false},
		{"other", errors.New("bad ref name"), false},
		{"nil", nil, false},
	} {
		if got := gcs.Transient(c.err); got != c.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

// proxied starts an in-memory GCS behind a fault proxy, and opens a store
// through the proxy with a client that Open builds, as in production.
// Faults are off until the caller enables them.
func proxied(t *testing.T, plan faultproxy.Plan, o gcs.Options) (*faultproxy.Proxy, *gcs.Store) {
	t.Helper()
	srv, _ := server(t)
	u, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if plan.ErrorResponse == nil {
		plan.ErrorResponse = faultproxy.GCSUnavailable
	}
	proxy := faultproxy.New(u, plan)
	proxy.SetEnabled(false)
	psrv := httptest.NewServer(proxy)
	t.Cleanup(psrv.Close)
	t.Cleanup(proxy.Close) // first: ends stalls that psrv.Close would wait for
	o.Bucket, o.Prefix, o.Endpoint = bucket, prefix, psrv.URL+"/storage/v1/"
	s, err := gcs.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return proxy, s
}

// randomObject returns mostly small objects and some of a few MiB.
func randomObject(rng *rand.Rand) []byte {
	n := rng.IntN(64 << 10)
	if rng.IntN(4) == 0 {
		n = rng.IntN(3 << 20)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// As cas/s3's TestChaos: a quarter of all requests broken, and through
// cas/retry every call ends in time with the right bytes or an error.
func TestChaos(t *testing.T) {
	proxy, bare := proxied(t, faultproxy.Plan{
		Seed: 1, Error: 0.06, Reset: 0.06, Stall: 0.03, Truncate: 0.1, StallFor: time.Minute,
	}, gcs.Options{})
	o := retry.Options{
		Transient:      gcs.Transient,
		MaxAttempts:    8,
		BaseDelay:      2 * time.Millisecond,
		MaxDelay:       50 * time.Millisecond,
		AttemptTimeout: time.Second,
	}
	s := retry.New(bare, o)
	deadline := time.Duration(o.MaxAttempts)*(o.AttemptTimeout+o.MaxDelay) + 5*time.Second
	proxy.SetEnabled(true)

	ctx := context.Background()
	var ok, failed atomic.Int32
	timed := func(what string, f func() error) error {
		start := time.Now()
		err := f()
		if d := time.Since(start); d > deadline {
			t.Errorf("%s took %v, more than %v", what, d, deadline)
		}
		if err != nil {
			failed.Add(1)
		} else {
			ok.Add(1)
		}
		return err
	}
	var mu sync.Mutex
	stored := map[cas.ID][]byte{}
	refs := map[string]cas.ID{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 8 {
				data := randomObject(rng)
				id := cas.Sum(data)
				if timed("put", func() error { return s.Put(ctx, id, data) }) == nil {
					mu.Lock()
					stored[id] = data
					mu.Unlock()
				}
				var got []byte
				if timed("get", func() (err error) { got, err = s.Get(ctx, id); return err }) == nil && !bytes.Equal(got, data) {
					t.Errorf("get of %d bytes: wrong bytes", len(data))
				}
				off := rng.Int64N(int64(len(data)) + 1)
				length := rng.Int64N(int64(len(data))+10) - 5
				if timed("get range", func() (err error) { got, err = s.GetRange(ctx, id, off, length); return err }) == nil {
					lo, hi, _ := cas.ClampRange(id, int64(len(data)), off, length)
					if !bytes.Equal(got, data[lo:hi]) {
						t.Errorf("GetRange(%d, %d) of %d bytes: %d wrong bytes", off, length, len(data), len(got))
					}
				}
				name := fmt.Sprintf("chaos/w%d/v%d", w, i)
				err := timed("create ref", func() error { return s.CreateRef(ctx, name, id) })
				switch {
				case err == nil:
					mu.Lock()
					refs[name] = id
					mu.Unlock()
				case errors.Is(err, cas.ErrExists):
					t.Errorf("CreateRef of a new name lost to itself: %v", err)
				}
			}
		}()
	}
	wg.Wait()

	st := proxy.Stats()
	t.Logf("%d calls ok, %d failed; proxy %+v", ok.Load(), failed.Load(), st)
	if st.Errors == 0 || st.Resets == 0 || st.Stalls == 0 || st.Truncations == 0 {
		t.Errorf("some kind of fault was never injected: %+v", st)
	}
	if ok.Load() < 9*(ok.Load()+failed.Load())/10 {
		t.Errorf("only %d of %d calls succeeded: retrying does not work", ok.Load(), ok.Load()+failed.Load())
	}
	proxy.SetEnabled(false)
	for id, data := range stored {
		if got, err := bare.Get(ctx, id); err != nil || !bytes.Equal(got, data) {
			t.Errorf("stored object %s: %v", id.Short(), err)
		}
	}
	for name, id := range refs {
		if got, err := bare.GetRef(ctx, name); err != nil || got != id {
			t.Errorf("ref %s: %v", name, err)
		}
	}
}

// The client Open builds makes one attempt per request unless asked for
// the SDK's retries; a cut body is never short data.
func TestBareStore(t *testing.T) {
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789"), 1000)
	id := cas.Sum(data)
	for _, sdkRetries := range []bool{false, true} {
		proxy, s := proxied(t, faultproxy.Plan{Rule: func(r *http.Request, n int) faultproxy.Fault {
			if n == 1 {
				return faultproxy.Error
			}
			return faultproxy.None
		}}, gcs.Options{SDKRetries: sdkRetries})
		if err := s.Put(ctx, id, data); err != nil {
			t.Fatal(err)
		}
		proxy.SetEnabled(true)
		_, err := s.Stat(ctx, id)
		if sdkRetries != (err == nil) {
			t.Fatalf("SDKRetries %v: stat after one 503: %v", sdkRetries, err)
		}
		if err != nil && !gcs.Transient(err) {
			t.Fatalf("503 is not transient: %v", err)
		}
	}

	// The SDK's reader resumes a cut download with a ranged read of the
	// rest, so a cut body may yet give the right bytes; what it must not
	// give is fewer.
	proxy, s := proxied(t, faultproxy.Plan{Truncate: 1}, gcs.Options{})
	if err := s.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	proxy.SetEnabled(true)
	if got, err := s.Get(ctx, id); err == nil && !bytes.Equal(got, data) {
		t.Fatalf("get of a cut body: wrong bytes")
	} else if err != nil && !gcs.Transient(err) {
		t.Fatalf("get of a cut body: %v; want a transient error", err)
	}
	if got, err := s.GetRange(ctx, id, 100, 5000); err == nil && !bytes.Equal(got, data[100:5100]) {
		t.Fatalf("range of a cut body: %d wrong bytes", len(got))
	} else if err != nil && !gcs.Transient(err) {
		t.Fatalf("range of a cut body: %v; want a transient error", err)
	}
	if st := proxy.Stats(); st.Truncations == 0 {
		t.Fatalf("nothing truncated: %+v", st)
	}
}
