package pack_test

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/castest"
	"github.com/mlfs/mlfs/cas/mem"
	"github.com/mlfs/mlfs/cas/pack"
)

// With onePerPack, every blob of blobSize bytes is a pack of its own.
var onePerPack = pack.Options{PackSize: 1 << 10}

const blobSize = 2 << 10

// withCache returns opt with IndexCache set to dir.
func withCache(opt pack.Options, dir string) pack.Options {
	opt.IndexCache = dir
	return opt
}

// packIDs lists the packs in be.
func packIDs(tb testing.TB, be cas.Store) []cas.ID {
	tb.Helper()
	var ids []cas.ID
	if err := be.List(bg, func(id cas.ID, _ int64) error { ids = append(ids, id); return nil }); err != nil {
		tb.Fatal(err)
	}
	return ids
}

// cacheFiles returns the names of the files in dir.
func cacheFiles(t *testing.T, dir string) map[string]bool {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, de := range des {
		names[de.Name()] = true
	}
	return names
}

func TestConformanceIndexCache(t *testing.T) {
	opt := pack.Options{PackSize: 1 << 20}
	var dirs sync.Map // store → its IndexCache, for Reopen
	castest.Run(t, castest.Harness{
		New: func(t *testing.T) cas.Store {
			dir := t.TempDir()
			s, err := pack.New(bg, mem.New(), withCache(opt, dir))
			if err != nil {
				t.Fatal(err)
			}
			dirs.Store(s, dir)
			return s
		},
		Corrupt: corrupt,
		// The same backend and folder again: the indexes come from the
		// cache.
		Reopen: func(t *testing.T, s cas.Store) cas.Store {
			dir, _ := dirs.Load(s)
			be := s.(*pack.Store).Backend()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			cb := &counting{Store: be}
			r, err := pack.New(bg, cb, withCache(opt, dir.(string)))
			if err != nil {
				t.Fatal(err)
			}
			if n := cb.ranges.Load(); n != 0 {
				t.Errorf("reopening read %d ranges; all indexes are cached", n)
			}
			return r
		},
	})
}

// A Store opened again with the same IndexCache reads the listing and
// nothing else, whether it read the packs' indexes before or wrote them.
func TestIndexCacheSavesIndexReads(t *testing.T) {
	for _, writerCaches := range []bool{false, true} {
		name := map[bool]string{false: "read", true: "written"}[writerCaches]
		t.Run(name, func(t *testing.T) {
			be := mem.New()
			dir := t.TempDir()
			wopt := onePerPack
			if writerCaches {
				wopt.IndexCache = dir
			}
			ids := putBlobs(t, open(t, be, wopt), 20, blobSize)
			cb := &counting{Store: be}
			if !writerCaches {
				open(t, cb, withCache(pack.Options{}, dir))
				if n := cb.ranges.Load(); n != 2*20 {
					t.Fatalf("first open read %d ranges, want 2 for each of 20 packs", n)
				}
				cb.reset()
			}
			s := open(t, cb, withCache(pack.Options{}, dir))
			if l, r := cb.lists.Load(), cb.ranges.Load(); l != 1 || r != 0 {
				t.Fatalf("open with a warm cache: %d lists and %d ranges, want 1 and 0", l, r)
			}
			getAll(t, s, ids)
		})
	}
}

// A damaged cache file is noticed, the pack's index read from the backend
// again and the file written anew.
func TestIndexCacheDamagedFile(t *testing.T) {
	be := mem.New()
	dir := t.TempDir()
	ids := putBlobs(t, open(t, be, withCache(onePerPack, dir)), 5, blobSize)
	packs := packIDs(t, be)
	victim, other := filepath.Join(dir, packs[0].String()), filepath.Join(dir, packs[1].String())
	good, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	otherTail, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 1
		return b
	}
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"index byte", flip(3)},
		{"trailer count", flip(len(good) - 44)},
		{"trailer hash", flip(len(good) - 20)},
		{"magic", flip(len(good) - 1)},
		{"truncated", good[:len(good)-1]},
		{"index only", good[:len(good)-44]},
		{"empty", nil},
		{"another pack's", otherTail},
		{"appended to", append(bytes.Clone(good), 0)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(victim, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			cb := &counting{Store: be}
			s := open(t, cb, withCache(pack.Options{}, dir))
			if n := cb.ranges.Load(); n != 2 {
				t.Errorf("read %d ranges, want 2: the damaged pack's trailer and index", n)
			}
			getAll(t, s, ids)
			if got, err := os.ReadFile(victim); err != nil || !bytes.Equal(got, good) {
				t.Fatalf("cache file not repaired: %d bytes, %v", len(got), err)
			}
		})
	}
}

// The files of packs that are gone from the backend are removed: at open,
// at Refresh, and when Compact deletes the pack itself. Stale temporary
// files go too; files the cache did not write stay.
func TestIndexCacheForgetsDeletedPacks(t *testing.T) {
	be := mem.New()
	dir := t.TempDir()
	w := open(t, be, withCache(onePerPack, dir))
	ids := putBlobs(t, w, 6, blobSize)
	packs := packIDs(t, be)
	if n := len(cacheFiles(t, dir)); n != 6 {
		t.Fatalf("%d cache files for 6 packs", n)
	}
	cached := func(id cas.ID) bool { return cacheFiles(t, dir)[id.String()] }

	// Removed by another process, before this one opens.
	be.Delete(bg, packs[0])
	oldTemp := filepath.Join(dir, packs[1].String()+".tmp123")
	newTemp := filepath.Join(dir, packs[1].String()+".tmp456")
	foreign := filepath.Join(dir, "notes.txt")
	for _, p := range []string{oldTemp, newTemp, foreign} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-2 * time.Hour)
	os.Chtimes(oldTemp, long, long)
	os.Chtimes(foreign, long, long)
	s := open(t, be, withCache(pack.Options{}, dir))
	if cached(packs[0]) {
		t.Error("the file of a pack deleted before open is still there")
	}
	files := cacheFiles(t, dir)
	if files[filepath.Base(oldTemp)] || !files[filepath.Base(newTemp)] || !files[filepath.Base(foreign)] {
		t.Errorf("temporary and other files: %v; want the old temporary file gone, the rest kept", files)
	}

	// Removed by another process while this one runs.
	be.Delete(bg, packs[1])
	if err := s.Refresh(bg); err != nil {
		t.Fatal(err)
	}
	if cached(packs[1]) {
		t.Error("the file of a pack deleted before Refresh is still there")
	}

	// Compacted away by this Store: a blob's pack that is still there.
	var p cas.ID
	for _, id := range ids {
		if p, _, _, _ = w.Locate(id); p != packs[0] && p != packs[1] {
			w.Delete(bg, id)
			break
		}
	}
	if st, err := w.Compact(bg, 0); err != nil || st.PacksDeleted == 0 {
		t.Fatalf("compact: %+v, %v", st, err)
	}
	if cached(p) {
		t.Error("the file of a compacted pack is still there")
	}
	if n := len(cacheFiles(t, dir)); n != 3+2 {
		t.Errorf("%d files left, want 3 live packs' and 2 others: %v", n, cacheFiles(t, dir))
	}
}

// Refresh reads indexes at once, at most Fetches of them.
func TestRefreshReadsIndexesInParallel(t *testing.T) {
	be := mem.New()
	ids := putBlobs(t, open(t, be, onePerPack), 40, blobSize)
	cb := &counting{Store: be, delay: 2 * time.Millisecond}
	s := open(t, cb, pack.Options{Fetches: 4})
	if p := cb.peak.Load(); p < 2 || p > 4 {
		t.Errorf("%d index reads ran at once, want 2 to 4", p)
	}
	getAll(t, s, ids)
}

// Refreshes, reads and writes of several Stores sharing a backend and a
// cache folder may overlap (run with -race).
func TestRefreshConcurrent(t *testing.T) {
	be := mem.New()
	dir := t.TempDir()
	first := putBlobs(t, open(t, be, onePerPack), 10, blobSize)
	cb := &counting{Store: be, delay: 100 * time.Microsecond}
	r := open(t, cb, withCache(pack.Options{Fetches: 3}, dir))
	w := open(t, be, withCache(onePerPack, dir))

	later := make([][]byte, 30)
	for i := range later {
		later[i] = blob(i, blobSize+1)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, d := range later {
			if err := w.Put(bg, cas.Sum(d), d); err != nil {
				t.Error(err)
				return
			}
		}
		if err := w.Flush(bg); err != nil {
			t.Error(err)
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 10 {
				if err := r.Refresh(bg); err != nil {
					t.Error(err)
					return
				}
				for _, id := range first {
					if _, err := r.Get(bg, id); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	ids := append([]cas.ID(nil), first...)
	for _, d := range later {
		ids = append(ids, cas.Sum(d))
	}
	getAll(t, r, ids) // a miss refreshes
	getAll(t, open(t, be, withCache(pack.Options{}, dir)), ids)
}

// FuzzParseTail: parseTail never panics, and what it accepts tiles the
// data area before it and, in a pack named by its trailer, hashes to the
// name it was given.
func FuzzParseTail(f *testing.F) {
	for _, p := range realPacks(f) {
		entries, err := pack.Parse(p)
		if err != nil {
			f.Fatal(err)
		}
		tail := p[len(p)-len(entries)*40-44:]
		f.Add(tail, int64(len(p)), true)
		f.Add(tail, int64(len(p)-1), true)
		f.Add(tail, int64(len(p)), false)
	}
	f.Fuzz(func(t *testing.T, tail []byte, size int64, named bool) {
		id := cas.Sum(tail)
		if named {
			id = pack.Name(tail)
		}
		entries, err := pack.ParseTail(id, tail, size)
		if err != nil {
			return
		}
		var next int64
		for _, e := range entries {
			if int64(e.Offset) != next {
				t.Fatalf("blob at %d, want %d", e.Offset, next)
			}
			next += int64(e.Length)
		}
		if next+int64(len(tail)) != size {
			t.Fatalf("%d bytes of blobs and a tail of %d in a %d-byte pack", next, len(tail), size)
		}
		if bytes.HasSuffix(tail, []byte("MLFSPAK2")) && pack.Name(tail) != id {
			t.Fatal("accepted a trailer that does not hash to the pack's name")
		}
	})
}

// BenchmarkOpen opens a Store over 500 packs whose ranged reads take 1 ms
// each: reading the indexes one pack at a time (as before there was a
// cache or parallel reads), 8 at a time into an empty cache, and from a
// warm cache.
func BenchmarkOpen(b *testing.B) {
	be := mem.New()
	putBlobs(b, open(b, be, onePerPack), 500, blobSize)
	warm := b.TempDir()
	open(b, be, withCache(pack.Options{}, warm))
	for _, c := range []struct {
		name string
		opt  func() pack.Options
	}{
		{"cold/serial", func() pack.Options { return pack.Options{Fetches: 1} }},
		{"cold/parallel", func() pack.Options {
			dir, err := os.MkdirTemp(b.TempDir(), "")
			if err != nil {
				b.Fatal(err)
			}
			return withCache(pack.Options{}, dir)
		}},
		{"cached", func() pack.Options { return withCache(pack.Options{}, warm) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			cb := &counting{Store: be, delay: latency}
			for b.Loop() {
				b.StopTimer()
				opt := c.opt()
				b.StartTimer()
				s, err := pack.New(bg, cb, opt)
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
			b.ReportMetric(float64(cb.ranges.Load())/float64(b.N), "ranges/op")
		})
	}
}
