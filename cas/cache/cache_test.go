package cache_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/cache"
	"github.com/mlfs/mlfs/cas/mem"
)

// counting is a real store that counts, and can slow or hold, the calls
// that reach it.
type counting struct {
	*mem.Store
	gets, stats atomic.Int64
	delay       time.Duration
	gate        chan struct{} // if set, Get waits for it to close (or ctx)
}

func newCounting() *counting { return &counting{Store: mem.New()} }

func (s *counting) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	s.gets.Add(1)
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	time.Sleep(s.delay)
	return s.Store.Get(ctx, id)
}

func (s *counting) Stat(ctx context.Context, id cas.ID) (int64, error) {
	s.stats.Add(1)
	return s.Store.Stat(ctx, id)
}

// unverified is a source whose Get does not verify what it returns, to
// prove that the cache does.
type unverified struct{ *mem.Store }

func (s unverified) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	return s.Store.GetRange(ctx, id, 0, -1)
}

// logBuffer collects log output from concurrent goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func chunk(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x6d6c6673))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func put(t testing.TB, s cas.Store, data []byte) cas.ID {
	t.Helper()
	id := cas.Sum(data)
	if err := s.Put(context.Background(), id, data); err != nil {
		t.Fatal(err)
	}
	return id
}

func open(t testing.TB, dir string, max int64, src cas.Getter, log *slog.Logger) *cache.Cache {
	t.Helper()
	c, err := cache.New(dir, max, src, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustGet(t testing.TB, c *cache.Cache, id cas.ID, want []byte) {
	t.Helper()
	got, err := c.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("get %s: %v", id.Short(), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("get %s: %d bytes, not the %d stored", id.Short(), len(got), len(want))
	}
}

// onDisk lists the cache's segment files as a user would see them: path →
// size.
func onDisk(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	files := map[string]int64{}
	err := filepath.WalkDir(filepath.Join(dir, "segments"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".seg") {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files[p] = info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func diskBytes(t *testing.T, dir string) int64 {
	var n int64
	for _, size := range onDisk(t, dir) {
		n += size
	}
	return n
}

// onDiskCopy returns the bytes of the cached copy of id, read from its
// segment file, and the file.
func onDiskCopy(t *testing.T, c *cache.Cache, id cas.ID, size int) ([]byte, string) {
	t.Helper()
	p, off, ok := cache.RecordAt(c, id)
	if !ok {
		t.Fatalf("%s is not cached on disk", id.Short())
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, size)
	if _, err := f.ReadAt(b, off); err != nil && size > 0 {
		t.Fatalf("read the cached copy of %s: %v", id.Short(), err)
	}
	return b, p
}

// rec is what an object of size bytes costs on disk.
func rec(size int) int64 { return int64(size) + cache.RecordOverhead }

func TestRoundTripAndHit(t *testing.T) {
	src := newCounting()
	dir := t.TempDir()
	c := open(t, dir, 1<<30, src, nil)
	for i, n := range []int{0, 1, 4096, 64 << 10, 256 << 10} {
		data := chunk(uint64(i), n)
		id := put(t, src, data)
		before := src.gets.Load()
		mustGet(t, c, id, data)
		mustGet(t, c, id, data)
		if got := src.gets.Load() - before; got != 1 {
			t.Errorf("%d bytes: source asked %d times for two Gets, want once", n, got)
		}
		c.Flush()
		if b, _ := onDiskCopy(t, c, id, len(data)); !bytes.Equal(b, data) {
			t.Errorf("%d bytes: the copy on disk differs", n)
		}
		if !c.Has(id) {
			t.Errorf("%d bytes: Has is false after Get", n)
		}
	}
	if st := c.Stats(); st.Hits != 5 || st.Misses != 5 || st.Fetches != 5 || st.Count != 5 ||
		st.Bytes != 1+4096+64<<10+256<<10 || st.FetchedBytes != st.Bytes {
		t.Errorf("stats %+v", st)
	}

	// The caller owns what Get returns.
	data := chunk(9, 1000)
	id := put(t, src, data)
	b, _ := c.Get(context.Background(), id)
	b[0] ^= 0xff
	mustGet(t, c, id, data)
}

func TestBoundAndLRU(t *testing.T) {
	const size, keep = 4096, 10
	src := newCounting()
	dir := t.TempDir()
	c := open(t, dir, keep*rec(size), src, nil)
	var ids []cas.ID
	var datas [][]byte
	for i := range 200 {
		datas = append(datas, chunk(uint64(i), size))
		ids = append(ids, put(t, src, datas[i]))
	}
	for i := range keep {
		mustGet(t, c, ids[i], datas[i])
	}
	mustGet(t, c, ids[0], datas[0]) // 0 becomes the most recently used
	mustGet(t, c, ids[keep], datas[keep])
	mustGet(t, c, ids[keep+1], datas[keep+1])
	for i := range keep + 2 {
		if want := i != 1 && i != 2; c.Has(ids[i]) != want {
			t.Errorf("object %d: cached %v, want %v (1 and 2 are the least recently used)", i, !want, want)
		}
	}
	if st := c.Stats(); st.Evictions != 2 || st.Count != keep || st.Bytes != keep*size {
		t.Errorf("stats %+v", st)
	}
	for i := keep + 2; i < len(ids); i++ {
		mustGet(t, c, ids[i], datas[i])
		if n := diskBytes(t, dir); n > keep*rec(size) {
			t.Fatalf("after %d inserts the cache holds %d bytes on disk, bound %d", i+1, n, keep*rec(size))
		}
	}
	if files := onDisk(t, dir); len(files) != keep {
		t.Errorf("%d files on disk, want %d", len(files), keep)
	}
	for i := len(ids) - keep; i < len(ids); i++ {
		if !c.Has(ids[i]) {
			t.Errorf("object %d, one of the %d most recent, was evicted", i, keep)
		}
	}
}

func TestLargerThanBound(t *testing.T) {
	src := newCounting()
	dir := t.TempDir()
	c := open(t, dir, 10000, src, nil)
	small := chunk(1, 5000)
	smallID := put(t, src, small)
	mustGet(t, c, smallID, small)
	big := chunk(2, 10001)
	bigID := put(t, src, big)
	mustGet(t, c, bigID, big)
	if c.Has(bigID) || !c.Has(smallID) {
		t.Errorf("after an object over the bound: big cached %v, small cached %v; want false, true", c.Has(bigID), c.Has(smallID))
	}
	if n := diskBytes(t, dir); n != rec(5000) {
		t.Errorf("%d bytes on disk, want %d", n, rec(5000))
	}
}

func TestConcurrentMissFetchesOnce(t *testing.T) {
	src := newCounting()
	src.delay = 50 * time.Millisecond
	c := open(t, t.TempDir(), 1<<20, src, nil)
	data := chunk(1, 64<<10)
	id := put(t, src, data)

	const n = 16
	results := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			b, err := c.Get(context.Background(), id)
			if err != nil {
				t.Error(err)
			}
			results[i] = b
		})
	}
	wg.Wait()
	if got := src.gets.Load(); got != 1 {
		t.Errorf("%d goroutines missing one id made %d fetches, want 1", n, got)
	}
	for i, b := range results {
		if !bytes.Equal(b, data) {
			t.Fatalf("goroutine %d got wrong bytes", i)
		}
	}
	results[0][0] ^= 0xff // each has its own copy
	for i, b := range results[1:] {
		if !bytes.Equal(b, data) {
			t.Fatalf("goroutine %d shares its slice with goroutine 0", i+1)
		}
	}
	if st := c.Stats(); st.Hits+st.Misses != n || st.Fetches != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestConcurrentChurn has many readers over a working set larger than the
// cache, with purges, so that lookups, inserts, evictions and removals
// race (run with -race). Every byte returned must be right.
func TestConcurrentChurn(t *testing.T) {
	const objects, size = 64, 8 << 10
	src := newCounting()
	dir := t.TempDir()
	c := open(t, dir, 16*size, src, nil)
	var ids []cas.ID
	var datas [][]byte
	for i := range objects {
		datas = append(datas, chunk(uint64(i), size))
		ids = append(ids, put(t, src, datas[i]))
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 300 {
				i := r.IntN(objects)
				switch r.IntN(100) {
				case 0:
					if err := c.Purge(); err != nil {
						t.Error(err)
					}
				case 1, 2:
					b, err := c.GetRange(context.Background(), ids[i], 100, 50)
					if err != nil || !bytes.Equal(b, datas[i][100:150]) {
						t.Errorf("get range %d: %v", i, err)
					}
				default:
					b, err := c.Get(context.Background(), ids[i])
					if err != nil || !bytes.Equal(b, datas[i]) {
						t.Errorf("get %d: %v", i, err)
						return
					}
				}
				c.Has(ids[i])
			}
		})
	}
	wg.Wait()
	st := c.Stats()
	if st.DiskBytes > st.MaxBytes || diskBytes(t, dir) != st.DiskBytes || st.Bytes+int64(st.Count)*cache.RecordOverhead > st.DiskBytes {
		t.Errorf("stats %+v, but %d bytes in %d segment files on disk", st, diskBytes(t, dir), len(onDisk(t, dir)))
	}
}

func TestCorruptFileOnDisk(t *testing.T) {
	other := chunk(99, 64<<10)
	// Each damages the cached copy, at off in the segment file f, of an
	// object of size bytes.
	for name, damage := range map[string]func(f *os.File, off, size int64) error{
		"flipped byte": func(f *os.File, off, size int64) error {
			b := []byte{0}
			if _, err := f.ReadAt(b, off+size/2); err != nil {
				return err
			}
			b[0] ^= 1
			_, err := f.WriteAt(b, off+size/2)
			return err
		},
		"truncated":     func(f *os.File, off, size int64) error { return f.Truncate(off + size - 1) },
		"empty":         func(f *os.File, off, size int64) error { return f.Truncate(0) },
		"other content": func(f *os.File, off, size int64) error { _, err := f.WriteAt(other, off); return err },
	} {
		t.Run(name, func(t *testing.T) {
			src := newCounting()
			dir := t.TempDir()
			var log logBuffer
			c := open(t, dir, 1<<20, src, slog.New(slog.NewTextHandler(&log, nil)))
			data := chunk(1, 64<<10)
			id := put(t, src, data)
			mustGet(t, c, id, data)

			p, off, ok := cache.RecordAt(c, id)
			if !ok {
				t.Fatal("not cached")
			}
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := damage(f, off, int64(len(data))); err != nil {
				t.Fatal(err)
			}
			f.Close()
			mustGet(t, c, id, data)
			if got := src.gets.Load(); got != 2 {
				t.Errorf("source asked %d times, want 2 (the refetch)", got)
			}
			if !strings.Contains(log.String(), "fails verification") || !strings.Contains(log.String(), id.String()) {
				t.Errorf("damage not logged with the object id; log:\n%s", log.String())
			}
			if b, _ := onDiskCopy(t, c, id, len(data)); !bytes.Equal(b, data) {
				t.Error("the cached copy was not stored again")
			}
			if st := c.Stats(); st.Dropped != 1 || st.Count != 1 || st.Bytes != int64(len(data)) {
				t.Errorf("stats %+v", st)
			}
			mustGet(t, c, id, data) // and now a hit again
			if got := src.gets.Load(); got != 2 {
				t.Errorf("source asked %d times after the repair, want 2", got)
			}
		})
	}
}

func TestSourceCorrupt(t *testing.T) {
	for name, src := range map[string]func(*mem.Store) cas.Getter{
		"verifying source":   func(m *mem.Store) cas.Getter { return m },
		"unverifying source": func(m *mem.Store) cas.Getter { return unverified{m} },
	} {
		t.Run(name, func(t *testing.T) {
			m := mem.New()
			dir := t.TempDir()
			c := open(t, dir, 1<<20, src(m), nil)
			id := put(t, m, chunk(1, 4096))
			m.Tamper(id, func(b []byte) []byte { b[7] ^= 1; return b })
			b, err := c.Get(context.Background(), id)
			if !errors.Is(err, cas.ErrCorrupt) || b != nil {
				t.Fatalf("Get of an object the source has corrupt: %d bytes, %v; want an error matching cas.ErrCorrupt", len(b), err)
			}
			if !strings.HasPrefix(err.Error(), "cache: get "+id.Short()) {
				t.Errorf("error %q does not say what failed", err)
			}
			if c.Has(id) || len(onDisk(t, dir)) != 0 || c.Stats().Count != 0 {
				t.Errorf("corrupt object cached: Has %v, %d files", c.Has(id), len(onDisk(t, dir)))
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	src := newCounting()
	dir := t.TempDir()
	c := open(t, dir, 1<<20, src, nil)
	id := cas.Sum([]byte("never stored"))
	ctx := context.Background()
	if _, err := c.Get(ctx, id); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("Get: %v, want cas.ErrNotFound", err)
	}
	if _, err := c.GetRange(ctx, id, 0, 1); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("GetRange: %v, want cas.ErrNotFound", err)
	}
	if _, err := c.Stat(ctx, id); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("Stat: %v, want cas.ErrNotFound", err)
	}
	if c.Has(id) || len(onDisk(t, dir)) != 0 {
		t.Error("a missing object left something cached")
	}
}

func TestGetterContract(t *testing.T) {
	src := newCounting()
	c := open(t, t.TempDir(), 1<<20, src, nil)
	ctx := context.Background()
	data := chunk(1, 1000)
	id := put(t, src, data)

	// Uncached: Stat asks the source, GetRange caches the whole object.
	if n, err := c.Stat(ctx, id); err != nil || n != 1000 || src.stats.Load() != 1 {
		t.Errorf("Stat uncached: %d, %v, %d source Stats", n, err, src.stats.Load())
	}
	b, err := c.GetRange(ctx, id, 10, 20)
	if err != nil || !bytes.Equal(b, data[10:30]) || !c.Has(id) {
		t.Fatalf("GetRange uncached: %v, cached %v", err, c.Has(id))
	}
	// Cached: neither asks the source.
	gets := src.gets.Load()
	if n, err := c.Stat(ctx, id); err != nil || n != 1000 || src.stats.Load() != 1 {
		t.Errorf("Stat cached: %d, %v, %d source Stats", n, err, src.stats.Load())
	}
	for _, r := range []struct {
		off, length int64
		want        []byte
	}{
		{0, -1, data},
		{990, 100, data[990:]},
		{1000, 5, []byte{}},
		{5, 0, []byte{}},
	} {
		b, err := c.GetRange(ctx, id, r.off, r.length)
		if err != nil || !bytes.Equal(b, r.want) {
			t.Errorf("GetRange(%d, %d): %d bytes, %v", r.off, r.length, len(b), err)
		}
	}
	if _, err := c.GetRange(ctx, id, 1001, 1); !errors.Is(err, cas.ErrRange) {
		t.Errorf("GetRange beyond the end: %v, want cas.ErrRange", err)
	}
	if src.gets.Load() != gets {
		t.Error("GetRange of a cached object asked the source")
	}
}

func TestReopen(t *testing.T) {
	const size = 4096
	src := newCounting()
	dir := t.TempDir()
	c, err := cache.New(dir, 10*rec(size), src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cache.New(dir, 10*rec(size), src, nil); err == nil {
		t.Error("a second Cache opened the same dir while the first is open")
	}
	var ids []cas.ID
	var datas [][]byte
	for i := range 10 {
		datas = append(datas, chunk(uint64(i), size))
		ids = append(ids, put(t, src, datas[i]))
		mustGet(t, c, ids[i], datas[i])
	}
	before := c.Stats()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// The layout of earlier versions, a file per object, is dropped.
	leftover := filepath.Join(dir, "objects", "01", "0123456789ab")
	if err := os.MkdirAll(filepath.Dir(leftover), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(leftover, []byte("an object of an old cache"), 0o600); err != nil {
		t.Fatal(err)
	}

	c = open(t, dir, 10*rec(size), src, nil)
	if st := c.Stats(); st.Count != before.Count || st.Bytes != before.Bytes || st.DiskBytes != before.DiskBytes {
		t.Errorf("reopened with %+v; closed with %+v", st, before)
	}
	if _, err := os.Stat(filepath.Dir(leftover)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the old layout is still there: %v", err)
	}
	gets := src.gets.Load()
	for i, id := range ids {
		mustGet(t, c, id, datas[i])
	}
	if src.gets.Load() != gets {
		t.Error("an object cached before the reopen was fetched again")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening with half the room keeps the five stored last.
	c = open(t, dir, 5*rec(size), src, nil)
	for i, id := range ids {
		if want := i >= 5; c.Has(id) != want {
			t.Errorf("object %d: cached %v after reopening smaller, want %v", i, !want, want)
		}
	}
	if n := diskBytes(t, dir); n != 5*rec(size) {
		t.Errorf("%d bytes on disk, want %d", n, 5*rec(size))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// A crash may leave the last segment without its index and with a torn
// record at its end: the next open reads its headers, keeps every whole
// record and serves them, and fetches the torn one again.
func TestReopenAfterCrash(t *testing.T) {
	src := newCounting()
	dir := t.TempDir()
	c := open(t, dir, 1<<20, src, nil)
	var ids []cas.ID
	var datas [][]byte
	for i := range 5 {
		datas = append(datas, chunk(uint64(i), 3000+i))
		ids = append(ids, put(t, src, datas[i]))
		mustGet(t, c, ids[i], datas[i])
	}
	p, off, _ := cache.RecordAt(c, ids[4])
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(strings.TrimSuffix(p, ".seg") + ".idx"); err != nil {
		t.Fatalf("no index written at Close: %v", err)
	}
	if err := os.Truncate(p, off+100); err != nil { // the last record torn
		t.Fatal(err)
	}
	c = open(t, dir, 1<<20, src, nil)
	gets := src.gets.Load()
	for i, id := range ids {
		mustGet(t, c, id, datas[i])
	}
	if n := src.gets.Load() - gets; n != 1 {
		t.Errorf("%d objects fetched again after the crash, want 1 (the torn one)", n)
	}
}

func TestPurge(t *testing.T) {
	src := newCounting()
	dir := t.TempDir()
	c := open(t, dir, 1<<20, src, nil)
	var ids []cas.ID
	for i := range 5 {
		data := chunk(uint64(i), 1000)
		ids = append(ids, put(t, src, data))
		mustGet(t, c, ids[i], data)
	}
	if err := c.Purge(); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Count != 0 || st.Bytes != 0 {
		t.Errorf("after Purge: stats %+v", st)
	}
	if files := onDisk(t, dir); len(files) != 0 {
		t.Errorf("after Purge %d files remain", len(files))
	}
	for _, id := range ids {
		if c.Has(id) {
			t.Errorf("Has %s after Purge", id.Short())
		}
	}
	gets := src.gets.Load()
	mustGet(t, c, ids[0], chunk(0, 1000))
	if src.gets.Load() != gets+1 {
		t.Error("Get after Purge did not fetch")
	}
}

func TestCancelledGetDoesNotFailOthers(t *testing.T) {
	src := newCounting()
	src.gate = make(chan struct{})
	c := open(t, t.TempDir(), 1<<20, src, nil)
	data := chunk(1, 1000)
	id := put(t, src, data)

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error)
	go func() {
		_, err := c.Get(ctx, id)
		first <- err
	}()
	for src.gets.Load() == 0 { // the fetch has started
		time.Sleep(time.Millisecond)
	}
	second := make(chan []byte)
	go func() {
		b, _ := c.Get(context.Background(), id)
		second <- b
	}()
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Get: %v, want context.Canceled", err)
	}
	close(src.gate)
	if b := <-second; !bytes.Equal(b, data) {
		t.Error("a Get sharing the fetch of a cancelled one did not get the object")
	}
	if !c.Has(id) || src.gets.Load() != 1 {
		t.Errorf("cached %v after %d fetches, want true after 1", c.Has(id), src.gets.Load())
	}
}

func TestClose(t *testing.T) {
	src := newCounting()
	src.gate = make(chan struct{}) // never opened: the fetch blocks
	c, err := cache.New(t.TempDir(), 1<<20, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := put(t, src, []byte("x"))
	got := make(chan error)
	go func() {
		_, err := c.Get(context.Background(), id)
		got <- err
	}()
	for src.gets.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := c.Close(); err != nil { // must not hang on the blocked fetch
		t.Fatal(err)
	}
	if err := <-got; err == nil {
		t.Error("a Get whose fetch Close cancelled succeeded")
	}
	if _, err := c.Get(context.Background(), id); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Get after Close: %v, want an error saying closed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := cache.New(t.TempDir(), 0, mem.New(), nil); err == nil {
		t.Error("New accepted a size of 0")
	}
	if _, err := cache.New(t.TempDir(), 1, nil, nil); err == nil {
		t.Error("New accepted no source")
	}
}

func benchSource(b *testing.B, n, size int) (*mem.Store, []cas.ID) {
	src := mem.New()
	var ids []cas.ID
	for i := range n {
		ids = append(ids, put(b, src, chunk(uint64(i), size)))
	}
	return src, ids
}

// BenchmarkHit is a Get of a cached 64 KiB chunk: a read from disk (the
// page cache, here) and a verification.
func BenchmarkHit(b *testing.B) {
	src, ids := benchSource(b, 1, 64<<10)
	c := open(b, b.TempDir(), 1<<30, src, nil)
	ctx := context.Background()
	if _, err := c.Get(ctx, ids[0]); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(64 << 10)
	for b.Loop() {
		if _, err := c.Get(ctx, ids[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHitParallel is BenchmarkHit from every core over 256 chunks.
func BenchmarkHitParallel(b *testing.B) {
	src, ids := benchSource(b, 256, 64<<10)
	c := open(b, b.TempDir(), 1<<30, src, nil)
	ctx := context.Background()
	for _, id := range ids {
		if _, err := c.Get(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(64 << 10)
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(ids))
		for pb.Next() {
			if _, err := c.Get(ctx, ids[i%len(ids)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkMiss cycles through 64 chunks of 64 KiB in a cache that holds
// 16, so every Get misses: fetch from an in-memory source, verify, write a
// temp file, rename it into place and evict one.
func BenchmarkMiss(b *testing.B) {
	src, ids := benchSource(b, 64, 64<<10)
	c := open(b, b.TempDir(), 16*64<<10, src, nil)
	ctx := context.Background()
	b.SetBytes(64 << 10)
	i := 0
	for b.Loop() {
		if _, err := c.Get(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if st := c.Stats(); st.Hits != 0 {
		b.Fatalf("%d hits in a benchmark of misses", st.Hits)
	}
}
