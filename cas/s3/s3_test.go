package s3_test

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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/castest"
	"github.com/mlfs/mlfs/cas/retry"
	s3 "github.com/mlfs/mlfs/cas/s3"
	"github.com/mlfs/mlfs/internal/faultproxy"
)

const (
	bucket = "mlfs"
	prefix = "team/mlfs"
	// Fake credentials for the in-process server, which does not check
	// them; the tests below make sure they never show up in errors.
	keyID  = "AKIDTESTONLY"
	secret = "s3cr3t-test-only"
)

// server starts an in-memory S3 on 127.0.0.1 with the bucket created.
func server(t *testing.T, tls bool) (*httptest.Server, *s3sdk.Client) {
	t.Helper()
	faker := gofakes3.New(s3mem.New(), gofakes3.WithLogger(gofakes3.DiscardLog()))
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(faker.Server())
	} else {
		srv = httptest.NewServer(faker.Server())
	}
	t.Cleanup(srv.Close)
	client := s3sdk.New(s3sdk.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(keyID, secret, ""),
		HTTPClient:   srv.Client(),
	})
	if _, err := client.CreateBucket(context.Background(), &s3sdk.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	return srv, client
}

func open(t *testing.T, client *s3sdk.Client, prefix string) *s3.Store {
	t.Helper()
	s, err := s3.Open(context.Background(), s3.Options{Bucket: bucket, Prefix: prefix, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func harness(newStore func(t *testing.T) cas.Store) castest.Harness {
	return castest.Harness{
		New: newStore,
		Corrupt: func(t *testing.T, cs cas.Store, id cas.ID) {
			s := cs.(*s3.Store)
			ctx := context.Background()
			key := s.ObjectKey(id)
			out, err := s.Client().GetObject(ctx, &s3sdk.GetObjectInput{Bucket: aws.String(s.Bucket()), Key: &key})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 1
			if _, err := s.Client().PutObject(ctx, &s3sdk.PutObjectInput{
				Bucket: aws.String(s.Bucket()), Key: &key, Body: bytes.NewReader(b),
			}); err != nil {
				t.Fatal(err)
			}
		},
		Reopen: func(t *testing.T, cs cas.Store) cas.Store {
			s := cs.(*s3.Store)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return s3.New(s.Client(), s.Bucket(), s.Prefix())
		},
	}
}

func TestConformance(t *testing.T) {
	castest.Run(t, harness(func(t *testing.T) cas.Store {
		_, client := server(t, false)
		return open(t, client, prefix)
	}))
}

// Without a prefix, and with a client that Open builds from Options.
func TestConformanceOpenedFromOptions(t *testing.T) {
	castest.Run(t, harness(func(t *testing.T) cas.Store {
		srv, _ := server(t, false)
		s, err := s3.Open(context.Background(), s3.Options{
			Bucket:      bucket,
			Endpoint:    srv.URL,
			PathStyle:   true,
			Credentials: credentials.NewStaticCredentialsProvider(keyID, secret, ""),
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

// Over TLS, as against real S3, the SDK signs PutObject with
// UNSIGNED-PAYLOAD instead of the body's SHA-256, a different request shape.
func TestConformanceTLS(t *testing.T) {
	castest.Run(t, harness(func(t *testing.T) cas.Store {
		_, client := server(t, true)
		return open(t, client, "/"+prefix+"/")
	}))
}

func rawGet(t *testing.T, client *s3sdk.Client, key string) string {
	t.Helper()
	out, err := client.GetObject(context.Background(), &s3sdk.GetObjectInput{Bucket: aws.String(bucket), Key: &key})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLayout(t *testing.T) {
	ctx := context.Background()
	_, client := server(t, false)
	s := open(t, client, "/"+prefix+"/")
	data := []byte("hello, bucket")
	id := cas.Sum(data)
	if err := s.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRef(ctx, "iris/v1", id); err != nil {
		t.Fatal(err)
	}
	h := id.String()
	if got := rawGet(t, client, prefix+"/objects/"+h[:2]+"/"+h); got != string(data) {
		t.Fatalf("object key holds %q", got)
	}
	if got := rawGet(t, client, prefix+"/refs/iris/v1"); got != h+"\n" {
		t.Fatalf("ref key holds %q", got)
	}
	if s.String() != "s3://mlfs/team/mlfs" {
		t.Fatalf("String() = %q", s.String())
	}
}

// The fake server must honour If-None-Match: * for the ref race to mean
// anything: check it directly, then race sixteen creators on one name.
func TestConditionalCreate(t *testing.T) {
	ctx := context.Background()
	_, client := server(t, false)
	put := func() error {
		_, err := client.PutObject(ctx, &s3sdk.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String("cond"),
			Body: strings.NewReader("x"), IfNoneMatch: aws.String("*"),
		})
		return err
	}
	if err := put(); err != nil {
		t.Fatalf("first conditional put: %v", err)
	}
	err := put()
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusPreconditionFailed {
		t.Fatalf("second conditional put: %v; want HTTP 412", err)
	}

	s := open(t, client, prefix)
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
				case !strings.Contains(err.Error(), "s3://mlfs/team/mlfs: create ref "+name):
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
	srv, client := server(t, false)
	s := open(t, client, prefix)
	id := cas.Sum([]byte("absent"))
	_, err := s.Get(ctx, id)
	want := "s3://mlfs/team/mlfs: get " + id.Short() + ": "
	if !errors.Is(err, cas.ErrNotFound) || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Get: %v; want ErrNotFound and prefix %q", err, want)
	}
	if _, err := s.GetRef(ctx, "no/such"); !errors.Is(err, cas.ErrNotFound) || !strings.Contains(err.Error(), "s3://mlfs/team/mlfs: get ref no/such") {
		t.Fatalf("GetRef: %v", err)
	}

	// A missing bucket is an error, and not ErrNotFound; no credential
	// appears in any message.
	_, err = s3.Open(ctx, s3.Options{
		Bucket: "no-such-bucket", Endpoint: srv.URL, PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(keyID, secret, ""),
	})
	if err == nil || errors.Is(err, cas.ErrNotFound) || s3.Denied(err) ||
		!strings.HasPrefix(err.Error(), "s3://no-such-bucket/: open: no such bucket, or credentials it does not accept: ") {
		t.Fatalf("Open of a missing bucket: %v", err)
	}
	gone := s3.New(client, "no-such-bucket", "")
	_, gerr := gone.Get(ctx, id)
	if gerr == nil || errors.Is(gerr, cas.ErrNotFound) {
		t.Fatalf("Get in a missing bucket: %v", gerr)
	}
	for _, e := range []error{err, gerr} {
		if msg := e.Error(); strings.Contains(msg, secret) || strings.Contains(msg, keyID) {
			t.Fatalf("error shows a credential: %s", msg)
		}
	}
	if _, err := s3.Open(ctx, s3.Options{}); err == nil {
		t.Fatal("Open without a bucket succeeded")
	}
}

// Keys under objects/ that are not objects are not listed.
func TestListIgnoresStrayKeys(t *testing.T) {
	ctx := context.Background()
	_, client := server(t, false)
	s := open(t, client, prefix)
	data := []byte("real")
	id := cas.Sum(data)
	if err := s.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	h := id.String()
	for _, k := range []string{"objects/zz/" + h, "objects/" + h, "objects/" + h[:2] + "/" + h + ".tmp", "objects/" + h[:2] + "/notes"} {
		if _, err := client.PutObject(ctx, &s3sdk.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(prefix + "/" + k), Body: strings.NewReader("x"),
		}); err != nil {
			t.Fatal(err)
		}
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
	_, client := server(t, false)
	a, b := open(t, client, "a"), open(t, client, "b")
	id := cas.Sum([]byte("only in a"))
	if err := a.Put(ctx, id, []byte("only in a")); err != nil {
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

func TestTransient(t *testing.T) {
	status := func(code int) error {
		return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}},
			Err:      errors.New("api error"),
		}}
	}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"SlowDown", &smithy.GenericAPIError{Code: "SlowDown"}, true},
		{"RequestTimeout", &smithy.GenericAPIError{Code: "RequestTimeout"}, true},
		{"InternalError", &smithy.GenericAPIError{Code: "InternalError"}, true},
		{"503", status(503), true},
		{"500", status(500), true},
		{"429", status(429), true},
		{"408", status(408), true},
		{"501", status(501), false},
		{"403", status(403), false},
		{"400", status(400), false},
		{"AccessDenied", &smithy.GenericAPIError{Code: "AccessDenied"}, false},
		{"reset", fmt.Errorf("get: %w", reset), true},
		{"send", &smithyhttp.RequestSendError{Err: errors.New("dial tcp: connection refused")}, true},
		{"short body", fmt.Errorf("get: %w", io.ErrUnexpectedEOF), true},
		{"checksum", errors.New("checksum did not match: algorithm CRC32, expect x, actual y"), true},
		{"timeout", context.DeadlineExceeded, true},
		{"canceled", &smithyhttp.RequestSendError{Err: context.Canceled}, false},
		{"not found", fmt.Errorf("get: %w", cas.ErrNotFound), false},
		{"exists", fmt.Errorf("create: %w", cas.ErrExists), false},
		{"corrupt", fmt.Errorf("get: %w", cas.ErrCorrupt), false},
		{"range", fmt.Errorf("get: %w", cas.ErrRange), false},
		{"other", errors.New("bad ref name"), false},
		{"nil", nil, false},
	} {
		if got := s3.Transient(c.err); got != c.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

// proxied starts an in-memory S3 behind a fault proxy, and opens a store
// through the proxy with a client that Open builds, as in production.
// Faults are off until the caller enables them.
func proxied(t *testing.T, plan faultproxy.Plan, o s3.Options) (*faultproxy.Proxy, *s3.Store) {
	t.Helper()
	srv, _ := server(t, false)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := faultproxy.New(u, plan)
	proxy.SetEnabled(false)
	psrv := httptest.NewServer(proxy)
	t.Cleanup(psrv.Close)
	t.Cleanup(proxy.Close) // first: ends stalls that psrv.Close would wait for
	o.Bucket, o.Prefix, o.Endpoint, o.PathStyle = bucket, prefix, psrv.URL, true
	o.Credentials = credentials.NewStaticCredentialsProvider(keyID, secret, "")
	s, err := s3.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
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

// chaosOptions are cas/retry's options for the tests through the proxy: a
// short AttemptTimeout, so that stalls cost little, and short backoffs.
func chaosOptions() retry.Options {
	return retry.Options{
		Transient:      s3.Transient,
		MaxAttempts:    8,
		BaseDelay:      2 * time.Millisecond,
		MaxDelay:       50 * time.Millisecond,
		AttemptTimeout: time.Second,
	}
}

// opDeadline is the longest a call with o may take: every attempt timing
// out, every backoff at its longest, and slack for a loaded machine.
func opDeadline(o retry.Options) time.Duration {
	return time.Duration(o.MaxAttempts)*(o.AttemptTimeout+o.MaxDelay) + 5*time.Second
}

// With a quarter of all requests broken in every way the proxy knows, a
// stream of Puts, Gets, GetRanges and CreateRefs through cas/retry ends
// each call in time with the right bytes or an error, never a wrong byte;
// once the faults stop, everything reported done is there.
func TestChaos(t *testing.T) {
	proxy, bare := proxied(t, faultproxy.Plan{
		Seed: 1, Error: 0.07, Reset: 0.07, Stall: 0.03, Truncate: 0.08, StallFor: time.Minute,
	}, s3.Options{})
	o := chaosOptions()
	s := retry.New(bare, o)
	deadline := opDeadline(o)
	proxy.SetEnabled(true)

	type object struct {
		id   cas.ID
		data []byte
	}
	var (
		mu      sync.Mutex
		stored  []object              // Put returned nil
		refs    = map[string]cas.ID{} // CreateRef returned nil
		ok, bad atomic.Int32
	)
	timed := func(t *testing.T, what string, f func() error) error {
		start := time.Now()
		err := f()
		if d := time.Since(start); d > deadline {
			t.Errorf("%s took %v, more than %v", what, d, deadline)
		}
		if err != nil {
			bad.Add(1)
		} else {
			ok.Add(1)
		}
		return err
	}

	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for i := range 12 {
				data := randomObject(rng)
				id := cas.Sum(data)
				if timed(t, "put", func() error { return s.Put(ctx, id, data) }) == nil {
					mu.Lock()
					stored = append(stored, object{id, data})
					mu.Unlock()
				}
				var got []byte
				err := timed(t, "get", func() (err error) { got, err = s.Get(ctx, id); return err })
				if err == nil && !bytes.Equal(got, data) {
					t.Errorf("get of %d bytes: wrong bytes", len(data))
				}
				off := rng.Int64N(int64(len(data)) + 1)
				length := rng.Int64N(int64(len(data))+10) - 5
				err = timed(t, "get range", func() (err error) { got, err = s.GetRange(ctx, id, off, length); return err })
				if err == nil {
					lo, hi, _ := cas.ClampRange(id, int64(len(data)), off, length)
					if !bytes.Equal(got, data[lo:hi]) {
						t.Errorf("GetRange(%d, %d) of %d bytes: %d wrong bytes", off, length, len(data), len(got))
					}
				}
				name := fmt.Sprintf("chaos/w%d/v%d", w, i)
				err = timed(t, "create ref", func() error { return s.CreateRef(ctx, name, id) })
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
	t.Logf("%d calls ok, %d failed; proxy %+v", ok.Load(), bad.Load(), st)
	if st.Errors == 0 || st.Resets == 0 || st.Stalls == 0 || st.Truncations == 0 {
		t.Errorf("some kind of fault was never injected: %+v", st)
	}
	if ok.Load() < 9*(ok.Load()+bad.Load())/10 {
		t.Errorf("only %d of %d calls succeeded: retrying does not work", ok.Load(), ok.Load()+bad.Load())
	}

	proxy.SetEnabled(false)
	for _, obj := range stored {
		if got, err := bare.Get(ctx, obj.id); err != nil || !bytes.Equal(got, obj.data) {
			t.Errorf("stored object %s: %v", obj.id.Short(), err)
		}
	}
	for name, id := range refs {
		if got, err := bare.GetRef(ctx, name); err != nil || got != id {
			t.Errorf("ref %s: %v", name, err)
		}
	}
}

// With every request broken, reads fail, each within its deadline.
func TestAllRequestsFail(t *testing.T) {
	proxy, bare := proxied(t, faultproxy.Plan{
		Seed: 2, Error: 0.25, Reset: 0.25, Stall: 0.25, Truncate: 0.25, StallFor: time.Minute,
	}, s3.Options{})
	o := chaosOptions()
	o.MaxAttempts, o.AttemptTimeout = 3, 300*time.Millisecond
	s := retry.New(bare, o)
	ctx := context.Background()
	data := bytes.Repeat([]byte("all fail "), 1000)
	id := cas.Sum(data)
	if err := s.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRef(ctx, "all/v1", id); err != nil {
		t.Fatal(err)
	}
	proxy.SetEnabled(true)
	deadline := opDeadline(o)
	for i := range 4 {
		for _, c := range []struct {
			name string
			read func() error
		}{
			{"get", func() error { _, err := s.Get(ctx, id); return err }},
			{"get range", func() error { _, err := s.GetRange(ctx, id, 10, 100); return err }},
			{"get ref", func() error { _, err := s.GetRef(ctx, "all/v1"); return err }},
		} {
			start := time.Now()
			err := c.read()
			if err == nil {
				t.Fatalf("%s %d succeeded through a proxy that breaks every request", c.name, i)
			}
			if d := time.Since(start); d > deadline {
				t.Fatalf("%s %d failed after %v, more than %v: %v", c.name, i, d, deadline, err)
			}
		}
	}
}

// A stalled answer is cut by AttemptTimeout and the request sent again.
func TestStallCutByAttemptTimeout(t *testing.T) {
	var gets atomic.Int32
	proxy, bare := proxied(t, faultproxy.Plan{
		StallFor: time.Minute,
		Rule: func(r *http.Request, _ int) faultproxy.Fault {
			if r.Method == http.MethodGet && gets.Add(1) == 1 {
				return faultproxy.Stall
			}
			return faultproxy.None
		},
	}, s3.Options{})
	o := chaosOptions()
	o.AttemptTimeout = 300 * time.Millisecond
	s := retry.New(bare, o)
	ctx := context.Background()
	data := []byte("stalled once")
	id := cas.Sum(data)
	if err := s.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	proxy.SetEnabled(true)
	start := time.Now()
	if got, err := s.Get(ctx, id); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get after a stall: %v", err)
	}
	if d := time.Since(start); d < o.AttemptTimeout || d > 10*time.Second {
		t.Fatalf("get with one stalled attempt took %v", d)
	}
	if st := proxy.Stats(); st.Stalls != 1 {
		t.Fatalf("stats %+v", st)
	}

	// Every attempt stalled: the error says so.
	proxy.SetPlan(faultproxy.Plan{Stall: 1, StallFor: time.Minute})
	o.MaxAttempts = 2
	s = retry.New(bare, o)
	if _, err := s.Get(ctx, id); !errors.Is(err, retry.ErrAttemptTimeout) || !strings.Contains(err.Error(), "gave up after 2 attempts") {
		t.Fatalf("get with every attempt stalled: %v", err)
	}
}

// The client Open builds makes one attempt per request unless asked for
// the SDK's retries; a cut body is an error, never short data.
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
		}}, s3.Options{SDKRetries: sdkRetries})
		if err := s.Put(ctx, id, data); err != nil {
			t.Fatal(err)
		}
		proxy.SetEnabled(true)
		_, err := s.Get(ctx, id)
		if sdkRetries != (err == nil) {
			t.Fatalf("SDKRetries %v: get after one 503: %v", sdkRetries, err)
		}
		if err != nil && !s3.Transient(err) {
			t.Fatalf("503 SlowDown is not transient: %v", err)
		}
	}

	proxy, s := proxied(t, faultproxy.Plan{Truncate: 1}, s3.Options{})
	if err := s.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	proxy.SetEnabled(true)
	if _, err := s.Get(ctx, id); err == nil || !s3.Transient(err) {
		t.Fatalf("get of a cut body: %v; want a transient error", err)
	}
	if b, err := s.GetRange(ctx, id, 100, 5000); err == nil || !s3.Transient(err) {
		t.Fatalf("range of a cut body: %d bytes, %v; want a transient error", len(b), err)
	}
}

// A server whose ranged answers are short but consistent in themselves
// (Content-Length matches the body) is caught by the Content-Range check.
func TestShortRangeDetected(t *testing.T) {
	faker := gofakes3.New(s3mem.New(), gofakes3.WithLogger(gofakes3.DiscardLog()))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.Header.Get("Range") == "" {
			faker.Server().ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		faker.Server().ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		body = body[:len(body)/2]
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	client := s3sdk.New(s3sdk.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(keyID, secret, ""),
	})
	ctx := context.Background()
	if _, err := client.CreateBucket(ctx, &s3sdk.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	s := open(t, client, prefix)
	data := bytes.Repeat([]byte("0123456789"), 100)
	id := cas.Sum(data)
	if err := s.Put(ctx, id, data); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{0, 100}, {900, -1}, {500, 1000}} {
		if b, err := s.GetRange(ctx, id, r[0], r[1]); err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("GetRange(%d, %d) of a short answer: %d bytes, %v", r[0], r[1], len(b), err)
		}
	}
}
