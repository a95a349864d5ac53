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
// The remote is never garbage-collected from here: List and Delete see the
// local store only, since another machine may need what this one no longer
// does.
package tiered

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
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
	Log     *slog.Logger
}

// Store is the two-tier store. Its methods are safe for concurrent use.
type Store struct {
	o Options

	pushMu   sync.Mutex
	uploaded map[cas.ID]bool // packs known to be on the remote; nil until listed

	refsMu   sync.Mutex
	listed   time.Time         // when remote was last listed
	remote   map[string]cas.ID // the remote's refs at that time
	absent   map[string]time.Time
	listErr  error // of the last listing; refs are then local only
	listOnce chan struct{}
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
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Store{o: o, absent: map[string]time.Time{}}, nil
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

// CreateRef publishes: it uploads what the remote lacks, creates the ref
// on the remote (the step that can lose to another machine), then records
// it locally.
func (s *Store) CreateRef(ctx context.Context, name string, id cas.ID) error {
	if _, err := s.Upload(ctx, nil); err != nil {
		return fmt.Errorf("create ref %s: %w", name, err)
	}
	if err := s.o.Remote.CreateRef(ctx, name, id); err != nil {
		if !errors.Is(err, cas.ErrExists) {
			return fmt.Errorf("create ref %s on the remote: %w", name, err)
		}
		// Taken: by another machine, or by an earlier attempt of ours whose
		// answer was lost on the way back.
		got, gerr := s.o.Remote.GetRef(ctx, name)
		if gerr != nil || got != id {
			return err
		}
	}
	s.noteRemote(name, id)
	return s.setLocal(ctx, name, id)
}

// setLocal makes the local ref name point at id, replacing a different one.
func (s *Store) setLocal(ctx context.Context, name string, id cas.ID) error {
	err := s.o.Local.CreateRef(ctx, name, id)
	if !errors.Is(err, cas.ErrExists) {
		return err
	}
	got, gerr := s.o.Local.GetRef(ctx, name)
	if gerr == nil && got == id {
		return nil
	}
	// The remote decides: a local ref of the same name that says otherwise
	// was made here while the remote was out of reach, and lost.
	s.o.Log.Warn("replacing a local ref that the remote contradicts", "ref", name, "local", got.Short(), "remote", id.Short())
	if err := s.o.Local.DeleteRef(ctx, name); err != nil {
		return err
	}
	return s.o.Local.CreateRef(ctx, name, id)
}

func (s *Store) noteRemote(name string, id cas.ID) {
	s.refsMu.Lock()
	if s.remote != nil {
		s.remote[name] = id
	}
	delete(s.absent, name)
	s.refsMu.Unlock()
}

// GetRef reads the local ref, then the remote's, and keeps what the remote
// said locally so it reads without the network next time.
func (s *Store) GetRef(ctx context.Context, name string) (cas.ID, error) {
	id, err := s.o.Local.GetRef(ctx, name)
	if !errors.Is(err, cas.ErrNotFound) {
		return id, err
	}
	s.refsMu.Lock()
	at, absent := s.absent[name]
	s.refsMu.Unlock()
	if absent && time.Since(at) < s.o.RefsMaxAge {
		return cas.ID{}, err
	}
	id, rerr := s.o.Remote.GetRef(ctx, name)
	if errors.Is(rerr, cas.ErrNotFound) {
		s.refsMu.Lock()
		s.absent[name] = time.Now()
		if len(s.absent) > 10000 {
			clear(s.absent)
		}
		s.refsMu.Unlock()
		return cas.ID{}, rerr
	}
	if rerr != nil {
		return cas.ID{}, fmt.Errorf("ref %s: %w", name, rerr)
	}
	if err := s.setLocal(ctx, name, id); err != nil {
		s.o.Log.Warn("keep a remote ref locally", "ref", name, "err", err)
	}
	return id, nil
}

// ListRefs merges the remote's refs (at most RefsMaxAge old) over the
// local ones. If the remote cannot be listed, the local refs are listed
// and the failure is logged once per RefsMaxAge.
func (s *Store) ListRefs(ctx context.Context, prefix string, fn func(string, cas.ID) error) error {
	merged := map[string]cas.ID{}
	if err := s.o.Local.ListRefs(ctx, prefix, func(name string, id cas.ID) error {
		merged[name] = id
		return nil
	}); err != nil {
		return err
	}
	remote, err := s.remoteRefs(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
	}
	for name, id := range remote {
		if strings.HasPrefix(name, prefix) {
			merged[name] = id
		}
	}
	for _, name := range slices.Sorted(maps.Keys(merged)) {
		if err := fn(name, merged[name]); err != nil {
			return err
		}
	}
	return nil
}

// RemoteRefs returns the remote's refs, listed afresh, and the error of
// listing them.
func (s *Store) RemoteRefs(ctx context.Context) (map[string]cas.ID, error) {
	s.refsMu.Lock()
	s.listed = time.Time{}
	s.refsMu.Unlock()
	return s.remoteRefs(ctx)
}

// remoteRefs returns the remote's refs as last listed, listing them again
// when the listing is older than RefsMaxAge. Concurrent callers share one
// listing. The map must not be modified.
func (s *Store) remoteRefs(ctx context.Context) (map[string]cas.ID, error) {
	for {
		s.refsMu.Lock()
		if time.Since(s.listed) < s.o.RefsMaxAge {
			m, err := s.remote, s.listErr
			s.refsMu.Unlock()
			return m, err
		}
		if wait := s.listOnce; wait != nil {
			s.refsMu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		s.listOnce = done
		old := s.remote
		s.refsMu.Unlock()

		m, err := s.listRemote(ctx, old)
		s.refsMu.Lock()
		if err != nil {
			if s.listErr == nil {
				s.o.Log.Warn("cannot list the remote's refs; showing local ones only", "err", err)
			}
			m = old // keep what was known
		}
		s.listErr = err
		s.remote = m
		s.listed = time.Now()
		s.listOnce = nil
		close(done)
		s.refsMu.Unlock()
		return m, err
	}
}

// listRemote lists the remote's refs. With ListRefNames it reads only the
// refs that old does not know: refs are create-only, so a name keeps its
// id until it is deleted (which the listing shows).
func (s *Store) listRemote(ctx context.Context, old map[string]cas.ID) (map[string]cas.ID, error) {
	m := map[string]cas.ID{}
	if s.o.ListRefNames == nil {
		err := s.o.Remote.ListRefs(ctx, "", func(name string, id cas.ID) error {
			m[name] = id
			return nil
		})
		return m, err
	}
	var fresh []string
	err := s.o.ListRefNames(ctx, "", func(name string) error {
		if id, ok := old[name]; ok {
			m[name] = id
		} else {
			fresh = append(fresh, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	var mu sync.Mutex
	for _, name := range fresh {
		g.Go(func() error {
			id, err := s.o.Remote.GetRef(gctx, name)
			if errors.Is(err, cas.ErrNotFound) {
				return nil // deleted meanwhile
			}
			if err != nil {
				return err
			}
			mu.Lock()
			m[name] = id
			mu.Unlock()
			return nil
		})
	}
	return m, g.Wait()
}

// DeleteRef deletes the ref on the remote, then locally.
func (s *Store) DeleteRef(ctx context.Context, name string) error {
	if err := s.o.Remote.DeleteRef(ctx, name); err != nil {
		return fmt.Errorf("delete ref %s on the remote: %w", name, err)
	}
	s.refsMu.Lock()
	if s.remote != nil {
		delete(s.remote, name)
	}
	s.refsMu.Unlock()
	return s.o.Local.DeleteRef(ctx, name)
}

// Pending lists the local refs the remote does not have, or has with
// another id.
func (s *Store) Pending(ctx context.Context) (map[string]cas.ID, error) {
	remote, err := s.RemoteRefs(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]cas.ID{}
	err = s.o.Local.ListRefs(ctx, "", func(name string, id cas.ID) error {
		if rid, ok := remote[name]; !ok || rid != id {
			out[name] = id
		}
		return nil
	})
	return out, err
}

// PullStats counts what Pull recorded locally.
type PullStats struct {
	Refs  int      // refs new or changed locally
	Names []string // their names, sorted
}

// Count returns how many of the refs recorded are of a kind: refs name
// more than versions (runs are refs too, and a live run publishes a new
// one every few seconds), and a caller counts what its user calls new.
func (p PullStats) Count(kind func(name string) bool) int {
	n := 0
	for _, name := range p.Names {
		if kind(name) {
			n++
		}
	}
	return n
}

// Pull records the remote's refs locally, so they resolve without the
// network. Local refs the remote lacks are kept (Push publishes them); a
// ref removed on the remote after this machine recorded it stays here
// until it is removed here too.
func (s *Store) Pull(ctx context.Context) (PullStats, error) {
	remote, err := s.RemoteRefs(ctx)
	if err != nil {
		return PullStats{}, fmt.Errorf("pull: list the remote's refs: %w", err)
	}
	var st PullStats
	local := map[string]cas.ID{}
	if err := s.o.Local.ListRefs(ctx, "", func(name string, id cas.ID) error {
		local[name] = id
		return nil
	}); err != nil {
		return st, err
	}
	for _, name := range slices.Sorted(maps.Keys(remote)) {
		if local[name] == remote[name] {
			continue
		}
		if err := s.setLocal(ctx, name, remote[name]); err != nil {
			return st, fmt.Errorf("pull: ref %s: %w", name, err)
		}
		st.Refs++
		st.Names = append(st.Names, name)
	}
	return st, nil
}

// Close closes both tiers.
func (s *Store) Close() error {
	return errors.Join(s.o.Local.Close(), s.o.Remote.Close())
}
