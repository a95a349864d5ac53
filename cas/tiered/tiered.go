// Package tiered is a cas.Store made of two: a local store that takes every
// write and answers most reads, and a remote store that machines share.
//
// # Why two tiers
//
// A training machine writes much more than it publishes: every save in a
// working tree, every checkpoint of a run. Sending each of those to a
// bucket as it happens would make every write wait on the network and pay
// for bytes nobody else reads. So writes stay local (in packs on the local
// disk) until a name is given to them: CreateRef first uploads every local
// pack the remote lacks, whole and under its own name (a pack whose blobs
// the remote holds already, such as one Fetch wrote, is not sent again),
// and only then creates the ref on the remote with the remote's
// conditional create. The remote therefore never holds a name that points
// at missing objects, and two machines that create the same name at once
// get one success and one cas.ErrExists.
//
// Reads try the local store first and fall back to the remote. Ref reads
// merge both: the remote's refs (listed at most once per RefsMaxAge) over
// the local ones, so a version made on another machine appears within a
// second or two; refs found only locally (made before the remote was
// configured, say) stay visible and are published by Push.
//
// # The remote decides what a name means
//
// While the remote can be reached it is the authority for every name it
// has or had: the store records which local refs the remote has had (it
// published them, or got them from there; see known), so a recorded ref
// that the remote no longer has was removed by another machine and goes
// here too, and a recorded ref whose id on the remote changed (removed and
// made again) takes the remote's id. Refs never published are not
// recorded, and stay. A machine that cannot reach the remote changes
// nothing: its refs keep working. OnRefChange tells the mount which names
// changed, so that it forgets what it cached of them.
//
// The remote is never garbage-collected from here: List and Delete see the
// local store only, since another machine may need what this one no longer
// does.
package tiered

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/pack"
)

// Flusher is a store that buffers writes; the local pack store.
type Flusher interface {
	cas.Store
	// Flush makes everything Put so far durable in the store's backend.
	Flush(ctx context.Context) error
}

// Options assemble a Store.
type Options struct {
	// Local takes every write (a pack store over the local disk).
	Local Flusher
	// LocalFiles is the backend Local keeps its pack files in; Push copies
	// them to RemoteFiles as they are.
	LocalFiles cas.Store
	// Remote reads objects from the shared remote (a pack store over
	// RemoteFiles). Its refs are the remote's refs.
	Remote cas.Store
	// RemoteFiles is the remote's backend: where pack files are uploaded.
	RemoteFiles cas.Store
	// ListRefNames, if set, lists the names of the remote's refs under a
	// prefix without reading each one (one LIST request instead of one GET
	// per ref); the store then reads only refs it has not seen. Without
	// it, every listing reads every ref.
	ListRefNames func(ctx context.Context, prefix string, fn func(name string) error) error
	// RefsMaxAge is how long a listing of the remote's refs is reused, and
	// how long a name found absent stays absent. Default one second.
	RefsMaxAge time.Duration
	// Uploads is how many packs Push uploads at once. Default 4.
	Uploads int
	// RecheckEvery is how often a listing by names also reads again a few
	// refs it knows (see recheck). Default one minute: an idle machine
	// reads no ref it has read but that often.
	RecheckEvery time.Duration
	// KnownDir is the folder of the record of which local refs the remote
	// has had (see known); it must outlive the process. Default: a folder
	// under remote-refs/ in LocalFiles' folder when LocalFiles is a local
	// store (one with Root), named by RemoteKey; else the record is kept
	// in memory only.
	KnownDir string
	// RemoteKey identifies the remote (its URL; only a hash of it is
	// kept), so that each remote has its own record: a ref that one
	// remote had is not taken as removed by another one that never had it.
	RemoteKey string
	Log       *slog.Logger
}

// Store is the two-tier store. Its methods are safe for concurrent use.
type Store struct {
	o Options

	pushMu   sync.Mutex
	uploaded map[cas.ID]bool // packs known to be on the remote; nil until listed

	refsMu sync.Mutex
	listed time.Time // when remote was last listed
	// remote is the remote's refs at that time, replaced (never changed
	// in place) when this store changes one: callers read it unlocked.
	remote   map[string]cas.ID
	absent   map[string]time.Time
	listErr  error // of the last listing; refs are then local only
	listOnce chan struct{}
	// during holds the refs this store created (or deleted: the zero id)
	// on the remote while a listing was under way, which that listing may
	// have missed; nil when no listing is.
	during map[string]cas.ID

	rechecked time.Time // when listRemote last read known refs again

	known       *known
	reconcileMu sync.Mutex   // one reconcile at a time
	removed     atomic.Int64 // refs removed here because the remote had removed them
	// readAll makes the next listing read every ref, not only new names
	// (RemoteRefs); guarded by refsMu.
	readAll bool
	// remoteHasObjects: the remote was seen to hold an object (see
	// authoritative).
	remoteHasObjects atomic.Bool
	removedMu        sync.Mutex
	removedLog       []string // the names of the last maxRemovedLog of them, oldest first

	changeMu sync.Mutex
	onChange []func(name string)
}

var _ cas.Store = (*Store)(nil)

// New returns the store. It makes no request.
func New(o Options) (*Store, error) {
	if o.Local == nil || o.LocalFiles == nil || o.Remote == nil || o.RemoteFiles == nil {
		return nil, errors.New("tiered store: local and remote stores, and their backends, are all required")
	}
	if o.RefsMaxAge <= 0 {
		o.RefsMaxAge = time.Second
	}
	if o.Uploads <= 0 {
		o.Uploads = 4
	}
	if o.RecheckEvery <= 0 {
		o.RecheckEvery = time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	k, err := openKnown(knownDir(o))
	if err != nil {
		return nil, err
	}
	return &Store{o: o, absent: map[string]time.Time{}, known: k, rechecked: time.Now()}, nil
}

// knownDir is where the record of the remote's refs is kept (see
// Options.KnownDir): in the local store's folder, beside the refs it is
// about, so that it goes wherever they go.
func knownDir(o Options) string {
	if o.KnownDir != "" {
		return o.KnownDir
	}
	r, ok := o.LocalFiles.(interface{ Root() string })
	if !ok {
		return ""
	}
	key := "default"
	if o.RemoteKey != "" {
		key = cas.Sum([]byte(o.RemoteKey)).String()
	}
	return filepath.Join(r.Root(), "remote-refs", key)
}

// OnRefChange has fn called with the name of every local ref that changed
// because the remote had changed it: removed there (by another machine),
// or made again there with other content. A mount passes a function that
// forgets what it cached of that name.
func (s *Store) OnRefChange(fn func(name string)) {
	s.changeMu.Lock()
	s.onChange = append(s.onChange, fn)
	s.changeMu.Unlock()
}

func (s *Store) changed(name string) {
	s.changeMu.Lock()
	fns := slices.Clone(s.onChange)
	s.changeMu.Unlock()
	for _, fn := range fns {
		fn(name)
	}
}

// Local returns the local tier.
func (s *Store) Local() Flusher { return s.o.Local }

// Remote returns the remote tier.
func (s *Store) Remote() cas.Store { return s.o.Remote }

// Get reads the local copy if there is one, and the remote's otherwise.
func (s *Store) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	return s.get(ctx, id, func(st cas.Store) ([]byte, error) { return st.Get(ctx, id) })
}

func (s *Store) GetRange(ctx context.Context, id cas.ID, off, length int64) ([]byte, error) {
	return s.get(ctx, id, func(st cas.Store) ([]byte, error) { return st.GetRange(ctx, id, off, length) })
}

// get reads id with read from the tier that has it. An object the local
// tier does not know (its Stat, which looks only at what the local store
// has indexed, misses) is read from the remote first: a miss in the local
// pack store's Get reloads its index, which lists every pack file on the
// disk, and a machine reading a version from the remote would pay that
// for every chunk. Only if the remote lacks the object, or cannot be
// reached, is the local store asked, in case another process wrote it
// there since; if it has not, the remote's error is returned.
func (s *Store) get(ctx context.Context, id cas.ID, read func(cas.Store) ([]byte, error)) ([]byte, error) {
	if _, err := s.o.Local.Stat(ctx, id); errors.Is(err, cas.ErrNotFound) {
		b, rerr := read(s.o.Remote)
		if rerr == nil {
			return b, nil
		}
		b, err := read(s.o.Local)
		if errors.Is(err, cas.ErrNotFound) {
			return nil, rerr
		}
		return b, err
	}
	b, err := read(s.o.Local)
	if errors.Is(err, cas.ErrNotFound) {
		return read(s.o.Remote)
	}
	return b, err
}

// Prefetch passes the ids that the local tier lacks to the remote tier's
// Prefetch, if it has one (the remote pack store: see pack.Store.Prefetch).
func (s *Store) Prefetch(ctx context.Context, ids []cas.ID) error {
	p, ok := s.o.Remote.(interface {
		Prefetch(context.Context, []cas.ID) error
	})
	if !ok {
		return nil
	}
	var remote []cas.ID
	for _, id := range ids {
		if _, err := s.o.Local.Stat(ctx, id); errors.Is(err, cas.ErrNotFound) {
			remote = append(remote, id)
		} else if err != nil {
			return err
		}
	}
	if len(remote) == 0 {
		return nil
	}
	return p.Prefetch(ctx, remote)
}

func (s *Store) Stat(ctx context.Context, id cas.ID) (int64, error) {
	n, err := s.o.Local.Stat(ctx, id)
	if errors.Is(err, cas.ErrNotFound) {
		return s.o.Remote.Stat(ctx, id)
	}
	return n, err
}

// Put stores data locally; Push or the next CreateRef publishes it.
func (s *Store) Put(ctx context.Context, id cas.ID, data []byte) error {
	return s.o.Local.Put(ctx, id, data)
}

// Flush makes the local writes durable on the local disk.
func (s *Store) Flush(ctx context.Context) error { return s.o.Local.Flush(ctx) }

// List lists the local store's objects only.
func (s *Store) List(ctx context.Context, fn func(cas.ID, int64) error) error {
	return s.o.Local.List(ctx, fn)
}

// Delete deletes from the local store only.
func (s *Store) Delete(ctx context.Context, id cas.ID) error {
	return s.o.Local.Delete(ctx, id)
}

// PushStats counts what a push uploaded.
type PushStats struct {
	Packs int   // pack files uploaded
	Bytes int64 // their bytes
	// Skipped counts the local packs not uploaded because the remote
	// holds every blob in them already: those of versions Fetch copied.
	Skipped int
}

// localPack is a pack file of the local tier.
type localPack struct {
	id   cas.ID
	size int64
}

// Upload copies every local pack file the remote lacks to the remote,
// whole. A local pack whose every blob the remote holds already, in packs
// of its own, is not uploaded: Fetch writes what it copies from the remote
// into new local packs, and uploading those would send back bytes the
// remote has. progress, if set, is called after each pack with the bytes
// done and the bytes to do.
func (s *Store) Upload(ctx context.Context, progress func(done, total int64)) (PushStats, error) {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	if err := s.o.Local.Flush(ctx); err != nil {
		return PushStats{}, fmt.Errorf("push: write the local packs: %w", err)
	}
	if err := s.listUploaded(ctx); err != nil {
		return PushStats{}, err
	}
	todo, total, err := s.toUpload(ctx)
	if err != nil {
		return PushStats{}, err
	}
	var (
		mu sync.Mutex
		st PushStats
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.o.Uploads)
	for _, f := range todo {
		g.Go(func() error {
			n, err := s.uploadPack(gctx, f)
			if err != nil {
				return err
			}
			mu.Lock()
			s.uploaded[f.id] = true
			if n > 0 {
				st.Packs++
				st.Bytes += n
			} else {
				st.Skipped++
			}
			done := st.Bytes
			mu.Unlock()
			if progress != nil && n > 0 {
				progress(done, total)
			}
			return nil
		})
	}
	err = g.Wait()
	return st, err
}

// listUploaded lists the remote's pack files, once per Store: after that,
// Upload keeps the list itself. s.pushMu is held.
func (s *Store) listUploaded(ctx context.Context) error {
	if s.uploaded != nil {
		return nil
	}
	have := map[cas.ID]bool{}
	err := s.o.RemoteFiles.List(ctx, func(id cas.ID, _ int64) error {
		have[id] = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("push: list the remote's packs: %w", err)
	}
	s.uploaded = have
	return nil
}

// toUpload lists the local packs that are not known to be on the remote,
// and their bytes. s.pushMu is held.
func (s *Store) toUpload(ctx context.Context) ([]localPack, int64, error) {
	var todo []localPack
	var total int64
	err := s.o.LocalFiles.List(ctx, func(id cas.ID, size int64) error {
		if !s.uploaded[id] {
			todo = append(todo, localPack{id, size})
			total += size
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("push: list the local packs: %w", err)
	}
	return todo, total, nil
}

// uploadPack uploads local pack f, verified, unless the remote has its
// blobs, and returns the bytes uploaded: 0 for a pack not uploaded.
func (s *Store) uploadPack(ctx context.Context, f localPack) (int64, error) {
	if s.remoteHasBlobs(ctx, f) {
		return 0, nil
	}
	data, err := s.o.LocalFiles.GetRange(ctx, f.id, 0, -1)
	if errors.Is(err, cas.ErrNotFound) {
		return 0, nil // compacted away meanwhile; its blobs are in a newer pack
	}
	if err == nil {
		err = checkPack(f.id, data)
	}
	if err != nil {
		return 0, fmt.Errorf("push: read pack %s: %w", f.id.Short(), err)
	}
	if err := s.o.RemoteFiles.Put(ctx, f.id, data); err != nil {
		return 0, fmt.Errorf("push: upload pack %s: %w", f.id.Short(), err)
	}
	return int64(len(data)), nil
}

// packEntries is the local pack store's PackEntries (pack.Store).
type packEntries interface {
	PackEntries(ctx context.Context, id cas.ID, size int64) ([]pack.Entry, error)
}

// remoteHasBlobs reports whether the remote holds every blob of local
// pack f. It reads the pack's index from its tail, not the whole pack,
// and asks the remote tier's Stat, which in a pack store looks at the
// index it keeps in memory and sends no request: a pulled version of a
// million blobs costs no million requests. A blob the index does not know
// (written by another machine since it was loaded, say) makes the answer
// false, and the pack is uploaded: a copy too many, never one too few.
func (s *Store) remoteHasBlobs(ctx context.Context, f localPack) bool {
	pe, ok := s.o.Local.(packEntries)
	if !ok {
		return false
	}
	entries, err := pe.PackEntries(ctx, f.id, f.size)
	if err != nil || len(entries) == 0 {
		return false // uploadPack reads the whole pack and reports what is wrong
	}
	for _, e := range entries {
		if _, err := s.o.Remote.Stat(ctx, e.ID); err != nil {
			return false
		}
	}
	return true
}

// checkPack verifies a pack file before it leaves the machine: its name,
// its index and every blob in it. A damaged local pack is reported here
// rather than published for every other machine to trip over.
func checkPack(id cas.ID, data []byte) error {
	if pack.Name(data) != id && cas.Sum(data) != id { // format 2 packs are named by their trailer, format 1 by their bytes
		return fmt.Errorf("%w: its trailer does not hash to its name", cas.ErrCorrupt)
	}
	entries, err := pack.Parse(data)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if cas.Sum(data[e.Offset:e.Offset+e.Length]) != e.ID {
			return fmt.Errorf("blob %s: %w", e.ID.Short(), cas.ErrCorrupt)
		}
	}
	return nil
}

// Close closes both tiers.
func (s *Store) Close() error {
	return errors.Join(s.o.Local.Close(), s.o.Remote.Close())
}
