package azure_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/azure"
	"github.com/mlfs/mlfs/cas/castest"
	"github.com/mlfs/mlfs/internal/emulators"
)

const prefix = "team/mlfs"

// open returns the store under prefix in a new container of srv.
func open(t *testing.T, srv emulators.AzureServer, prefix string) *azure.Store {
	t.Helper()
	s, err := azure.Open(context.Background(), azure.Options{
		Container: srv.NewContainer(t), Prefix: prefix, Client: srv.Client(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rawGet(t *testing.T, c *azblob.Client, container, key string) []byte {
	t.Helper()
	resp, err := c.DownloadStream(context.Background(), container, key, nil)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rawPut(t *testing.T, c *azblob.Client, container, key string, data []byte) {
	t.Helper()
	if _, err := c.UploadBuffer(context.Background(), container, key, data, nil); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func harness(newStore func(t *testing.T) cas.Store) castest.Harness {
	return castest.Harness{
		New: newStore,
		Corrupt: func(t *testing.T, cs cas.Store, id cas.ID) {
			s := cs.(*azure.Store)
			key := s.ObjectKey(id)
			b := rawGet(t, s.Client(), s.Container(), key)
			b[len(b)/2] ^= 1
			rawPut(t, s.Client(), s.Container(), key, b)
		},
		Reopen: func(t *testing.T, cs cas.Store) cas.Store {
			s := cs.(*azure.Store)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return azure.New(s.Client(), s.Container(), s.Prefix())
		},
	}
}

// One Azurite serves the whole suite; each store gets a container of its
// own.
func TestConformance(t *testing.T) {
	srv := emulators.Azure(t)
	castest.Run(t, harness(func(t *testing.T) cas.Store {
		return open(t, srv, prefix)
	}))
}

// Without a prefix, and with a client that Open builds from the
// connection string in Options.
func TestConformanceOpenedFromOptions(t *testing.T) {
	srv := emulators.Azure(t)
	castest.Run(t, harness(func(t *testing.T) cas.Store {
		s, err := azure.Open(context.Background(), azure.Options{
			Container: srv.NewContainer(t), ConnectionString: srv.ConnectionString,
		})
		if err != nil {
			t.Fatal(err)
		}
		if s.Prefix() != "" {
			t.Fatalf("prefix %q", s.Prefix())
		}
		return s
	}))
}

func TestLayout(t *testing.T) {
	ctx := context.Background()
	srv := emulators.Azure(t)
	s := open(t, srv, "/"+prefix+"/")
	data := []byte("hello, container")
	id := cas.Sum(data)
	if err := s.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRef(ctx, "iris/v1", id); err != nil {
		t.Fatal(err)
	}
	h := id.String()
	if got := rawGet(t, s.Client(), s.Container(), prefix+"/objects/"+h[:2]+"/"+h); string(got) != string(data) {
		t.Fatalf("object blob holds %q", got)
	}
	if got := rawGet(t, s.Client(), s.Container(), prefix+"/refs/iris/v1"); string(got) != h+"\n" {
		t.Fatalf("ref blob holds %q", got)
	}
	if want := "az://" + s.Container() + "/" + prefix; s.String() != want {
		t.Fatalf("String() = %q, want %q", s.String(), want)
	}
}

// Azurite must honour If-None-Match: * for the ref race to mean anything:
// check it directly, then race sixteen creators on one name, five times.
func TestConditionalCreate(t *testing.T) {
	ctx := context.Background()
	srv := emulators.Azure(t)
	s := open(t, srv, prefix)
	put := func() error {
		_, err := s.Client().UploadBuffer(ctx, s.Container(), "cond", []byte("x"), &blockblob.UploadBufferOptions{
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
		})
		return err
	}
	if err := put(); err != nil {
		t.Fatalf("first conditional put: %v", err)
	}
	err := put()
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusConflict && re.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("second conditional put: %v; want HTTP 409 or 412", err)
	}

	const n = 16
	where := s.String() + ": create ref "
	for round := 0; round < 5; round++ {
		name := "race/v" + strconv.Itoa(round)
		var wins, winner atomic.Int32
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
				case !strings.Contains(err.Error(), where+name):
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
	srv := emulators.Azure(t)
	s := open(t, srv, prefix)
	id := cas.Sum([]byte("absent"))
	_, err := s.Get(ctx, id)
	want := s.String() + ": get " + id.Short() + ": "
	if !errors.Is(err, cas.ErrNotFound) || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Get: %v; want ErrNotFound and prefix %q", err, want)
	}
	if _, err := s.GetRef(ctx, "no/such"); !errors.Is(err, cas.ErrNotFound) || !strings.Contains(err.Error(), s.String()+": get ref no/such") {
		t.Fatalf("GetRef: %v", err)
	}

	// A missing container is an error, and not ErrNotFound: neither for
	// Open nor for a store made without asking.
	_, oerr := azure.Open(ctx, azure.Options{Container: "no-such-container", ConnectionString: srv.ConnectionString})
	if oerr == nil || errors.Is(oerr, cas.ErrNotFound) || azure.Denied(oerr) ||
		!strings.HasPrefix(oerr.Error(), "az://no-such-container/: open: no such container, or credentials it does not accept: ") ||
		!strings.Contains(oerr.Error(), "AZURE_STORAGE_CONNECTION_STRING") {
		t.Fatalf("Open of a missing container: %v", oerr)
	}
	gone := azure.New(s.Client(), "no-such-container", "")
	_, gerr := gone.Get(ctx, id)
	if gerr == nil || errors.Is(gerr, cas.ErrNotFound) {
		t.Fatalf("Get in a missing container: %v", gerr)
	}
	_, serr := gone.Stat(ctx, id)
	if serr == nil || errors.Is(serr, cas.ErrNotFound) {
		t.Fatalf("Stat in a missing container: %v", serr)
	}

	// A wrong key is refused with a clear, one-line error that does not
	// show the key, and is not worth retrying.
	wrongKey := "d3Jvbmcta2V5LWZvci10ZXN0cy1vbmx5LXdyb25nLWtleQ=="
	cs := strings.Replace(srv.ConnectionString, emulators.AzureKey, wrongKey, 1)
	_, aerr := azure.Open(ctx, azure.Options{Container: s.Container(), ConnectionString: cs})
	if aerr == nil || !strings.Contains(aerr.Error(), "403") || strings.Contains(aerr.Error(), "\n") || azure.Transient(aerr) ||
		!azure.Denied(aerr) || !strings.Contains(aerr.Error(), ": open: refused: check the credentials (AZURE_STORAGE_CONNECTION_STRING") {
		t.Fatalf("Open with a wrong key: %v", aerr)
	}
	// So is a request of a store made without asking.
	bad, err := azblob.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, derr := azure.New(bad, s.Container(), prefix).Get(ctx, id)
	if derr == nil || !azure.Denied(derr) || !strings.Contains(derr.Error(), ": get "+id.Short()+": refused: check the credentials (") {
		t.Fatalf("Get with a wrong key: %v", derr)
	}
	for _, e := range []error{oerr, gerr, serr, aerr, derr} {
		if msg := e.Error(); strings.Contains(msg, wrongKey) || strings.Contains(msg, emulators.AzureKey) {
			t.Fatalf("error shows a key: %s", msg)
		}
	}
	if _, err := azure.Open(ctx, azure.Options{}); err == nil {
		t.Fatal("Open without a container succeeded")
	}
}

// Open finds the account in the environment: a connection string, or an
// account name with its shared key.
func TestOpenFromEnvironment(t *testing.T) {
	ctx := context.Background()
	srv := emulators.Azure(t)
	c := srv.NewContainer(t)
	t.Setenv("AZURE_STORAGE_ACCOUNT", "")
	t.Setenv("AZURE_STORAGE_KEY", "")

	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", srv.ConnectionString)
	if _, err := azure.Open(ctx, azure.Options{Container: c}); err != nil {
		t.Fatalf("with AZURE_STORAGE_CONNECTION_STRING: %v", err)
	}

	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", "")
	t.Setenv("AZURE_STORAGE_ACCOUNT", emulators.AzureAccount)
	t.Setenv("AZURE_STORAGE_KEY", emulators.AzureKey)
	s, err := azure.Open(ctx, azure.Options{Container: c, Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatalf("with AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY: %v", err)
	}
	data := []byte("signed with the shared key")
	if err := s.Put(ctx, cas.Sum(data), data); err != nil {
		t.Fatal(err)
	}

	// Without a key the requests go unsigned, which Azurite refuses.
	t.Setenv("AZURE_STORAGE_KEY", "")
	if _, err := azure.Open(ctx, azure.Options{Container: c, Endpoint: srv.Endpoint}); err == nil {
		t.Fatal("unsigned Open of a private container succeeded")
	}
	t.Setenv("AZURE_STORAGE_ACCOUNT", "")
	if _, err := azure.Open(ctx, azure.Options{Container: c}); err == nil || !strings.Contains(err.Error(), "no account") {
		t.Fatalf("Open with no account anywhere: %v", err)
	}
}

// Blobs under objects/ that are not objects are not listed.
func TestListIgnoresStrayKeys(t *testing.T) {
	ctx := context.Background()
	srv := emulators.Azure(t)
	s := open(t, srv, prefix)
	data := []byte("real")
	id := cas.Sum(data)
	if err := s.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	h := id.String()
	for _, k := range []string{"objects/zz/" + h, "objects/" + h, "objects/" + h[:2] + "/" + h + ".tmp", "objects/" + h[:2] + "/notes"} {
		rawPut(t, s.Client(), s.Container(), prefix+"/"+k, []byte("x"))
	}
	var got []cas.ID
	if err := s.List(ctx, func(id cas.ID, _ int64) error { got = append(got, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != id {
		t.Fatalf("listed %v", got)
	}
}

// Two stores under different prefixes of one container do not see each
// other.
func TestPrefixesAreSeparate(t *testing.T) {
	ctx := context.Background()
	srv := emulators.Azure(t)
	a := open(t, srv, "a")
	b := azure.New(a.Client(), a.Container(), "b")
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

// cutter is a proxy in front of Azurite that cuts the body of every
// download after keep bytes. With fixLength it also lowers Content-Length
// to match, so the cut looks like a whole answer to the HTTP client.
type cutter struct {
	keep      int64
	fixLength bool
}

func (c cutter) start(t *testing.T, endpoint string) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = ""
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method != http.MethodGet || r.StatusCode/100 != 2 || r.ContentLength <= c.keep {
			return nil
		}
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(r.Body, c.keep), r.Body}
		if c.fixLength {
			r.ContentLength = c.keep
			r.Header.Set("Content-Length", strconv.FormatInt(c.keep, 10))
		}
		return nil
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL + "/" + emulators.AzureAccount + "/"
}

// A body cut short is an error from Get and GetRange, never fewer bytes;
// and when the connection broke, one worth retrying.
func TestTruncatedBody(t *testing.T) {
	ctx := context.Background()
	srv := emulators.Azure(t)
	s := open(t, srv, prefix)
	data := bytes.Repeat([]byte("0123456789"), 1000)
	id := cas.Sum(data)
	if err := s.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	for _, fix := range []bool{false, true} {
		t.Run(fmt.Sprintf("fixLength=%v", fix), func(t *testing.T) {
			endpoint := cutter{keep: 100, fixLength: fix}.start(t, srv.Endpoint)
			cs := strings.Replace(srv.ConnectionString, srv.Endpoint, endpoint, 1)
			c, err := azblob.NewClientFromConnectionString(cs, nil)
			if err != nil {
				t.Fatal(err)
			}
			cut := azure.New(c, s.Container(), s.Prefix())
			for _, r := range []struct{ off, length int64 }{{0, 500}, {10, -1}, {9000, 5000}, {0, -1}} {
				b, err := cut.GetRange(ctx, id, r.off, r.length)
				if err == nil {
					t.Errorf("GetRange(%d, %d) through a cut body: %d bytes, no error", r.off, r.length, len(b))
				} else if !fix && !azure.Transient(err) {
					t.Errorf("GetRange(%d, %d): %v; want a transient error", r.off, r.length, err)
				}
			}
			if b, err := cut.Get(ctx, id); err == nil {
				t.Errorf("Get through a cut body: %d bytes, no error", len(b))
			}
			// Short enough answers pass untouched.
			if b, err := cut.GetRange(ctx, id, 20, 50); err != nil || !bytes.Equal(b, data[20:70]) {
				t.Errorf("GetRange(20, 50) through the proxy: %v", err)
			}
		})
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestTransient(t *testing.T) {
	status := func(code int) error {
		return fmt.Errorf("az://c/p: get x: %w", &azcore.ResponseError{StatusCode: code})
	}
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{status(408), true}, {status(429), true}, {status(500), true},
		{status(502), true}, {status(503), true}, {status(504), true},
		{status(400), false}, {status(401), false}, {status(403), false},
		{status(404), false}, {status(409), false}, {status(412), false}, {status(416), false},
		{fmt.Errorf("x: %w", cas.ErrNotFound), false},
		{fmt.Errorf("x: %w", cas.ErrExists), false},
		{fmt.Errorf("x: %w", cas.ErrCorrupt), false},
		{fmt.Errorf("x: %w", cas.ErrRange), false},
		{context.Canceled, false},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{&url.Error{Op: "Get", URL: "http://h/", Err: &net.OpError{Op: "read", Err: syscall.ECONNRESET}}, true},
		{&url.Error{Op: "Get", URL: "http://h/", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, true},
		{&url.Error{Op: "Get", URL: "http://h/", Err: io.EOF}, true},
		{fmt.Errorf("x: %w", io.ErrUnexpectedEOF), true},
		{&url.Error{Op: "Get", URL: "http://h/", Err: timeoutError{}}, true},
		{errors.New("something else"), false},
	}
	for _, c := range cases {
		if got := azure.Transient(c.err); got != c.want {
			t.Errorf("Transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}

	// A real refused connection, through the SDK (which retries first).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/" + emulators.AzureAccount + "/"
	l.Close()
	c, err := azblob.NewClientWithNoCredential(dead+"?sv=2020-01-01&sig=SECRETSIG", &azblob.ClientOptions{
		ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = azure.New(c, "c", "").Stat(context.Background(), cas.Sum(nil))
	if !azure.Transient(err) || errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("Stat against a closed port: %v; want a transient error", err)
	}
	if strings.Contains(err.Error(), "SECRETSIG") {
		t.Fatalf("error shows the SAS token: %v", err)
	}
}
