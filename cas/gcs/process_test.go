package gcs_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/storage"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/castest"
	"github.com/mlfs/mlfs/cas/gcs"
	"github.com/mlfs/mlfs/internal/emulators"
)

// The tests below run the store against fake-gcs-server as a separate
// process, as a user would run it.

// With STORAGE_EMULATOR_HOST and a client made the default way, as the
// SDK's documentation says to use an emulator. Its reads go to the XML API
// at the public host, which the server answers because it was started with
// -public-host set to the same address.
func TestFakeGCSServerConformance(t *testing.T) {
	srv := emulators.GCS(t)
	t.Setenv("STORAGE_EMULATOR_HOST", srv.Host)
	c, err := storage.NewClient(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	castest.Run(t, processHarness(func(t *testing.T) cas.Store {
		return openIn(t, c, srv.NewBucket(t), prefix)
	}, func(t *testing.T, s *gcs.Store) cas.Store {
		return gcs.New(s.Client(), s.Bucket(), s.Prefix())
	}))
}

// Without a prefix, with a client that Open builds from Options.Endpoint
// (JSON reads), and that Close closes.
func TestFakeGCSServerConformanceOpenedFromOptions(t *testing.T) {
	srv := emulators.GCS(t)
	openOpts := func(t *testing.T, bucket string) *gcs.Store {
		s, err := gcs.Open(context.Background(), gcs.Options{Bucket: bucket, Endpoint: srv.Endpoint})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	castest.Run(t, processHarness(func(t *testing.T) cas.Store {
		return openOpts(t, srv.NewBucket(t))
	}, func(t *testing.T, s *gcs.Store) cas.Store {
		return openOpts(t, s.Bucket())
	}))
}

func TestFakeGCSServerConditionalCreate(t *testing.T) {
	srv := emulators.GCS(t)
	s := openIn(t, srv.Client(t), srv.NewBucket(t), prefix)
	raceRefs(t, s, s.String())
}

// processHarness is harness with a bucket per store, where harness knows
// only the one named bucket.
func processHarness(newStore func(t *testing.T) cas.Store, reopen func(t *testing.T, s *gcs.Store) cas.Store) castest.Harness {
	h := harness(newStore, reopen)
	h.Corrupt = func(t *testing.T, cs cas.Store, id cas.ID) {
		s := cs.(*gcs.Store)
		ctx := context.Background()
		obj := s.Client().Bucket(s.Bucket()).Object(s.ObjectKey(id))
		r, err := obj.NewReader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 1
		w := obj.NewWriter(ctx)
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func openIn(t *testing.T, c *storage.Client, bucket, prefix string) *gcs.Store {
	t.Helper()
	s, err := gcs.Open(context.Background(), gcs.Options{Bucket: bucket, Prefix: prefix, Client: c})
	if err != nil {
		t.Fatal(err)
	}
	return s
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
