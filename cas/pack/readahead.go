package pack

import (
	"bytes"
	"cmp"
	"container/list"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/mlfs/mlfs/cas"
)

// Reading ahead: see "Reading from a slow backend" in doc.go.

// DefaultReadAheadCache is the memory for fetched windows unless
// Options.ReadAheadCache says otherwise.
const DefaultReadAheadCache = 128 << 20

const (
	// maxGap is the most bytes Prefetch reads that nobody asked for, to
	// serve two neighbouring ranges with one request: at 1 ms a request
	// and 100–200 MB/s, 256 KiB cost about what another request does.
	maxGap = 256 << 10
	// prefetchSpan bounds one Prefetch request when ReadAhead is off.
	prefetchSpan = 4 << 20
)

// window is a run of whole blobs of one pack, bytes [start, end) of it,
// fetched with one GetRange. Its bytes are not verified as a whole (a pack
// has no hash of its data); each blob is verified when a Get takes it out,
// so a damaged blob fails alone and its neighbours are still served.
type window struct {
	pack       cas.ID
	start, end int64
	done       chan struct{} // closed once data or err is set
	data       []byte
	err        error

	// Guarded by windows.mu:
	elem        *list.Element // in the LRU list once loaded
	speculative bool          // fetched ahead of a reader, not for one
	first       int64         // end of the blob the first read took; 0 before
	ahead       bool          // the windows after it are fetched or fetching
}

// windows is the read-ahead cache. Windows are keyed by pack id, not pack
// number: numbers change when Refresh rebuilds the index, but a pack's
// bytes never change under its name.
type windows struct {
	mu     sync.Mutex
	byPack map[cas.ID][]*window // by start; they never overlap
	lru    list.List            // loaded windows, most recently used first
	bytes  int64                // of all windows in byPack, loaded or not
	max    int64
	count  atomic.Int64 // windows in byPack, read without mu
}

func newWindows(max int64) windows {
	return windows{byPack: map[cas.ID][]*window{}, max: max}
}

// find returns the window that holds byte off of pack, or nil and the
// position where a window starting at off would go. c.mu must be held.
func (c *windows) find(pack cas.ID, off int64) (*window, int) {
	ws := c.byPack[pack]
	i := sort.Search(len(ws), func(i int) bool { return ws[i].start > off })
	if i > 0 && off < ws[i-1].end {
		return ws[i-1], i - 1
	}
	return nil, i
}

// claim adds a window from start, which no window holds, to end or to the
// next window, whichever comes first; both are blob boundaries, so windows
// always hold whole blobs. It first evicts windows to make room (which
// may drop windows of this pack, so it looks for its place after). A
// speculative window that does not fit (the cache is full of windows being
// fetched) is not added: claim returns nil. c.mu must be held.
func (c *windows) claim(pack cas.ID, start, end int64, speculative bool) *window {
	c.evict(end-start, nil)
	_, i := c.find(pack, start)
	if ws := c.byPack[pack]; i < len(ws) {
		end = min(end, ws[i].start)
	}
	size := end - start
	if speculative && c.bytes+size > c.max {
		return nil
	}
	w := &window{pack: pack, start: start, end: end, done: make(chan struct{}), speculative: speculative}
	c.byPack[pack] = slices.Insert(c.byPack[pack], i, w)
	c.bytes += size
	c.count.Add(1)
	return w
}

// evict drops least recently used loaded windows, except keep, until need
// more bytes fit. Windows being fetched stay: Gets wait for them. A Get
// holding an evicted window still reads it; only the cache forgets it.
func (c *windows) evict(need int64, keep *window) {
	for c.bytes+need > c.max {
		e := c.lru.Back()
		if e == nil || e.Value == keep {
			return
		}
		c.drop(e.Value.(*window))
	}
}

// drop forgets w. c.mu must be held.
func (c *windows) drop(w *window) {
	if w.elem != nil {
		c.lru.Remove(w.elem)
		w.elem = nil
	}
	ws := c.byPack[w.pack]
	i, ok := slices.BinarySearchFunc(ws, w.start, func(x *window, start int64) int { return cmp.Compare(x.start, start) })
	if !ok || ws[i] != w {
		return
	}
	if ws = slices.Delete(ws, i, i+1); len(ws) == 0 {
		delete(c.byPack, w.pack)
	} else {
		c.byPack[w.pack] = ws
	}
	c.bytes -= w.end - w.start
	c.count.Add(-1)
}

// windowEnd returns where a window from start should end: at the end of
// the last blob that ends within span bytes of start, or of the blob at
// start if that alone is longer. start must be a blob boundary before the
// end of the data.
func windowEnd(bounds []uint32, start int64, span int) int64 {
	limit := start + int64(span)
	j := sort.Search(len(bounds), func(j int) bool { return int64(bounds[j]) > limit }) - 1
	if int64(bounds[j]) <= start {
		j = sort.Search(len(bounds), func(j int) bool { return int64(bounds[j]) > start })
	}
	return int64(bounds[j])
}

// fetch fills w with one GetRange. A failed window is dropped, so the next
// Get claims it afresh; the Gets waiting for it read their blobs directly.
func (s *Store) fetch(w *window) {
	b, err := s.be.GetRange(s.fetchCtx, w.pack, w.start, w.end-w.start)
	if err == nil && int64(len(b)) != w.end-w.start {
		err = fmt.Errorf("pack %s: short read (%d of %d bytes): %w", w.pack.Short(), len(b), w.end-w.start, cas.ErrCorrupt)
	}
	if err != nil {
		s.opt.Log.Debug("read-ahead fetch failed", "pack", w.pack.Short(), "off", w.start, "len", w.end-w.start, "err", err)
	}
	c := &s.win
	c.mu.Lock()
	if err != nil {
		w.err = err
		c.drop(w)
	} else {
		w.data = b
		w.elem = c.lru.PushFront(w)
		c.evict(0, w)
	}
	c.mu.Unlock()
	close(w.done)
}

// fromWindow returns bytes lo to hi of the blob that f locates, copied from
// the window that holds it, first fetching the window if read-ahead is on.
// It returns ok false if no window holds the blob, or the window's fetch
// failed: the caller then reads the blob by itself, which reports errors
// in the blob's own terms and handles a pack compacted away. It returns
// when ctx ends even if the fetch goes on.
func (s *Store) fromWindow(ctx context.Context, f found, lo, hi int64) (b []byte, ok bool, err error) {
	readAhead := s.opt.ReadAhead > 0
	if f.loc.length == 0 || !readAhead && s.win.count.Load() == 0 {
		return nil, false, nil
	}
	off, end := int64(f.loc.off), int64(f.loc.off)+int64(f.loc.length)
	c := &s.win
	c.mu.Lock()
	w, _ := c.find(f.pack, off)
	if w == nil && readAhead {
		w = c.claim(f.pack, off, windowEnd(f.bounds, off, s.opt.ReadAhead), false)
		s.fetches.Go(func() { s.fetch(w) })
	}
	if w == nil || end > w.end {
		c.mu.Unlock()
		return nil, false, nil
	}
	if w.elem != nil {
		c.lru.MoveToFront(w.elem)
	}
	var next []*window
	if readAhead {
		next = s.ahead(w, f.bounds, off, end)
	}
	c.mu.Unlock()
	for _, n := range next {
		s.fetches.Go(func() {
			defer func() { <-s.fetchSlots }()
			s.fetch(n)
		})
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		return nil, true, ctx.Err()
	}
	if w.err != nil {
		return nil, false, nil
	}
	return bytes.Clone(w.data[off-w.start+lo : off-w.start+hi]), true, nil
}

// ahead claims the windows after w, up to Fetches of them, once its reader
// is seen to go forward: it reads a blob beyond the first one it read in
// w; or w was itself fetched ahead and the reader followed; or w begins
// the pack, as it does for a sequential reader coming from another pack (a
// random reader starts there once in as many blobs as the pack holds). It
// claims only while fetch slots are free; if one is missing, the next Get
// from w tries again. The caller fetches what it returns, each holding a
// slot. The blob read is [off, end); c.mu must be held.
func (s *Store) ahead(w *window, bounds []uint32, off, end int64) []*window {
	if w.ahead {
		return nil
	}
	if w.first == 0 {
		w.first = end
	}
	if !w.speculative && w.start > 0 && off < w.first {
		return nil
	}
	c := &s.win
	var claimed []*window
	pos, dataEnd := w.end, int64(bounds[len(bounds)-1])
	for n := 0; n < s.opt.Fetches && pos < dataEnd; n++ {
		if x, _ := c.find(w.pack, pos); x != nil {
			pos = x.end
			continue
		}
		select {
		case s.fetchSlots <- struct{}{}:
		default:
			return claimed
		}
		x := c.claim(w.pack, pos, windowEnd(bounds, pos, s.opt.ReadAhead), true)
		if x == nil {
			<-s.fetchSlots
			return claimed
		}
		claimed = append(claimed, x)
		pos = x.end
	}
	w.ahead = true
	return claimed
}

// Prefetch reads the blobs ids into the read-ahead cache, so that the Gets
// that follow are served from memory: for callers that know what they will
// read (the files of a directory, the next chunks of a file). It groups the
// blobs by pack, joins neighbours (across gaps of up to 256 KiB) into
// ranges of up to ReadAhead bytes (4 MiB if that is off), and fetches
// those at most Fetches at a time, one GetRange each. Unknown ids, and
// blobs in packs not yet written, are skipped.
//
// Prefetch returns when every range is fetched, or when ctx ends; the
// fetches it started go on, for Gets that wait for them. Its error is the
// first failed fetch; a Get of a blob concerned reads it again. Prefetching
// more than ReadAheadCache evicts the first blobs before they are read.
func (s *Store) Prefetch(ctx context.Context, ids []cas.ID) error {
	type blob struct {
		pack     cas.ID
		off, end int64
	}
	var want []blob
	s.mu.RLock()
	for _, id := range ids {
		if _, ok := s.findLocal(id); ok {
			continue
		}
		if l, ok := s.idx[id]; ok && l.length > 0 {
			want = append(want, blob{s.packs[l.pack].id, int64(l.off), int64(l.off) + int64(l.length)})
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(want, func(a, b blob) int {
		return cmp.Or(bytes.Compare(a.pack[:], b.pack[:]), cmp.Compare(a.off, b.off))
	})
	span := int64(s.opt.ReadAhead)
	if span <= 0 {
		span = prefetchSpan
	}
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for i := 0; i < len(want); {
		r := want[i]
		for i++; i < len(want) && want[i].pack == r.pack && want[i].off-r.end <= maxGap && want[i].end-r.off <= span; i++ {
			r.end = max(r.end, want[i].end)
		}
		select {
		case s.fetchSlots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		s.fetches.Go(func() {
			defer wg.Done()
			defer func() { <-s.fetchSlots }()
			if err := s.fill(r.pack, r.off, r.end); err != nil {
				errMu.Lock()
				if first == nil {
					first = err
				}
				errMu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if first != nil {
		return fmt.Errorf("prefetch: %w", first)
	}
	return nil
}

// fill fetches the parts of bytes [start, end) of pack that no window
// holds, one GetRange each; start and end are blob boundaries.
func (s *Store) fill(pack cas.ID, start, end int64) error {
	var first error
	for pos := start; pos < end; {
		s.win.mu.Lock()
		w, _ := s.win.find(pack, pos)
		claimed := w == nil
		if claimed {
			w = s.win.claim(pack, pos, end, false)
		}
		s.win.mu.Unlock()
		if claimed {
			s.fetch(w)
			if first == nil {
				first = w.err
			}
		}
		pos = w.end
	}
	return first
}
