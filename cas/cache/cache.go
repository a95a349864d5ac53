package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/sys/unix"

	"github.com/mlfs/mlfs/cas"
)

// errClosed is returned by every call on a closed Cache.
var errClosed = errors.New("cache is closed")

// Stats are counters since New, and the current contents.
type Stats struct {
	Hits         int64 // Gets served from disk (or from memory, written behind)
	Misses       int64 // Gets that were not (they waited for a fetch)
	Fetches      int64 // objects fetched from the source; concurrent misses of one id share one
	FetchedBytes int64 // bytes those fetches returned
	Evictions    int64 // objects dropped to stay under MaxBytes
	Dropped      int64 // cached copies found wrong or unreadable, dropped and fetched again
	Bytes        int64 // bytes of the objects cached now
	Count        int   // objects cached now
	DiskBytes    int64 // bytes of the cache's files: Bytes, record headers, and dead records
	MaxBytes     int64 // the bound on DiskBytes
}

// Cache is a bounded disk cache of verified objects in front of a
// cas.Getter. Its methods are safe for concurrent use.
type Cache struct {
	dir, segDir string
	max, segMax int64
	src         cas.Getter
	log         *slog.Logger
	lock        *os.File // holds the flock on dir/lock

	flights singleflight.Group
	ctx     context.Context // fetches run under it; Close cancels it
	cancel  context.CancelFunc
	fills   sync.WaitGroup

	// mu guards what follows, the segments' fields but their files'
	// contents, and every creation or removal of a file.
	mu      sync.Mutex
	idx     map[cas.ID]entry
	segs    map[uint64]*segment
	order   []uint64 // seqs of segs, oldest first
	active  *segment // appended to; nil until the first store
	nextSeq uint64
	bytes   int64 // of the objects in idx
	disk    int64 // of the segment files
	gen     uint64
	closed  bool

	// trusted: the source verifies what its Get returns (SourceVerifies),
	// so a fetch is not hashed again.
	trusted bool
	// With write-behind (WriteBehind), fetched objects wait in pending
	// (guarded by mu), at most behindMax bytes of them, for the writers
	// to put them on disk; Gets find them there meanwhile.
	behindMax    int64
	pending      map[cas.ID][]byte
	pendingBytes int64
	writes       chan cas.ID
	writers      sync.WaitGroup
	indexing     sync.WaitGroup // index files being written

	hits, misses, fetches, fetched, evictions, dropped atomic.Int64
}

var _ cas.Getter = (*Cache)(nil)

// An Option changes how a Cache works; see New.
type Option func(*Cache)

// SourceVerifies says that the source's Get verifies what it returns, as
// cas.Getter promises and every store in this module does (the pack store
// hashes each blob it reads): the cache then does not hash a fetched
// object again before it returns and stores it. Without it, a source that
// breaks the promise cannot hand a wrong byte through the cache. What is
// read back from the cache's disk is always verified.
func SourceVerifies() Option { return func(c *Cache) { c.trusted = true } }

// WriteBehind makes a fetch return as soon as the object is fetched and
// leaves writing it to disk to background writers, with up to maxBytes of
// objects waiting for them (held in memory, and served from there); a fetch
// that finds that much waiting writes its object itself. For sources whose
// fetches the reader waits on: the disk write is then off its path. Close
// and Flush wait for the writes.
func WriteBehind(maxBytes int64) Option {
	return func(c *Cache) {
		if maxBytes > 0 {
			c.behindMax = maxBytes
		}
	}
}

// writers is how many goroutines write objects behind, with WriteBehind.
const writers = 2

// New opens (creating if needed) a cache in dir holding at most maxBytes of
// objects fetched from src. It reads the segments' indexes (or, for a
// segment without one, its records' headers), evicting the oldest segments
// if the bound shrank. One Cache at a time may use dir: a second New fails
// until the first is closed, also across processes. A nil log discards.
func New(dir string, maxBytes int64, src cas.Getter, log *slog.Logger, opts ...Option) (*Cache, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("cache %s: size %d bytes: must be positive", dir, maxBytes)
	}
	if src == nil {
		return nil, fmt.Errorf("cache %s: no source to fetch from", dir)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", dir, err)
	}
	c := &Cache{
		dir:    abs,
		segDir: filepath.Join(abs, "segments"),
		max:    maxBytes,
		segMax: segmentBytes(maxBytes),
		src:    src,
		log:    log,
		idx:    map[cas.ID]entry{},
		segs:   map[uint64]*segment{},
	}
	for _, o := range opts {
		o(c)
	}
	if err := c.open(); err != nil {
		c.closeFiles()
		if c.lock != nil {
			c.lock.Close()
		}
		return nil, fmt.Errorf("cache %s: %w", abs, err)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if c.behindMax > 0 {
		c.pending = map[cas.ID][]byte{}
		c.writes = make(chan cas.ID, 4096)
		for range writers {
			c.writers.Go(c.writeBehind)
		}
	}
	log.Debug("cache opened", "dir", abs, "objects", len(c.idx), "bytes", c.bytes, "disk_bytes", c.disk, "max_bytes", maxBytes)
	return c, nil
}

func (c *Cache) open() error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(c.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	c.lock = lock
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return errors.New("in use by another cache (another mlfs process, or an unclosed Cache in this one)")
		}
		return fmt.Errorf("lock: %w", err)
	}
	// The layout of earlier versions, a file per object: a cache, so
	// dropped rather than converted.
	for _, old := range []string{"objects", "tmp"} {
		if err := os.RemoveAll(filepath.Join(c.dir, old)); err != nil {
			return fmt.Errorf("remove the old layout's %s/: %w", old, err)
		}
	}
	if err := os.MkdirAll(c.segDir, 0o700); err != nil {
		return err
	}
	seqs, err := listSegments(c.segDir)
	if err != nil {
		return fmt.Errorf("list segments: %w", err)
	}
	for _, seq := range seqs {
		if err := c.load(seq); err != nil {
			return err
		}
		c.nextSeq = seq + 1
	}
	c.evictFor(0)
	return nil
}

// load indexes the segment seq, which newer ones override.
func (c *Cache) load(seq uint64) error {
	p := filepath.Join(c.segDir, segName(seq)+segSuffix)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("segment %s: %w", p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("segment %s: %w", p, err)
	}
	if fi.Size() == 0 {
		f.Close()
		c.removeFiles(seq)
		return nil
	}
	s := &segment{seq: seq, f: f, size: fi.Size()}
	add := func(id cas.ID, off, n int64) {
		if old, ok := c.idx[id]; ok {
			c.bytes -= old.size // its bytes in the older segment are dead now
		}
		c.gen++
		c.idx[id] = entry{seg: seq, off: off, size: n, gen: c.gen}
		c.bytes += n
		s.add(id, off, n)
	}
	if readIndex(filepath.Join(c.segDir, segName(seq)+idxSuffix), s.size, add) {
		s.index = true
	} else {
		// No index (a crash, or the segment was being appended to):
		// read its headers. A torn tail stays as dead bytes.
		scanRecords(f, s.size, add)
	}
	s.sealed = true // appends go to a new segment
	c.segs[seq] = s
	c.order = append(c.order, seq)
	c.disk += s.size
	return nil
}

// readCached returns the cached copy of id if there is one and it verifies.
// A copy that does not is dropped, and readCached reports a miss.
func (c *Cache) readCached(id cas.ID) ([]byte, bool, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, errClosed
	}
	if b, ok := c.pending[id]; ok {
		c.mu.Unlock()
		return bytes.Clone(b), true, nil // verified when fetched; the caller owns its copy
	}
	e, ok := c.idx[id]
	if !ok {
		c.mu.Unlock()
		return nil, false, nil
	}
	e.ref = true
	c.idx[id] = e
	s := c.segs[e.seg]
	s.refs++
	c.mu.Unlock()

	// Reading outside the lock is safe: a segment's records are never
	// changed, and its file stays open while refs > 0.
	b := make([]byte, e.size)
	n, err := s.f.ReadAt(b, e.off)
	if err == nil || (err == io.EOF && n == len(b)) {
		err = id.Verify(b)
	} else {
		err = fmt.Errorf("%s: %d of %d bytes at %d: %w", s.f.Name(), n, e.size, e.off, err)
	}
	c.mu.Lock()
	c.release(s)
	c.mu.Unlock()
	if err != nil {
		c.drop(id, e.gen, err)
		return nil, false, nil
	}
	return b, true, nil
}

// release ends a read or write of s; c.mu must be held.
func (c *Cache) release(s *segment) {
	s.refs--
	if s.refs == 0 && s.dead && s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// drop forgets the cached copy of id that failed to read with err, unless
// it was replaced since it was looked up. Its bytes stay in the segment
// until the segment is evicted.
func (c *Cache) drop(id cas.ID, gen uint64, err error) {
	c.dropped.Add(1)
	c.log.Warn("cache: dropping a cached object that fails verification; fetching it again", "object", id.String(), "err", err)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.idx[id]; ok && e.gen == gen {
		delete(c.idx, id)
		c.bytes -= e.size
	}
}

// Get returns the whole object id, verified against id. A cached copy is
// read from disk and verified; one that fails is removed, logged and
// replaced. Otherwise the object is fetched from the source, verified and
// cached (unless it is larger than the bound). Concurrent Gets of one id
// share one fetch. That fetch does not end when the Get that started it is
// cancelled (the others still want it, and the object is cached for the
// next reader); each Get still returns as soon as its own ctx is done. Close
// cancels fetches. Errors from the source are wrapped: cas.ErrNotFound,
// cas.ErrCorrupt. The caller owns the returned slice.
func (c *Cache) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	b, err := c.get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("cache: get %s: %w", id.Short(), err)
	}
	return b, nil
}

func (c *Cache) get(ctx context.Context, id cas.ID) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, ok, err := c.readCached(id)
	if err != nil {
		return nil, err
	}
	if ok {
		c.hits.Add(1)
		return b, nil
	}
	c.misses.Add(1)
	ch := c.flights.DoChan(string(id[:]), func() (any, error) { return c.fill(ctx, id) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		b := r.Val.([]byte)
		if r.Shared {
			b = bytes.Clone(b) // each caller owns its slice
		}
		return b, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// fill fetches id from the source and caches it; it runs once per flight.
func (c *Cache) fill(ctx context.Context, id cas.ID) ([]byte, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	c.fills.Add(1)
	c.mu.Unlock()
	defer c.fills.Done()

	// A previous flight may have stored id between our miss and this one.
	if b, ok, err := c.readCached(id); ok || err != nil {
		return b, err
	}
	// Detached from the caller's cancellation (other callers may share
	// this fetch) but not from its values, and ended by Close.
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()

	b, err := c.src.Get(fctx, id)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	c.fetches.Add(1)
	c.fetched.Add(int64(len(b)))
	if !c.trusted {
		// Not hashed again by a source that is known to verify (see
		// SourceVerifies); otherwise a wrong object would be returned now.
		if err := id.Verify(b); err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
	}
	if !c.queue(id, b) {
		c.store(id, b)
	}
	return b, nil
}

// queue leaves b, fetched as id, to the writers, and reports whether it
// did: not without WriteBehind, nor when they have enough waiting.
func (c *Cache) queue(id cas.ID, b []byte) bool {
	size := int64(len(b))
	if c.behindMax == 0 || size+headerSize > c.max {
		return false
	}
	own := bytes.Clone(b) // the caller owns b; copied outside the lock
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	if _, ok := c.pending[id]; ok {
		return true
	}
	if c.pendingBytes+size > c.behindMax {
		return false
	}
	select {
	case c.writes <- id:
	default:
		return false
	}
	c.pending[id] = own
	c.pendingBytes += size
	return true
}

// writeBehind is a writer: it stores the objects queued until Close.
func (c *Cache) writeBehind() {
	for id := range c.writes {
		c.mu.Lock()
		b, ok := c.pending[id]
		c.mu.Unlock()
		if !ok {
			continue // purged
		}
		c.store(id, b)
		c.mu.Lock()
		if _, ok := c.pending[id]; ok {
			delete(c.pending, id)
			c.pendingBytes -= int64(len(b))
		}
		c.mu.Unlock()
	}
}

// Flush waits until the objects fetched so far are on disk (see
// WriteBehind); without write-behind they already are.
func (c *Cache) Flush() {
	for {
		c.mu.Lock()
		n := len(c.pending)
		c.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// store caches b as id, evicting as needed. Failing to store is not an
// error for the caller, who has verified bytes; it is logged.
func (c *Cache) store(id cas.ID, b []byte) {
	size := int64(len(b))
	rec := int64(headerSize) + size
	if rec > c.max || size > math.MaxUint32 {
		c.log.Debug("cache: object larger than the cache, not cached", "object", id.String(), "bytes", size)
		return
	}
	c.mu.Lock()
	if e, ok := c.idx[id]; ok {
		e.ref = true
		c.idx[id] = e
		c.mu.Unlock()
		return
	}
	c.evictFor(rec)
	s, off, err := c.reserve(rec)
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("cache: cannot store an object; serving it uncached", "object", id.String(), "err", err)
		return
	}
	// Written outside the lock, at an offset reserved for it alone; no
	// reader looks there until it is indexed below.
	err = writeRecord(s.f, off, id, b)
	c.mu.Lock()
	s.writing--
	c.release(s)
	switch {
	case err != nil:
		s.bad = true // a hole where the record should be: append elsewhere
		c.log.Warn("cache: cannot store an object; serving it uncached", "object", id.String(), "err", err)
	case s.dead:
		// Evicted or purged while being written.
	default:
		if _, ok := c.idx[id]; !ok { // else stored meanwhile: these bytes are dead
			c.gen++
			c.idx[id] = entry{seg: s.seq, off: off + headerSize, size: size, gen: c.gen}
			c.bytes += size
			s.add(id, off+headerSize, size)
		}
	}
	idx := c.indexable(s)
	c.mu.Unlock()
	c.writeIndex(idx)
}

// reserve returns the segment and offset where a record of rec bytes goes,
// starting a new segment if needed; c.mu must be held. The caller writes
// there and then decrements writing and calls release.
func (c *Cache) reserve(rec int64) (*segment, int64, error) {
	if s := c.active; s == nil || s.bad || s.size > 0 && s.size+rec > c.segMax {
		if err := c.rotate(); err != nil {
			return nil, 0, err
		}
	}
	s := c.active
	off := s.size
	s.size += rec
	c.disk += rec
	s.refs++
	s.writing++
	return s, off, nil
}

// rotate seals the active segment and starts a new one; c.mu must be held.
func (c *Cache) rotate() error {
	if old := c.active; old != nil {
		old.sealed = true
		c.active = nil
		if seg := c.indexable(old); seg != nil {
			c.indexing.Go(func() { c.writeIndex(seg) })
		}
	}
	seq := c.nextSeq
	p := filepath.Join(c.segDir, segName(seq)+segSuffix)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("new segment: %w", err)
	}
	c.nextSeq++
	s := &segment{seq: seq, f: f}
	c.segs[seq] = s
	c.order = append(c.order, seq)
	c.active = s
	return nil
}

// indexable returns what writeIndex needs to write the index of s, if s is
// sealed, whole (no write in flight, none failed) and has none yet; else
// nil. c.mu must be held.
func (c *Cache) indexable(s *segment) *segment {
	if !s.sealed || s.index || s.writing > 0 || s.bad || s.dead || len(s.ids) == 0 {
		return nil
	}
	s.index = true
	return &segment{seq: s.seq, size: s.size, ids: slices.Clone(s.ids), offs: slices.Clone(s.offs), sizes: slices.Clone(s.sizes)}
}

// writeIndex writes the index file of the sealed segment snapshot s.
func (c *Cache) writeIndex(s *segment) {
	if s == nil {
		return
	}
	p := filepath.Join(c.segDir, segName(s.seq)+idxSuffix)
	if err := writeIndex(p, s); err != nil {
		c.log.Warn("cache: cannot write a segment's index; it is read whole when the cache opens", "path", p, "err", err)
	}
}

// evictFor evicts the oldest segments until rec more bytes fit; c.mu must
// be held. An object read since it was written (ref) is copied to the
// active segment instead of dropped (see evict): the order of eviction is
// first in, first out, with a second chance for what is used.
func (c *Cache) evictFor(rec int64) {
	for c.disk+rec > c.max && len(c.order) > 0 {
		seq := c.order[0]
		s := c.segs[seq]
		if s == c.active {
			if len(c.order) == 1 && s.size == 0 {
				return
			}
			s.sealed, c.active = true, nil // evict it too; the next store starts another
		}
		c.evict(s)
	}
}

// evict removes segment s, keeping its recently read objects; c.mu must be
// held.
func (c *Cache) evict(s *segment) {
	c.order = slices.DeleteFunc(c.order, func(q uint64) bool { return q == s.seq })
	delete(c.segs, s.seq)
	c.disk -= s.size
	// At most half the segment is kept, so that each eviction frees at
	// least the other half; but one object always may be, or a cache of
	// one object a segment would be first in, first out. Eviction ends:
	// what is kept loses its ref, and nothing reads meanwhile (c.mu).
	budget, kept := s.size/2, 0
	for i, id := range s.ids {
		e, ok := c.idx[id]
		if !ok || e.seg != s.seq || e.off != s.offs[i] {
			continue // dropped, or cached again since
		}
		if e.ref && (e.size <= budget || kept == 0) && c.copyForward(s, id, e) {
			budget -= e.size
			kept++
			continue
		}
		delete(c.idx, id)
		c.bytes -= e.size
		c.evictions.Add(1)
	}
	s.dead = true
	if s.refs == 0 && s.f != nil {
		s.f.Close()
		s.f = nil
	}
	c.removeFiles(s.seq)
}

// copyForward appends object id, at e in segment from, to the active
// segment and points the index there; c.mu must be held (it writes under
// the lock: a second chance is rare beside the stores). It reports whether
// it did.
func (c *Cache) copyForward(from *segment, id cas.ID, e entry) bool {
	b := make([]byte, e.size)
	if n, err := from.f.ReadAt(b, e.off); n != len(b) {
		c.log.Debug("cache: cannot keep an object of an evicted segment", "object", id.String(), "err", err)
		return false
	}
	s, off, err := c.reserve(int64(headerSize) + e.size)
	if err != nil {
		return false
	}
	err = writeRecord(s.f, off, id, b)
	s.writing--
	c.release(s)
	if err != nil {
		s.bad = true
		return false
	}
	c.gen++
	c.idx[id] = entry{seg: s.seq, off: off + headerSize, size: e.size, gen: c.gen} // ref cleared: one more chance
	s.add(id, off+headerSize, e.size)
	return true
}

// removeFiles removes the files of segment seq; c.mu must be held.
func (c *Cache) removeFiles(seq uint64) {
	for _, suffix := range []string{segSuffix, idxSuffix} {
		p := filepath.Join(c.segDir, segName(seq)+suffix)
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("cache: cannot remove a segment file", "path", p, "err", err)
		}
	}
}

// GetRange returns part of object id, following cas.Getter's rules. It
// costs a whole-object Get (objects are chunks of at most a few hundred
// KiB), so the bytes returned come from a verified object.
func (c *Cache) GetRange(ctx context.Context, id cas.ID, off, length int64) ([]byte, error) {
	b, err := c.get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("cache: get range %s: %w", id.Short(), err)
	}
	lo, hi, err := cas.ClampRange(id, int64(len(b)), off, length)
	if err != nil {
		return nil, fmt.Errorf("cache: get range: %w", err)
	}
	if lo == 0 && hi == int64(len(b)) {
		return b, nil
	}
	return bytes.Clone(b[lo:hi]), nil // do not pin the whole object
}

// Stat returns the size of object id: from the index if cached, else from
// the source.
func (c *Cache) Stat(ctx context.Context, id cas.ID) (int64, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, fmt.Errorf("cache: stat %s: %w", id.Short(), errClosed)
	}
	if e, ok := c.idx[id]; ok {
		c.mu.Unlock()
		return e.size, nil
	}
	if b, ok := c.pending[id]; ok {
		c.mu.Unlock()
		return int64(len(b)), nil
	}
	c.mu.Unlock()
	n, err := c.src.Stat(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("cache: stat %s: %w", id.Short(), err)
	}
	return n, nil
}

// Has reports whether id is cached, without touching the disk or the
// source. A cached copy found bad later is still refetched by Get.
func (c *Cache) Has(id cas.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[id]; ok {
		return true
	}
	_, ok := c.idx[id]
	return ok
}

// Prefetch passes the ids that are not cached to the source's Prefetch,
// if it has one: over a remote, the tiered store's fetches them ahead,
// many with one request, and keeps them in memory for the Gets that
// follow, which cache them. Prefetch caches nothing itself; over a source
// that cannot prefetch it does nothing.
func (c *Cache) Prefetch(ctx context.Context, ids []cas.ID) error {
	p, ok := c.src.(interface {
		Prefetch(context.Context, []cas.ID) error
	})
	if !ok {
		return nil
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("cache: prefetch: %w", errClosed)
	}
	var missing []cas.ID
	for _, id := range ids {
		_, waiting := c.pending[id]
		if _, ok := c.idx[id]; !ok && !waiting {
			missing = append(missing, id)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	if err := p.Prefetch(ctx, missing); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

// Purge removes every cached object, also those waiting to be written.
// Fetches in flight when it is called may still cache theirs after it
// returns.
func (c *Cache) Purge() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("cache: purge: %w", errClosed)
	}
	clear(c.pending) // the writers skip what is no longer waiting
	c.pendingBytes = 0
	for _, s := range c.segs {
		s.dead = true
		if s.refs == 0 && s.f != nil {
			s.f.Close()
			s.f = nil
		}
		c.removeFiles(s.seq)
	}
	c.segs, c.order, c.active = map[uint64]*segment{}, nil, nil
	c.idx, c.bytes, c.disk = map[cas.ID]entry{}, 0, 0
	return nil
}

// Stats returns the counters and the current contents.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	bytes, count, disk := c.bytes, len(c.idx), c.disk
	c.mu.Unlock()
	return Stats{
		Hits:         c.hits.Load(),
		Misses:       c.misses.Load(),
		Fetches:      c.fetches.Load(),
		FetchedBytes: c.fetched.Load(),
		Evictions:    c.evictions.Load(),
		Dropped:      c.dropped.Load(),
		Bytes:        bytes,
		Count:        count,
		DiskBytes:    disk,
		MaxBytes:     c.max,
	}
}

// Close cancels fetches in flight, waits for them and for the objects
// waiting to be written, writes the index of the last segment, and
// releases the directory. It does not close the source. Calls after Close
// fail.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.fills.Wait()
	if c.writes != nil {
		close(c.writes) // no fill is left to queue more
		c.writers.Wait()
	}
	c.mu.Lock()
	var toIndex []*segment
	for _, s := range c.segs {
		s.sealed = true
		if seg := c.indexable(s); seg != nil {
			toIndex = append(toIndex, seg)
		}
	}
	c.active = nil
	c.mu.Unlock()
	for _, s := range toIndex {
		c.writeIndex(s)
	}
	c.indexing.Wait()
	c.closeFiles()
	if err := c.lock.Close(); err != nil {
		return fmt.Errorf("cache: close: %w", err)
	}
	return nil
}

// closeFiles closes the segment files that no read holds; the rest close
// when their reads end.
func (c *Cache) closeFiles() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.segs {
		s.dead = true
		if s.refs == 0 && s.f != nil {
			s.f.Close()
			s.f = nil
		}
	}
}
