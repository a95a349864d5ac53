package pack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mlfs/mlfs/cas"
)

// Options tune a Store.
type Options struct {
	// PackSize is the size at which a pack is closed and written.
	PackSize int
	// Uploads is how many packs may be written at once.
	Uploads int
	// ReadAhead, if positive, makes a Get that misses fetch with the same
	// request the blobs that follow its blob in the pack, up to this many
	// bytes, and keep them in memory for the Gets that follow; a reader
	// that goes on through the pack is kept Fetches such windows ahead.
	// It pays where a request costs much more than its bytes, as in a
	// cloud bucket (4 MiB suits). 0, the default, reads each blob by
	// itself, which suits a local disk.
	ReadAhead int
	// ReadAheadCache bounds the bytes of fetched windows kept in memory
	// (default 128 MiB). Windows being fetched come on top: at most
	// Fetches, plus one for each Get that missed.
	ReadAheadCache int64
	// Fetches is how many read-ahead and Prefetch requests may run at
	// once (default 8), and how many packs' indexes Refresh reads at once.
	Fetches int
	// IndexCache, if set, is a folder where the Store keeps a copy of the
	// index of every pack it reads or writes, a file per pack named by
	// its id, so that a Store opened again reads from the backend only the
	// indexes of packs it has not seen: over a bucket, two requests a pack
	// saved at every open. The files are checked against the packs' names
	// when read; a damaged one is read again from the backend. Refresh
	// removes the files of packs the backend no longer lists, so give each
	// backend a folder of its own. Processes may share a folder.
	IndexCache string
	Log        *slog.Logger
}

// DefaultPackSize suits local disks and clouds alike: big enough that the
// per-object costs vanish, small enough to keep memory low.
const DefaultPackSize = 16 << 20

// Store is a packing cas.Store over a backend.
type Store struct {
	be  cas.Store
	opt Options

	mu         sync.RWMutex
	packs      []packInfo          // by pack number
	packNum    map[cas.ID]uint32   // pack id → number
	idx        map[cas.ID]location // blob → where it is
	open       *building           // pack being filled
	sealed     map[*building]bool  // full packs being written; still readable here
	err        error               // first failed pack write since the last Flush
	retry      []*building         // packs to write again at the next Flush
	generation uint64              // counts refreshes
	refreshMu  sync.Mutex
	cache      *indexCache // nil without Options.IndexCache

	writing int        // packs being written
	idle    *sync.Cond // signalled when writing drops to 0; uses mu
	slots   chan struct{}
	free    chan []byte // buffers of written packs, for reuse

	win        windows       // fetched windows of packs (readahead.go)
	fetchSlots chan struct{} // one per running read-ahead or Prefetch request
	// Window fetches run on fetchCtx, not on the context of the Get that
	// started them: other Gets may be waiting for the same window.
	fetchCtx    context.Context
	stopFetches context.CancelFunc
	fetches     sync.WaitGroup
}

type packInfo struct {
	id      cas.ID
	size    int64
	blobs   int // in its index
	deleted bool
	// bounds are the offsets of its blobs, in order, and the end of the
	// last: where a read-ahead window may begin and end, at four bytes
	// a blob.
	bounds []uint32
}

type location struct {
	pack        uint32
	off, length uint32
}

// building is a pack being assembled in memory.
type building struct {
	buf     []byte
	entries []Entry
	ids     map[cas.ID]int // blob → entry index
}

var _ cas.Store = (*Store)(nil)

// New opens a pack store over be, loading the index of every pack in it
// (see Refresh).
func New(ctx context.Context, be cas.Store, opt Options) (*Store, error) {
	if opt.PackSize <= 0 {
		opt.PackSize = DefaultPackSize
	}
	if opt.Uploads <= 0 {
		opt.Uploads = 2
	}
	if opt.ReadAheadCache <= 0 {
		opt.ReadAheadCache = DefaultReadAheadCache
	}
	if opt.Fetches <= 0 {
		opt.Fetches = 8
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	s := &Store{be: be, opt: opt, packNum: map[cas.ID]uint32{}, idx: map[cas.ID]location{},
		sealed: map[*building]bool{}, slots: make(chan struct{}, opt.Uploads), free: make(chan []byte, opt.Uploads+1),
		win: newWindows(opt.ReadAheadCache), fetchSlots: make(chan struct{}, opt.Fetches)}
	s.idle = sync.NewCond(&s.mu)
	s.cache = openIndexCache(opt.IndexCache, opt.Log)
	s.fetchCtx, s.stopFetches = context.WithCancel(context.Background())
	if err := s.Refresh(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Backend returns the store the packs are kept in.
func (s *Store) Backend() cas.Store { return s.be }

// Refresh loads the index of packs written since the last refresh (by other
// processes, say) and forgets packs that were deleted. It reads the indexes
// from Options.IndexCache where it can, and the others from the backend,
// Options.Fetches packs at a time.
func (s *Store) Refresh(ctx context.Context) error {
	type listed struct {
		id   cas.ID
		size int64
	}
	var all []listed
	start := time.Now()
	if err := s.be.List(ctx, func(id cas.ID, size int64) error {
		all = append(all, listed{id, size})
		return nil
	}); err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	present := make(map[cas.ID]bool, len(all))
	for _, p := range all {
		present[p.id] = true
	}
	s.mu.Lock()
	s.generation++
	vanished := false
	for _, p := range s.packs {
		if !p.deleted && !present[p.id] {
			vanished = true
		}
	}
	if vanished {
		// Another process compacted: rebuild from scratch.
		s.packs, s.packNum, s.idx = nil, map[cas.ID]uint32{}, map[cas.ID]location{}
	}
	var todo []listed
	for _, p := range all {
		if _, ok := s.packNum[p.id]; !ok {
			todo = append(todo, p)
		}
	}
	s.mu.Unlock()

	// Over a bucket each index costs two requests of a few milliseconds,
	// mostly waiting: read several packs' at once. The results go in in
	// listing order, so that which copy of a blob stored twice is used
	// does not depend on which request came back first.
	entries := make([][]Entry, len(todo))
	ok := make([]bool, len(todo))
	sem := make(chan struct{}, s.opt.Fetches)
	var wg sync.WaitGroup
	for i, p := range todo {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			entries[i], ok[i] = s.packIndex(ctx, p.id, p.size)
		})
	}
	wg.Wait()
	s.mu.Lock()
	for i, p := range todo {
		if ok[i] {
			s.addPack(p.id, p.size, entries[i])
		}
	}
	s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		// The packs not read are read at the next Refresh.
		return fmt.Errorf("read pack indexes: %w", err)
	}
	// Every time, not only when this Store saw packs vanish: files of
	// packs deleted while no Store was open go too. It reads a local
	// folder, little next to the listing of the backend.
	s.cache.prune(present, start)
	return nil
}

// packIndex returns the entries of pack id, of size bytes, from the index
// cache or else from the backend (and then caches them). A pack that
// cannot be read is logged and skipped: the others are still of use, and
// the next Refresh tries it again.
func (s *Store) packIndex(ctx context.Context, id cas.ID, size int64) ([]Entry, bool) {
	if entries, ok := s.cache.load(id, size); ok {
		return entries, true
	}
	entries, tail, err := s.readIndex(ctx, id, size)
	if err != nil {
		if ctx.Err() == nil {
			s.opt.Log.Warn("skipping unreadable pack", "pack", id, "err", err)
		}
		return nil, false
	}
	s.cache.save(id, tail)
	return entries, true
}

// addPack registers a written pack; s.mu must be held. Blobs already
// indexed elsewhere keep their place unless overwrite is set.
func (s *Store) addPack(id cas.ID, size int64, entries []Entry, overwrite ...bool) {
	n, ok := s.packNum[id]
	if !ok {
		n = uint32(len(s.packs))
		s.packs = append(s.packs, packInfo{id: id, size: size, blobs: len(entries), bounds: bounds(entries)})
		s.packNum[id] = n
	}
	for _, e := range entries {
		if _, dup := s.idx[e.ID]; dup && len(overwrite) == 0 {
			continue
		}
		s.idx[e.ID] = location{n, e.Offset, e.Length}
	}
}

// bounds returns the blob boundaries of a pack (see packInfo). The entries
// tile the data area from 0, as ParseIndex checks and write builds them.
func bounds(entries []Entry) []uint32 {
	b := make([]uint32, len(entries)+1)
	for i, e := range entries {
		b[i] = e.Offset
		b[i+1] = e.Offset + e.Length
	}
	return b
}

// readIndex reads a pack's tail from the backend, with two requests (the
// trailer says how long the index is), and returns its entries and the
// tail: the index and then the trailer.
func (s *Store) readIndex(ctx context.Context, id cas.ID, size int64) ([]Entry, []byte, error) {
	if size < trailerSize {
		return nil, nil, fmt.Errorf("pack %s: %w: %d bytes", id.Short(), ErrMalformed, size)
	}
	t, err := s.be.GetRange(ctx, id, size-trailerSize, trailerSize)
	if err != nil {
		return nil, nil, err
	}
	n, sum, err := checkTrailer(id, t, size)
	if err != nil {
		return nil, nil, fmt.Errorf("pack %s: %w", id.Short(), err)
	}
	ilen := int64(n) * entrySize
	idx, err := s.be.GetRange(ctx, id, size-trailerSize-ilen, ilen)
	if err != nil {
		return nil, nil, err
	}
	entries, err := ParseIndex(idx, sum, size)
	if err != nil {
		return nil, nil, fmt.Errorf("pack %s: %w", id.Short(), err)
	}
	// A new slice: appending to idx could write past it into memory the
	// backend still owns.
	return entries, slices.Concat(idx, t), nil
}

// findLocal looks for id in packs not yet written; s.mu must be held.
func (s *Store) findLocal(id cas.ID) ([]byte, bool) {
	if s.open != nil {
		if i, ok := s.open.ids[id]; ok {
			e := s.open.entries[i]
			return s.open.buf[e.Offset : e.Offset+e.Length], true
		}
	}
	for b := range s.sealed {
		if i, ok := b.ids[id]; ok {
			e := b.entries[i]
			return b.buf[e.Offset : e.Offset+e.Length], true
		}
	}
	return nil, false
}

// found is where locate found a blob: in memory (inMem, with its bytes)
// or in a written pack.
type found struct {
	inMem  bool
	mem    []byte
	pack   cas.ID
	loc    location
	bounds []uint32 // of the pack's blobs
}

// locate finds a blob. With refresh, a miss reloads the index once (other
// processes may have written packs since); concurrent misses share one
// reload.
func (s *Store) locate(ctx context.Context, id cas.ID, refresh bool) (found, error) {
	for attempt := 0; ; attempt++ {
		s.mu.RLock()
		gen := s.generation
		if b, ok := s.findLocal(id); ok {
			f := found{inMem: true, mem: append([]byte{}, b...)}
			s.mu.RUnlock()
			return f, nil
		}
		l, ok := s.idx[id]
		var f found
		if ok {
			f = found{pack: s.packs[l.pack].id, loc: l, bounds: s.packs[l.pack].bounds}
		}
		s.mu.RUnlock()
		if ok {
			return f, nil
		}
		if !refresh || attempt > 0 {
			return f, fmt.Errorf("object %s: %w", id, cas.ErrNotFound)
		}
		if err := s.refreshSince(ctx, gen); err != nil {
			return f, err
		}
	}
}

// refreshSince refreshes unless a refresh began after generation gen.
func (s *Store) refreshSince(ctx context.Context, gen uint64) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	s.mu.RLock()
	done := s.generation != gen
	s.mu.RUnlock()
	if done {
		return nil
	}
	return s.Refresh(ctx)
}

func (s *Store) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	return s.get(ctx, id, 0, -1, true)
}

func (s *Store) GetRange(ctx context.Context, id cas.ID, off, length int64) ([]byte, error) {
	return s.get(ctx, id, off, length, false)
}

func (s *Store) get(ctx context.Context, id cas.ID, off, length int64, whole bool) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		f, err := s.locate(ctx, id, true)
		if err != nil {
			return nil, err
		}
		pack, l := f.pack, f.loc
		size := int64(l.length)
		if f.inMem {
			size = int64(len(f.mem))
		}
		lo, hi, err := cas.ClampRange(id, size, off, length)
		if err != nil {
			return nil, err
		}
		if f.inMem {
			return f.mem[lo:hi], nil
		}
		// With read-ahead the blob comes from a window of its pack; if no
		// window holds it, by itself.
		b, windowed, err := s.fromWindow(ctx, f, lo, hi)
		if err != nil {
			return nil, err
		}
		if !windowed {
			b, err = s.be.GetRange(ctx, pack, int64(l.off)+lo, hi-lo)
			if errors.Is(err, cas.ErrNotFound) && attempt == 0 {
				// The pack was compacted away by another process.
				if rerr := s.Refresh(ctx); rerr != nil {
					return nil, rerr
				}
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("object %s in pack %s: %w", id, pack.Short(), err)
			}
			if int64(len(b)) != hi-lo {
				return nil, fmt.Errorf("object %s in pack %s: short read (%d of %d bytes): %w", id, pack.Short(), len(b), hi-lo, cas.ErrCorrupt)
			}
		}
		if whole {
			if err := id.Verify(b); err != nil {
				return nil, fmt.Errorf("pack %s: %w", pack.Short(), err)
			}
		}
		return b, nil
	}
}

func (s *Store) Stat(ctx context.Context, id cas.ID) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f, err := s.locate(ctx, id, false)
	if err != nil {
		return 0, err
	}
	if f.inMem {
		return int64(len(f.mem)), nil
	}
	return int64(f.loc.length), nil
}

func (s *Store) Put(ctx context.Context, id cas.ID, data []byte) error {
	return s.put(ctx, id, data, false)
}

// put appends data to the open pack. With rewrite, a blob that is already
// in a written pack is written again (Compact moves blobs that way).
func (s *Store) put(ctx context.Context, id cas.ID, data []byte, rewrite bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if int64(len(data)) > 1<<31 {
		return fmt.Errorf("put object %s: %d bytes is more than a pack can hold", id, len(data))
	}
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	_, written := s.idx[id]
	if _, pending := s.findLocal(id); pending || (written && !rewrite) {
		s.mu.Unlock()
		return nil
	}
	if s.open == nil {
		s.open = &building{buf: s.newBuf(), ids: map[cas.ID]int{}}
	}
	b := s.open
	b.ids[id] = len(b.entries)
	b.entries = append(b.entries, Entry{ID: id, Offset: uint32(len(b.buf)), Length: uint32(len(data))})
	b.buf = append(b.buf, data...)
	if len(b.buf) < s.opt.PackSize {
		s.mu.Unlock()
		return nil
	}
	s.open = nil
	s.sealed[b] = true
	s.mu.Unlock()
	return s.write(ctx, b)
}

// write stores a sealed pack in the background once a slot is free. If
// ctx ends first, or the backend fails, the pack stays in memory (still
// readable) and the next Flush writes it again: a lost pack is never
// silently dropped, since other writers may already have deduplicated
// against its blobs.
func (s *Store) write(ctx context.Context, b *building) error {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		s.retryLater(b, nil)
		return ctx.Err()
	}
	s.mu.Lock()
	s.writing++
	s.mu.Unlock()
	go func() {
		defer func() {
			<-s.slots
			s.mu.Lock()
			if s.writing--; s.writing == 0 {
				s.idle.Broadcast()
			}
			s.mu.Unlock()
		}()
		data := appendIndex(b.buf, b.entries)
		id := Name(data)
		// Not the caller's context: the caller's Put has returned and a
		// later Flush waits for this write.
		if err := s.be.Put(context.Background(), id, data); err != nil {
			s.retryLater(b, fmt.Errorf("write pack %s: %w", id.Short(), err))
			return
		}
		s.mu.Lock()
		s.addPack(id, int64(len(data)), b.entries, true)
		delete(s.sealed, b)
		s.mu.Unlock()
		// The next Store opened over the backend need not read back
		// the index of a pack written here. (Before reuse: the tail
		// is part of data.)
		s.cache.save(id, data[len(b.buf):])
		s.reuse(data)
		s.opt.Log.Debug("pack written", "pack", id.Short(), "blobs", len(b.entries), "bytes", len(data))
	}()
	return nil
}

// retryLater keeps a pack that could not be written for the next Flush.
// A backend error also makes Put refuse new data until a Flush succeeds,
// which bounds the memory that unwritten packs hold.
func (s *Store) retryLater(b *building, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retry = append(s.retry, b)
	if err != nil && s.err == nil {
		s.err = err
		s.opt.Log.Warn("pack write failed; kept in memory for the next flush", "err", err)
	}
}

// newBuf returns an empty buffer for a pack, reusing one of a written
// pack if there is one: a fresh 18 MiB buffer costs a page-zeroing pass.
func (s *Store) newBuf() []byte {
	select {
	case b := <-s.free:
		return b[:0]
	default:
		return make([]byte, 0, s.opt.PackSize+s.opt.PackSize/8)
	}
}

// reuse keeps the buffer of a written pack (no longer in s.sealed, so no
// reader holds it) for the next one.
func (s *Store) reuse(b []byte) {
	select {
	case s.free <- b:
	default:
	}
}

// Flush writes the open pack and any pack whose write failed before, and
// waits until every pack is stored. It returns the first error of this
// round; once a round succeeds the store accepts writes again.
func (s *Store) Flush(ctx context.Context) error {
	// Puts canceled meanwhile may queue more packs for retry; go round
	// until none is left (each round writes all that were queued).
	for {
		s.mu.Lock()
		todo := s.retry
		s.retry = nil
		s.err = nil
		if b := s.open; b != nil {
			s.open = nil
			s.sealed[b] = true
			todo = append(todo, b)
		}
		s.mu.Unlock()
		for _, b := range todo {
			if err := s.write(ctx, b); err != nil {
				return err
			}
		}
		s.mu.Lock()
		for s.writing > 0 {
			s.idle.Wait()
		}
		err, more := s.err, len(s.retry) > 0
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
}

func (s *Store) List(ctx context.Context, fn func(cas.ID, int64) error) error {
	if err := s.Flush(ctx); err != nil {
		return err
	}
	s.mu.RLock()
	type blob struct {
		id   cas.ID
		size int64
	}
	all := make([]blob, 0, len(s.idx))
	for id, l := range s.idx {
		all = append(all, blob{id, int64(l.length)})
	}
	s.mu.RUnlock()
	for _, b := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(b.id, b.size); err != nil {
			return err
		}
	}
	return nil
}

// Delete drops a blob from the index; Compact reclaims its space.
func (s *Store) Delete(ctx context.Context, id cas.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.idx, id)
	s.mu.Unlock()
	return nil
}

func (s *Store) CreateRef(ctx context.Context, name string, id cas.ID) error {
	if err := s.Flush(ctx); err != nil {
		return fmt.Errorf("create ref %s: %w", name, err)
	}
	return s.be.CreateRef(ctx, name, id)
}

func (s *Store) GetRef(ctx context.Context, name string) (cas.ID, error) {
	return s.be.GetRef(ctx, name)
}

func (s *Store) ListRefs(ctx context.Context, prefix string, fn func(string, cas.ID) error) error {
	return s.be.ListRefs(ctx, prefix, fn)
}

func (s *Store) DeleteRef(ctx context.Context, name string) error {
	return s.be.DeleteRef(ctx, name)
}

// Close flushes, ends the window fetches and closes the backend.
func (s *Store) Close() error {
	err := s.Flush(context.Background())
	s.stopFetches()
	s.fetches.Wait()
	return errors.Join(err, s.be.Close())
}

// PackEntries reads the index of pack id, of size bytes, from its tail in
// the backend (two small reads), without adding it to the Store's index.
// It lets a caller learn what a pack holds without reading all of it: the
// tiered store uses it to skip uploading packs whose blobs the remote has.
func (s *Store) PackEntries(ctx context.Context, id cas.ID, size int64) ([]Entry, error) {
	entries, _, err := s.readIndex(ctx, id, size)
	return entries, err
}

// Locate tells where a written blob lives: its pack and byte range. Tests
// use it to damage a blob on purpose.
func (s *Store) Locate(id cas.ID) (pack cas.ID, off, length int64, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l, ok := s.idx[id]
	if !ok {
		return cas.ID{}, 0, 0, false
	}
	return s.packs[l.pack].id, int64(l.off), int64(l.length), true
}

// CompactStats tells what Compact did.
type CompactStats struct {
	PacksDeleted, PacksRewritten int
	BytesFreed                   int64
}

// Compact deletes packs that hold no live blob and rewrites packs whose
// live bytes are less than minLive (0 to 1) of their size. It must not run
// while another process writes to the same backend (repo.GC holds the
// store's lock for that).
func (s *Store) Compact(ctx context.Context, minLive float64) (CompactStats, error) {
	var st CompactStats
	if err := s.Flush(ctx); err != nil {
		return st, err
	}
	s.mu.RLock()
	live := make([]int64, len(s.packs))
	blobs := make([][]cas.ID, len(s.packs))
	for id, l := range s.idx {
		live[l.pack] += int64(l.length)
		blobs[l.pack] = append(blobs[l.pack], id)
	}
	packs := append([]packInfo(nil), s.packs...)
	s.mu.RUnlock()

	var rewritten []int
	for n, p := range packs {
		if p.deleted {
			continue
		}
		switch {
		case len(blobs[n]) == 0:
			if err := s.be.Delete(ctx, p.id); err != nil {
				return st, err
			}
			s.markDeleted(n)
			st.PacksDeleted++
			st.BytesFreed += p.size
		case len(blobs[n]) < p.blobs && float64(live[n]) < minLive*float64(p.size):
			// Only a pack with dead blobs is rewritten: one whose blobs
			// are all live would come out the same, under the same name.
			for _, id := range blobs[n] {
				b, err := s.Get(ctx, id)
				if err != nil {
					return st, fmt.Errorf("compact pack %s: %w", p.id.Short(), err)
				}
				if err := s.put(ctx, id, b, true); err != nil {
					return st, err
				}
			}
			rewritten = append(rewritten, n)
		}
	}
	if err := s.Flush(ctx); err != nil {
		return st, err
	}
	// The rewritten blobs now point at new packs; the old ones can go,
	// unless a blob still lives there (a new pack that came out the same).
	s.mu.RLock()
	used := map[uint32]bool{}
	for _, l := range s.idx {
		used[l.pack] = true
	}
	s.mu.RUnlock()
	for _, n := range rewritten {
		if used[uint32(n)] {
			continue
		}
		if err := s.be.Delete(ctx, packs[n].id); err != nil {
			return st, err
		}
		s.markDeleted(n)
		st.PacksRewritten++
		st.BytesFreed += packs[n].size - live[n]
	}
	return st, nil
}

func (s *Store) markDeleted(n int) {
	s.mu.Lock()
	id := s.packs[n].id
	s.packs[n].deleted = true
	delete(s.packNum, id)
	s.mu.Unlock()
	s.cache.remove(id)
}
