package pack_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/castest"
	"github.com/mlfs/mlfs/cas/local"
	"github.com/mlfs/mlfs/cas/mem"
	"github.com/mlfs/mlfs/cas/pack"
)

// counting wraps a backend to count its List and GetRange calls and
// GetRange's bytes, to make each GetRange slow (as a request to a cloud
// bucket is) and to record how many ran at once. Close does nothing: the
// backend outlives the stores over it.
type counting struct {
	cas.Store
	delay         time.Duration // a request's latency
	rate          float64       // if set, the bytes a second of one request
	hold          chan struct{} // if set, GetRange waits for it to close
	lists         atomic.Int64
	ranges, bytes atomic.Int64
	running, peak atomic.Int64
}

func (c *counting) List(ctx context.Context, fn func(cas.ID, int64) error) error {
	c.lists.Add(1)
	return c.Store.List(ctx, fn)
}

func (c *counting) GetRange(ctx context.Context, id cas.ID, off, length int64) ([]byte, error) {
	c.ranges.Add(1)
	n := c.running.Add(1)
	defer c.running.Add(-1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
	if c.hold != nil {
		<-c.hold
	}
	b, err := c.Store.GetRange(ctx, id, off, length)
	c.bytes.Add(int64(len(b)))
	if d := c.delay; d > 0 || c.rate > 0 {
		if c.rate > 0 {
			d += time.Duration(float64(len(b)) / c.rate * 1e9)
		}
		time.Sleep(d)
	}
	return b, err
}

func (c *counting) Close() error { return nil }

// reset forgets what was counted, such as the index reads of New.
func (c *counting) reset() {
	c.lists.Store(0)
	c.ranges.Store(0)
	c.bytes.Store(0)
	c.peak.Store(0)
}

func open(tb testing.TB, be cas.Store, opt pack.Options) *pack.Store {
	tb.Helper()
	s, err := pack.New(bg, be, opt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// blob returns n bytes that no other (i, n) gives.
func blob(i, n int) []byte {
	b := make([]byte, n)
	binary.LittleEndian.PutUint64(b, uint64(i))
	binary.LittleEndian.PutUint64(b[n-8:], uint64(n))
	return b
}

// putBlobs puts n blobs of the given size and flushes.
func putBlobs(tb testing.TB, s *pack.Store, n, size int) []cas.ID {
	tb.Helper()
	ids := make([]cas.ID, n)
	for i := range ids {
		d := blob(i, size)
		ids[i] = cas.Sum(d)
		if err := s.Put(bg, ids[i], d); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.Flush(bg); err != nil {
		tb.Fatal(err)
	}
	return ids
}

// smallFiles puts n files as an import writes them, each a 16 KiB chunk
// and then the tiny file object that names it, and flushes. It returns the
// ids in the order a reader of the files asks for them: file, chunk.
func smallFiles(tb testing.TB, s *pack.Store, n int) []cas.ID {
	tb.Helper()
	ids := make([]cas.ID, 0, 2*n)
	for i := 0; i < n; i++ {
		chunk := blob(i, 16<<10)
		cid := cas.Sum(chunk)
		file := []byte(fmt.Sprintf("file %d: 16384 bytes in chunk %s", i, cid))
		fid := cas.Sum(file)
		if err := s.Put(bg, cid, chunk); err != nil {
			tb.Fatal(err)
		}
		if err := s.Put(bg, fid, file); err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, fid, cid)
	}
	if err := s.Flush(bg); err != nil {
		tb.Fatal(err)
	}
	return ids
}

func getAll(tb testing.TB, s *pack.Store, ids []cas.ID) {
	tb.Helper()
	for i, id := range ids {
		if _, err := s.Get(bg, id); err != nil {
			tb.Fatalf("blob %d: %v", i, err)
		}
	}
}

var readAhead = pack.Options{PackSize: 1 << 20, ReadAhead: 256 << 10, ReadAheadCache: 1 << 20}

func TestConformanceReadAheadOverMem(t *testing.T) {
	castest.Run(t, castest.Harness{
		New:     func(t *testing.T) cas.Store { return open(t, mem.New(), readAhead) },
		Corrupt: corrupt,
	})
}

func TestConformanceReadAheadOverLocal(t *testing.T) {
	castest.Run(t, castest.Harness{
		New: func(t *testing.T) cas.Store {
			be, err := local.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return open(t, be, readAhead)
		},
		Corrupt: corrupt,
	})
}

// A damaged blob fails by itself; its neighbours in the same window are
// still served, and the window is fetched once.
func TestReadAheadCorruptBlobFailsAlone(t *testing.T) {
	be := mem.New()
	ids := putBlobs(t, open(t, be, pack.Options{PackSize: 1 << 20}), 64, 8<<10)
	w := open(t, be, pack.Options{})
	p, off, length, _ := w.Locate(ids[20])
	be.Tamper(p, func(b []byte) []byte { b[off+length/2] ^= 1; return b })

	cb := &counting{Store: be}
	r := open(t, cb, pack.Options{ReadAhead: 1 << 20})
	cb.reset()
	for round := 0; round < 2; round++ {
		for i, id := range ids {
			_, err := r.Get(bg, id)
			if i == 20 && !errors.Is(err, cas.ErrCorrupt) {
				t.Fatalf("damaged blob: %v, want ErrCorrupt", err)
			}
			if i != 20 && err != nil {
				t.Fatalf("blob %d beside a damaged one: %v", i, err)
			}
		}
	}
	if n := cb.ranges.Load(); n != 1 {
		t.Fatalf("%d requests for one window, want 1", n)
	}
}

// The request counts of reading small files in order from a cold store,
// one blob at a time and with read-ahead.
func TestReadAheadRequests(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	be := &counting{Store: mem.New()}
	ids := smallFiles(t, open(t, be, pack.Options{}), n)
	var packs int
	be.List(bg, func(cas.ID, int64) error { packs++; return nil })
	for _, ra := range []int{0, 4 << 20} {
		r := open(t, be, pack.Options{ReadAhead: ra})
		be.reset()
		getAll(t, r, ids)
		got := be.ranges.Load()
		t.Logf("%d files in %d packs, read-ahead %d KiB: %d requests, %.1f MB", n, packs, ra>>10, got, float64(be.bytes.Load())/1e6)
		if ra == 0 && got != int64(2*n) {
			t.Errorf("without read-ahead: %d requests, want one a blob (%d)", got, 2*n)
		}
		if ra > 0 && got > int64(n/100) {
			t.Errorf("with read-ahead: %d requests for %d files, want at most 1 per 100 files", got, n)
		}
	}
}

// However long the reading, the windows in memory stay within the bound,
// plus the one window a single reader may be waiting for.
func TestReadAheadCacheBounded(t *testing.T) {
	be := &counting{Store: mem.New()}
	ids := putBlobs(t, open(t, be, pack.Options{PackSize: 1 << 20}), 1024, 16<<10)
	const cache, ra = 512 << 10, 64 << 10
	r := open(t, be, pack.Options{ReadAhead: ra, ReadAheadCache: cache, Fetches: 4})
	for i, id := range ids {
		if _, err := r.Get(bg, id); err != nil {
			t.Fatal(err)
		}
		if got := r.CachedBytes(); got > cache+ra {
			t.Fatalf("after %d blobs, %d bytes of windows, bound %d", i+1, got, cache+ra)
		}
	}
	be.reset()
	if _, err := r.Get(bg, ids[0]); err != nil || be.ranges.Load() == 0 {
		t.Fatalf("the first blob was not evicted after 16 MiB of reading: %v", err)
	}
}

// Readers starting at different places, with Prefetch at the same time:
// each byte is fetched once (the cache holds them all), every blob comes
// out right. Run with -race.
func TestReadAheadConcurrentReaders(t *testing.T) {
	be := &counting{Store: mem.New()}
	w := open(t, be, pack.Options{PackSize: 1 << 20})
	var ids []cas.ID
	var data [][]byte
	var total int64
	for i := 0; i < 2000; i++ {
		d := blob(i, 4<<10+i%7*1024)
		ids, data = append(ids, cas.Sum(d)), append(data, d)
		total += int64(len(d))
		w.Put(bg, ids[i], d)
	}
	if err := w.Flush(bg); err != nil {
		t.Fatal(err)
	}
	r := open(t, be, pack.Options{ReadAhead: 128 << 10, ReadAheadCache: 64 << 20})
	be.reset()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for k := range ids {
				i := (g*len(ids)/8 + k) % len(ids)
				got, err := r.Get(bg, ids[i])
				if err != nil || !bytes.Equal(got, data[i]) {
					t.Errorf("reader %d, blob %d: %v", g, i, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := 0; i < len(ids); i += 300 {
			if err := r.Prefetch(bg, ids[i:min(i+150, len(ids))]); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if got := be.bytes.Load(); got > total {
		t.Fatalf("fetched %d bytes for %d bytes of blobs: some twice", got, total)
	}
}

// A Get canceled while its window is fetched returns at once; the fetch
// goes on and serves the next Get.
func TestReadAheadCanceledGet(t *testing.T) {
	be := &counting{Store: mem.New()}
	ids := putBlobs(t, open(t, be, pack.Options{PackSize: 1 << 20}), 16, 8<<10)
	r := open(t, be, pack.Options{ReadAhead: 1 << 20})
	be.reset()
	be.hold = make(chan struct{})
	ctx, cancel := context.WithCancel(bg)
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := r.Get(ctx, ids[0]); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Get: %v", err)
	}
	close(be.hold)
	getAll(t, r, ids)
	if n := be.ranges.Load(); n != 1 {
		t.Fatalf("%d requests, want the one window", n)
	}
}

// A sequential reader has several windows in flight at once: the network
// works while it reads.
func TestReadAheadOverlapsFetches(t *testing.T) {
	be := &counting{Store: mem.New()}
	ids := putBlobs(t, open(t, be, pack.Options{PackSize: 4 << 20}), 256, 16<<10)
	r := open(t, be, pack.Options{ReadAhead: 128 << 10, Fetches: 4})
	be.reset()
	be.delay = 2 * time.Millisecond
	getAll(t, r, ids)
	if p := be.peak.Load(); p < 2 || p > 5 {
		t.Fatalf("at most %d requests at once, want 2 to 5 (4 ahead, 1 waited for)", p)
	}
}

func TestPrefetch(t *testing.T) {
	be := &counting{Store: mem.New()}
	ids := putBlobs(t, open(t, be, pack.Options{PackSize: 1 << 20}), 512, 8<<10)
	var packs int64
	be.List(bg, func(cas.ID, int64) error { packs++; return nil })

	t.Run("All", func(t *testing.T) {
		r := open(t, be, pack.Options{Fetches: 2}) // read-ahead off
		be.reset()
		shuffled := append([]cas.ID{cas.Sum([]byte("never stored"))}, ids...)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if err := r.Prefetch(bg, shuffled); err != nil {
			t.Fatal(err)
		}
		if n, p := be.ranges.Load(), be.peak.Load(); n != packs || p > 2 {
			t.Fatalf("prefetch of %d packs: %d requests, %d at once (bound 2)", packs, n, p)
		}
		be.reset()
		getAll(t, r, ids)
		if n := be.ranges.Load(); n != 0 {
			t.Fatalf("%d requests for prefetched blobs", n)
		}
	})
	t.Run("Gaps", func(t *testing.T) {
		r := open(t, be, pack.Options{})
		be.reset()
		// 64 blobs (512 KiB) apart: too far to join.
		var sparse []cas.ID
		for i := 0; i < len(ids); i += 64 {
			sparse = append(sparse, ids[i])
		}
		if err := r.Prefetch(bg, sparse); err != nil {
			t.Fatal(err)
		}
		if n := be.ranges.Load(); n != int64(len(sparse)) {
			t.Fatalf("%d far apart blobs: %d requests", len(sparse), n)
		}
		be.reset()
		getAll(t, r, sparse)
		if n := be.ranges.Load(); n != 0 {
			t.Fatalf("%d requests for prefetched blobs", n)
		}
		// 4 blobs (32 KiB) apart: one request a pack.
		r = open(t, be, pack.Options{})
		var near []cas.ID
		for i := 1; i < len(ids); i += 4 {
			near = append(near, ids[i])
		}
		be.reset()
		if err := r.Prefetch(bg, near); err != nil {
			t.Fatal(err)
		}
		if n := be.ranges.Load(); n != packs {
			t.Fatalf("close blobs in %d packs: %d requests", packs, n)
		}
		// The blobs between came along (a pack holds 128 blobs).
		var between []cas.ID
		for i, id := range ids {
			if i%128 >= 1 && i%128 <= 125 {
				between = append(between, id)
			}
		}
		be.reset()
		getAll(t, r, between)
		if n := be.ranges.Load(); n != 0 {
			t.Fatalf("%d requests for prefetched blobs", n)
		}
	})
}

// The benchmarks read from a backend whose every GetRange takes a
// millisecond, as a request to a cloud bucket does, and report the
// requests per iteration. The data sets are built once and shared.

const latency = time.Millisecond

// dataSet is a backend of packs built once for all the benchmarks.
type dataSet struct {
	once sync.Once
	be   *mem.Store
	ids  []cas.ID
}

func (d *dataSet) get(b *testing.B, build func(s *pack.Store) []cas.ID) (*mem.Store, []cas.ID) {
	d.once.Do(func() {
		d.be = mem.New()
		d.ids = build(open(b, d.be, pack.Options{}))
	})
	if d.ids == nil {
		b.Fatal("no data set")
	}
	return d.be, d.ids
}

var smallSet, largeSet dataSet

// BenchmarkSmallFiles reads 16 KiB files in order from a cold store, each
// a file object and then its chunk, over a network of 1 ms a request and
// then also 100 MB/s a request. Without read-ahead it reads 2,000 files,
// which take two requests each, in about the time 20,000 take with it.
func BenchmarkSmallFiles(b *testing.B) {
	be, ids := smallSet.get(b, func(s *pack.Store) []cas.ID { return smallFiles(b, s, 20000) })
	for _, net := range []struct {
		name string
		rate float64
	}{{"1ms", 0}, {"1ms+100MBps", 100e6}} {
		for _, c := range []struct {
			name      string
			readAhead int
			files     int
		}{{"off", 0, 2000}, {"on", 4 << 20, 20000}} {
			b.Run(net.name+"/"+c.name, func(b *testing.B) {
				cb := &counting{Store: be, delay: latency, rate: net.rate}
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					r, err := pack.New(bg, cb, pack.Options{ReadAhead: c.readAhead})
					if err != nil {
						b.Fatal(err)
					}
					cb.reset()
					b.StartTimer()
					getAll(b, r, ids[:2*c.files])
				}
				b.ReportMetric(float64(c.files*b.N)/b.Elapsed().Seconds(), "files/s")
				b.ReportMetric(float64(cb.ranges.Load()), "requests/op")
			})
		}
	}
}

// BenchmarkLargeFile reads a 1 GiB file of 64 KiB chunks in order from a
// cold store, over a network of 1 ms a request and then also 100 MB/s a
// request (the rate of one connection to a bucket): without read-ahead
// only its first 128 MiB; with read-ahead; with read-ahead and a reader
// that also prefetches its chunks 8 × 4 MiB ahead (as a file reader that
// knows its chunks can); and, for comparison, as a plain program reads the
// packs, with 8 ranged reads of 4 MiB at a time, not verifying anything.
func BenchmarkLargeFile(b *testing.B) {
	// 1 GiB in 64 packs.
	be, ids := largeSet.get(b, func(s *pack.Store) []cas.ID { return putBlobs(b, s, 16384, 64<<10) })
	const chunk, batch = 64 << 10, 64 // chunks
	read := func(b *testing.B, cb *counting, opt pack.Options, chunks int, prefetch bool) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			r, err := pack.New(bg, cb, opt)
			if err != nil {
				b.Fatal(err)
			}
			cb.reset()
			b.StartTimer()
			for k, id := range ids[:chunks] {
				if prefetch && k%batch == 0 {
					from := k + 8*batch
					if k == 0 {
						from = 0
					}
					go r.Prefetch(bg, ids[min(from, chunks):min(k+9*batch, chunks)])
				}
				if _, err := r.Get(bg, id); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(chunks*chunk*b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
		b.ReportMetric(float64(cb.ranges.Load()), "requests/op")
		b.ReportMetric(float64(cb.peak.Load()), "max-parallel")
	}
	for _, net := range []struct {
		name string
		rate float64
	}{{"1ms", 0}, {"1ms+100MBps", 100e6}} {
		cb := &counting{Store: be, delay: latency, rate: net.rate}
		b.Run(net.name+"/off", func(b *testing.B) { read(b, cb, pack.Options{}, len(ids)/8, false) })
		b.Run(net.name+"/on", func(b *testing.B) { read(b, cb, pack.Options{ReadAhead: 4 << 20}, len(ids), false) })
		b.Run(net.name+"/on+prefetch", func(b *testing.B) { read(b, cb, pack.Options{ReadAhead: 4 << 20}, len(ids), true) })
		b.Run(net.name+"/plain-parallel-ranges", func(b *testing.B) {
			type part struct {
				pack cas.ID
				off  int64
			}
			var parts []part
			var total int64
			be.List(bg, func(id cas.ID, size int64) error {
				for off := int64(0); off < size; off += 4 << 20 {
					parts = append(parts, part{id, off})
				}
				total += size
				return nil
			})
			for i := 0; i < b.N; i++ {
				var next atomic.Int64
				var wg sync.WaitGroup
				for g := 0; g < 8; g++ {
					wg.Go(func() {
						for k := next.Add(1) - 1; k < int64(len(parts)); k = next.Add(1) - 1 {
							if _, err := cb.GetRange(bg, parts[k].pack, parts[k].off, 4<<20); err != nil {
								b.Error(err)
							}
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(total*int64(b.N))/b.Elapsed().Seconds()/1e6, "MB/s")
		})
	}
}
