package cache_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/cache"
	"github.com/mlfs/mlfs/cas/mem"
)

func openWith(t testing.TB, dir string, max int64, src cas.Getter, opts ...cache.Option) *cache.Cache {
	t.Helper()
	c, err := cache.New(dir, max, src, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// With write-behind, what a Get fetched is served again without another
// fetch before it is on disk, is on disk after Flush, and every object
// fetched before Close is on disk after it, for the next Cache to find.
func TestWriteBehind(t *testing.T) {
	src := newCounting()
	dir := t.TempDir()
	c := openWith(t, dir, 1<<30, src, cache.WriteBehind(1<<20))
	var ids []cas.ID
	var datas [][]byte
	for i := range 64 {
		datas = append(datas, chunk(uint64(i), 48<<10)) // 3 MiB in all: more than may wait
		ids = append(ids, put(t, src, datas[i]))
	}
	for i, id := range ids {
		mustGet(t, c, id, datas[i])
		mustGet(t, c, id, datas[i]) // from memory or disk, not the source
		if !c.Has(id) {
			t.Fatalf("object %d: not cached after its Get", i)
		}
	}
	if n := src.gets.Load(); n != int64(len(ids)) {
		t.Errorf("source asked %d times for %d objects read twice", n, len(ids))
	}
	c.Flush()
	if n, want := diskBytes(t, dir), int64(len(ids))*rec(48<<10); n != want {
		t.Errorf("after Flush: %d bytes on disk, want %d", n, want)
	}
	if st := c.Stats(); st.Count != len(ids) {
		t.Errorf("after Flush: %d objects indexed, want %d", st.Count, len(ids))
	}

	// Fetched, then closed at once: Close waits for the writes.
	more := chunk(1000, 100<<10)
	id := put(t, src, more)
	mustGet(t, c, id, more)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := cache.RecordAt(c, id); !ok {
		t.Fatal("an object fetched just before Close is not on disk")
	}
	gets := src.gets.Load()
	c2 := openWith(t, dir, 1<<30, src, cache.WriteBehind(1<<20))
	mustGet(t, c2, id, more)
	if src.gets.Load() != gets {
		t.Error("the object written behind was fetched again after a reopen")
	}
}

// A Get that wants an object the writers have not yet written gets its
// own copy: changing it changes nothing that later Gets see.
func TestWriteBehindCopies(t *testing.T) {
	src := newCounting()
	c := openWith(t, t.TempDir(), 1<<30, src, cache.WriteBehind(64<<20))
	data := chunk(7, 4096)
	id := put(t, src, data)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			b, err := c.Get(context.Background(), id)
			if err != nil {
				t.Error(err)
				return
			}
			for i := range b {
				b[i] ^= 0xff // the caller owns its slice
			}
		})
	}
	wg.Wait()
	mustGet(t, c, id, data)
	c.Flush()
	mustGet(t, c, id, data)
}

// Purge drops what waits to be written too: nothing purged comes back.
func TestWriteBehindPurge(t *testing.T) {
	src := newCounting()
	dir := t.TempDir()
	c := openWith(t, dir, 1<<30, src, cache.WriteBehind(64<<20))
	var ids []cas.ID
	for i := range 200 {
		data := chunk(uint64(i), 16<<10)
		ids = append(ids, put(t, src, data))
		mustGet(t, c, ids[i], data)
	}
	if err := c.Purge(); err != nil {
		t.Fatal(err)
	}
	c.Flush()
	// A writer may have been writing one object as Purge ran: at most
	// one per writer comes back.
	if n := c.Stats().Count; n > 2 {
		t.Errorf("%d objects cached after Purge", n)
	}
	gets := src.gets.Load()
	for _, id := range ids {
		if _, err := c.Get(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	if n := src.gets.Load() - gets; n < int64(len(ids))-2 {
		t.Errorf("after Purge, %d of %d objects came from the source", n, len(ids))
	}
}

// With SourceVerifies the cache relies on its source's verification: a
// verifying source's corrupt object is still refused and not cached; and
// the cache does not hash again (a source that breaks its promise gets
// its bytes through, which is what the option says).
func TestSourceVerifies(t *testing.T) {
	m := mem.New()
	dir := t.TempDir()
	c := openWith(t, dir, 1<<20, m, cache.SourceVerifies())
	id := put(t, m, chunk(1, 4096))
	m.Tamper(id, func(b []byte) []byte { b[7] ^= 1; return b })
	if b, err := c.Get(context.Background(), id); !errors.Is(err, cas.ErrCorrupt) || b != nil {
		t.Fatalf("Get of a corrupt object from a verifying source: %d bytes, %v", len(b), err)
	}
	if c.Has(id) {
		t.Error("corrupt object cached")
	}

	// The same corrupt object from a source that does not verify, through
	// a cache told that it does: returned as the source gave it (what the
	// option says), but never served from the cache's disk, where it fails
	// verification.
	u := openWith(t, t.TempDir(), 1<<20, unverified{m}, cache.SourceVerifies())
	if _, err := u.Get(context.Background(), id); err != nil {
		t.Fatalf("the cache hashed what a trusted source returned: %v", err)
	}
	if _, err := u.Get(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if st := u.Stats(); st.Dropped != 1 || st.Hits != 0 {
		t.Errorf("the wrong copy on disk was not dropped: %+v", st)
	}
}
