package cache_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/cache"
)

// prefetching is a source that can prefetch, and records what it was asked.
type prefetching struct {
	*counting
	mu    sync.Mutex
	asked []cas.ID
}

func (s *prefetching) Prefetch(ctx context.Context, ids []cas.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, ids...)
	return nil
}

// Prefetch passes to the source only what is not cached, and is a no-op
// over a source that cannot prefetch.
func TestPrefetchPassesMisses(t *testing.T) {
	ctx := context.Background()
	src := &prefetching{counting: newCounting()}
	var ids []cas.ID
	for i := range 6 {
		b := chunk(uint64(i), 1000)
		id := cas.Sum(b)
		if err := src.Put(ctx, id, b); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	c, err := cache.New(t.TempDir(), 1<<20, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, id := range ids[:2] {
		if _, err := c.Get(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Prefetch(ctx, ids); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(src.asked, ids[2:]) {
		t.Fatalf("the source was asked to prefetch %d objects, want the 4 not cached", len(src.asked))
	}
	if got := src.gets.Load(); got != 2 {
		t.Fatalf("Prefetch made %d Gets of the source; it should leave fetching to the source", got-2)
	}

	plain, err := cache.New(t.TempDir(), 1<<20, newCounting(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.Prefetch(ctx, ids); err != nil {
		t.Fatalf("Prefetch over a source without it: %v, want nil", err)
	}
}
