package s3_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/castest"
	s3 "github.com/mlfs/mlfs/cas/s3"
	"github.com/mlfs/mlfs/internal/emulators"
)

// The tests below run the store against versitygw as a separate process,
// as a user would run it. Unlike the in-process server, versitygw checks
// every request's signature.

func TestVersitygwConformance(t *testing.T) {
	srv := emulators.S3(t)
	client := srv.Client()
	castest.Run(t, harness(func(t *testing.T) cas.Store {
		s, err := s3.Open(context.Background(), s3.Options{Bucket: srv.NewBucket(t), Prefix: prefix, Client: client})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}))
}

// Without a prefix, with a client that Open builds from Options and the
// keys in the environment.
func TestVersitygwConformanceOpenedFromOptions(t *testing.T) {
	srv := emulators.S3(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	castest.Run(t, harness(func(t *testing.T) cas.Store {
		s, err := s3.Open(context.Background(), s3.Options{
			Bucket: srv.NewBucket(t), Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}))
}

func TestVersitygwConditionalCreate(t *testing.T) {
	srv := emulators.S3(t)
	s, err := s3.Open(context.Background(), s3.Options{Bucket: srv.NewBucket(t), Prefix: prefix, Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	raceRefs(t, s, s.String())
}

// A wrong secret key is refused with an error that says so and shows
// neither key.
func TestVersitygwWrongSecret(t *testing.T) {
	ctx := context.Background()
	srv := emulators.S3(t)
	bucket := srv.NewBucket(t)
	wrong := "wrong-" + srv.SecretKey
	_, err := s3.Open(ctx, s3.Options{
		Bucket: bucket, Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, wrong, ""),
	})
	if err == nil {
		t.Fatal("Open with a wrong secret key succeeded")
	}
	msg := err.Error()
	t.Logf("error: %s", msg)
	if !strings.HasPrefix(msg, "s3://"+bucket+"/: open: ") || !strings.Contains(msg, "403") {
		t.Fatalf("error %q does not name the bucket and HTTP 403", msg)
	}
	// It says what to check, and names the store once.
	if !strings.Contains(msg, "refused: check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ") ||
		!strings.Contains(msg, "AWS_PROFILE") || strings.Count(msg, bucket) != 1 || !s3.Denied(err) || s3.Transient(err) {
		t.Fatalf("error %q does not point at the credentials", msg)
	}
	if strings.Contains(msg, wrong) || strings.Contains(msg, srv.SecretKey) {
		t.Fatalf("error shows the secret key: %s", msg)
	}

	// A request with a body to answer says why.
	bad := s3sdk.New(srv.Client().Options(), func(o *s3sdk.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(srv.AccessKey, wrong, "")
	})
	_, err = s3.New(bad, bucket, "").Get(ctx, cas.Sum([]byte("x")))
	if err == nil || errors.Is(err, cas.ErrNotFound) || !strings.Contains(err.Error(), "SignatureDoesNotMatch") ||
		!strings.Contains(err.Error(), "check the credentials (AWS_ACCESS_KEY_ID") {
		t.Fatalf("Get with a wrong secret key: %v; want SignatureDoesNotMatch and a hint", err)
	}
	t.Logf("error: %s", err)
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), srv.SecretKey) {
		t.Fatalf("error shows the secret key: %s", err)
	}

	// An unknown access key is refused as well.
	_, err = s3.Open(ctx, s3.Options{
		Bucket: bucket, Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDUNKNOWN", srv.SecretKey, ""),
	})
	if err == nil || strings.Contains(err.Error(), srv.SecretKey) {
		t.Fatalf("Open with an unknown access key: %v", err)
	}
	// versitygw answers 404 for it, which must not read as a missing
	// bucket only.
	t.Logf("error: %s", err)
	if !strings.Contains(err.Error(), "no such bucket, or credentials it does not accept: ") ||
		!strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("Open with an unknown access key: %v; want a hint at the credentials", err)
	}
}

// raceRefs races sixteen creators on one ref name, five times: exactly one
// must win each round, and the losers get cas.ErrExists naming the store.
func raceRefs(t *testing.T, s cas.Store, where string) {
	t.Helper()
	ctx := context.Background()
	const n = 16
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
				case !strings.Contains(err.Error(), where+": create ref "+name):
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
