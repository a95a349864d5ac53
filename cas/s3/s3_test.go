package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/castest"
	s3 "github.com/mlfs/mlfs/cas/s3"
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
	if err == nil || errors.Is(err, cas.ErrNotFound) {
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
