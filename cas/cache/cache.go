package cache

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
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

// touchEvery is how stale a file's mtime may get before a hit refreshes it.
// The in-memory order is exact; the on-disk order, which only matters after
// a restart, is this coarse so that a hit costs no metadata write.
const touchEvery = time.Minute

// errClosed is returned by every call on a closed Cache.
var errClosed = errors.New("cache is closed")

// emptyID is the id of the empty object, the only object a valid empty file
// can hold.
var emptyID = cas.Sum(nil)

// Stats are counters since New, and the current contents.
type Stats struct {
	Hits         int64 // Gets served from disk
	Misses       int64 // Gets that were not (they waited for a fetch)
	Fetches      int64 // objects fetched from the source; concurrent misses of one id share one
	FetchedBytes int64 // bytes those fetches returned
	Evictions    int64 // objects removed to stay under MaxBytes
	Dropped      int64 // cached files found wrong or unreadable, removed and fetched again
	Bytes        int64 // bytes cached now
	Count        int   // objects cached now
	MaxBytes     int64 // the bound on Bytes
}

// Cache is a bounded disk cache of verified objects in front of a
// cas.Getter. Its methods are safe for concurrent use.
type Cache struct {
	objects, tmp string
	max          int64
	src          cas.Getter
	log          *slog.Logger
	lock         *os.File // holds the flock on dir/lock

	flights singleflight.Group
	ctx     context.Context // fetches run under it; Close cancels it
	cancel  context.CancelFunc
	fills   sync.WaitGroup

	mu     sync.Mutex // guards idx, closed, pending, and every removal in objects/
	idx    *lru
	closed bool

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
// objects fetched from src. It removes leftover temp files and rebuilds the
// index from the files present, ordered by their mtimes, evicting down to
// maxBytes if the bound shrank. One Cache at a time may use dir: a second
// New fails until the first is closed, also across processes. A nil log
// discards.
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
		objects: filepath.Join(abs, "objects"),
		tmp:     filepath.Join(abs, "tmp"),
		max:     maxBytes,
		src:     src,
		log:     log,
		idx:     newLRU(),
	}
	for _, o := range opts {
		o(c)
	}
	if err := c.open(abs); err != nil {
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
	log.Debug("cache opened", "dir", abs, "objects", c.idx.len(), "bytes", c.idx.bytes, "max_bytes", maxBytes)
	return c, nil
}

func (c *Cache) open(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
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
	// Objects were once written to tmp/ and renamed into place; what a
	// crash left there can never be completed.
	if err := os.RemoveAll(c.tmp); err != nil {
		return fmt.Errorf("remove leftover temp files: %w", err)
	}
	if err := os.MkdirAll(c.objects, 0o700); err != nil {
		return err
	}
	for b := range 256 {
		if err := os.Mkdir(filepath.Join(c.objects, fmt.Sprintf("%02x", b)), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	if err := c.scan(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	c.evictFor(0)
	return nil
}

// scan rebuilds the index from the files in objects/. It does not read
// them: every read from disk is verified anyway, so a file torn by a crash
// is caught when it is first used.
func (c *Cache) scan() error {
	type found struct {
		id          cas.ID
		size, mtime int64
	}
	var all []found
	for b := range 256 {
		sub := fmt.Sprintf("%02x", b)
		ents, err := os.ReadDir(filepath.Join(c.objects, sub))
		if err != nil {
			return err
		}
		for _, e := range ents {
			p := filepath.Join(c.objects, sub, e.Name())
			id, err := cas.ParseID(e.Name())
			if err != nil || !e.Type().IsRegular() || id.String()[:2] != sub {
				c.log.Warn("cache: ignoring a file that is not a cached object", "path", p)
				continue
			}
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			if info.Size() == 0 && id != emptyID {
				// Created but never written back before a crash.
				c.log.Debug("cache: removing an empty cached file", "path", p)
				os.Remove(p)
				continue
			}
			all = append(all, found{id, info.Size(), info.ModTime().UnixNano()})
		}
	}
	slices.SortFunc(all, func(a, b found) int { return cmp.Compare(a.mtime, b.mtime) })
	for _, f := range all {
		c.idx.add(f.id, f.size, f.mtime) // oldest first, so the newest ends at the head
	}
	return nil
}

func (c *Cache) path(id cas.ID) string {
	h := id.String()
	return c.objects + string(filepath.Separator) + h[:2] + string(filepath.Separator) + h
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
	i, ok := c.idx.lookup(id)
	if !ok {
		c.mu.Unlock()
		return nil, false, nil
	}
	c.idx.moveToFront(i)
	s := &c.idx.slots[i]
	size, gen := s.size, s.gen
	now := time.Now().UnixNano()
	touch := now-s.touched >= int64(touchEvery)
	if touch {
		s.touched = now
	}
	c.mu.Unlock()

	// Reading outside the lock is safe: an indexed file is whole unless
	// it was evicted and is being written again (or torn by a crash), and
	// then the size check or the verification below catches it.
	p := c.path(id)
	b, err := readFile(p, size)
	if err == nil {
		err = id.Verify(b)
	}
	if err != nil {
		c.drop(id, gen, p, err)
		return nil, false, nil
	}
	if touch {
		if err := os.Chtimes(p, time.Time{}, time.Unix(0, now)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.log.Debug("cache: cannot touch a cached file", "path", p, "err", err)
		}
	}
	return b, true, nil
}

func readFile(p string, size int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() != size {
		return nil, fmt.Errorf("%s: %d bytes, want %d: %w", p, info.Size(), size, cas.ErrCorrupt)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return b, nil
}

// drop forgets the cached copy of id that failed to read with err, and
// removes its file, unless the entry was replaced since it was looked up.
func (c *Cache) drop(id cas.ID, gen uint64, p string, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		c.log.Debug("cache: a cached file vanished", "path", p)
	} else {
		c.dropped.Add(1)
		c.log.Warn("cache: removing a cached object that fails verification; fetching it again", "object", id.String(), "path", p, "err", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.idx.lookup(id); ok && c.idx.slots[i].gen == gen {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("cache: cannot remove a bad cached file", "path", p, "err", err)
		}
		c.idx.remove(i)
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
	if c.behindMax == 0 || size > c.max {
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
	if size > c.max {
		c.log.Debug("cache: object larger than the cache, not cached", "object", id.String(), "bytes", size)
		return
	}
	c.mu.Lock()
	if i, ok := c.idx.lookup(id); ok {
		c.idx.moveToFront(i)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	// Written in place, not renamed into place: the file is indexed only
	// once whole, and a reader that finds it otherwise (torn by a crash,
	// or rewritten after an eviction) fails to verify it and fetches.
	p := c.path(id)
	if err := writeFile(p, b); err != nil {
		os.Remove(p)
		c.log.Warn("cache: cannot store an object; serving it uncached", "object", id.String(), "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.idx.lookup(id); ok {
		c.idx.moveToFront(i) // stored meanwhile, with the same bytes
		return
	}
	c.evictFor(size)
	c.idx.add(id, size, time.Now().UnixNano())
}

func writeFile(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// evictFor removes least recently used objects until size more bytes fit.
// The caller holds c.mu.
func (c *Cache) evictFor(size int64) {
	for c.idx.bytes+size > c.max && c.idx.tail != none {
		i := c.idx.tail
		id := c.idx.slots[i].id
		if err := os.Remove(c.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// Forget it all the same: a file we cannot remove must not
			// block every insert after it.
			c.log.Warn("cache: cannot remove an evicted object", "object", id.String(), "err", err)
		}
		c.idx.remove(i)
		c.evictions.Add(1)
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
	if i, ok := c.idx.lookup(id); ok {
		size := c.idx.slots[i].size
		c.mu.Unlock()
		return size, nil
	}
	c.mu.Unlock()
	n, err := c.src.Stat(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("cache: stat %s: %w", id.Short(), err)
	}
	return n, nil
}

// Has reports whether id is cached, without touching the disk or the
// source. A cached file found bad later is still refetched by Get.
func (c *Cache) Has(id cas.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[id]; ok {
		return true
	}
	_, ok := c.idx.lookup(id)
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
		if _, ok := c.idx.lookup(id); !ok && !waiting {
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
	var errs []error
	for id, i := range c.idx.byID {
		if err := os.Remove(c.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err) // keep it indexed: it is still on disk
			continue
		}
		c.idx.remove(i)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cache: purge: %w", err)
	}
	return nil
}

// Stats returns the counters and the current contents.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	bytes, count := c.idx.bytes, c.idx.len()
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
		MaxBytes:     c.max,
	}
}

// Close cancels fetches in flight, waits for them and for the objects
// waiting to be written, and releases the directory. It does not close the source. Calls after Close fail.
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
	if err := c.lock.Close(); err != nil {
		return fmt.Errorf("cache: close: %w", err)
	}
	return nil
}
