package limit_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/castest"
	"github.com/mlfs/mlfs/cas/limit"
	"github.com/mlfs/mlfs/cas/mem"
)

func TestConformance(t *testing.T) {
	var inner sync.Map // *limit.Store -> *mem.Store
	castest.Run(t, castest.Harness{
		New: func(t *testing.T) cas.Store {
			m := mem.New()
			s := limit.New(m, 2)
			inner.Store(s, m)
			return s
		},
		Corrupt: func(t *testing.T, s cas.Store, id cas.ID) {
			m, _ := inner.Load(s)
			m.(*mem.Store).Tamper(id, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
		},
	})
}

// gauge is a store that counts the calls in it at once, and keeps each a
// while so that they overlap.
type gauge struct {
	cas.Store
	now, peak atomic.Int32
}

func (g *gauge) enter() func() {
	n := g.now.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(time.Millisecond)
	return func() { g.now.Add(-1) }
}

func (g *gauge) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	defer g.enter()()
	return g.Store.Get(ctx, id)
}

func (g *gauge) Put(ctx context.Context, id cas.ID, data []byte) error {
	defer g.enter()()
	return g.Store.Put(ctx, id, data)
}

func (g *gauge) List(ctx context.Context, fn func(cas.ID, int64) error) error {
	defer g.enter()()
	return g.Store.List(ctx, fn)
}

func TestNeverMoreThanN(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{1, 3, 8} {
		g := &gauge{Store: mem.New()}
		s := limit.New(g, n)
		var wg sync.WaitGroup
		for i := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				data := []byte{byte(i)}
				id := cas.Sum(data)
				if err := s.Put(ctx, id, data); err != nil {
					t.Error(err)
				}
				if _, err := s.Get(ctx, id); err != nil {
					t.Error(err)
				}
				if err := s.List(ctx, func(cas.ID, int64) error { return nil }); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if p := g.peak.Load(); p > int32(n) {
			t.Fatalf("n = %d: %d calls in flight at once", n, p)
		}
		if p := g.peak.Load(); n > 1 && p < 2 {
			t.Fatalf("n = %d: calls never overlapped (peak %d); the test proves nothing", n, p)
		}
	}
}

func TestWaitHonoursContext(t *testing.T) {
	s := limit.New(mem.New(), 1)
	inList := make(chan struct{})
	done := make(chan struct{})
	id := cas.Sum([]byte("x"))
	if err := s.Put(context.Background(), id, []byte("x")); err != nil {
		t.Fatal(err)
	}
	go func() {
		// Holds the only slot until done is closed.
		s.List(context.Background(), func(cas.ID, int64) error {
			close(inList)
			<-done
			return nil
		})
	}()
	<-inList
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Get(ctx, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get while the slot is taken: %v", err)
	}
	close(done)
	if _, err := s.Get(context.Background(), id); err != nil {
		t.Fatalf("get after the slot is free: %v", err)
	}
}
