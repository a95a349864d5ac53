package tiered

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mlfs/mlfs/cas"
)

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
	s.fromRemote(name, id)
	return s.setLocal(ctx, name, id)
}

// fromRemote notes that the remote has name at id: in the listing kept
// here, and in the record of the refs the remote has had, which is what
// later tells its removal (by another machine) from a ref never published.
// A record that cannot be written is logged: the ref then counts as never
// published, which keeps it here (Push offers it again, and loses or
// finds it there).
func (s *Store) fromRemote(name string, id cas.ID) {
	s.noteRemote(name, id)
	s.recordKnown(name, id)
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
	return s.replaceLocal(ctx, name, id)
}

// replaceLocal makes the existing local ref name point at id.
func (s *Store) replaceLocal(ctx context.Context, name string, id cas.ID) error {
	if err := s.o.Local.DeleteRef(ctx, name); err != nil {
		return err
	}
	return s.o.Local.CreateRef(ctx, name, id)
}

// noteRemote records in the kept listing that the remote has name at id
// (or, for the zero id, that it has not), and in the one under way.
func (s *Store) noteRemote(name string, id cas.ID) {
	s.refsMu.Lock()
	defer s.refsMu.Unlock()
	if s.remote != nil {
		m := maps.Clone(s.remote) // readers hold the old map unlocked
		if id.IsZero() {
			delete(m, name)
		} else {
			m[name] = id
		}
		s.remote = m
	}
	if s.during != nil {
		s.during[name] = id
	}
	if id.IsZero() {
		s.absent[name] = time.Now()
	} else {
		delete(s.absent, name)
	}
}

// GetRef reads the local ref, then the remote's, and keeps what the remote
// said locally so it reads without the network next time. A local ref is
// checked against the remote's listing (at most RefsMaxAge old) while the
// remote can be reached: one the remote had and has no longer, or has for
// other content now, is settled with it (see settle) first.
func (s *Store) GetRef(ctx context.Context, name string) (cas.ID, error) {
	// Listed first: a new listing settles the local refs with it.
	remote, rerr := s.remoteRefs(ctx)
	id, err := s.o.Local.GetRef(ctx, name)
	if err == nil {
		if rerr != nil || !s.authoritative(ctx, remote) {
			return id, nil // offline: what this machine has keeps working
		}
		return s.checkLocal(ctx, name, id, remote)
	}
	if !errors.Is(err, cas.ErrNotFound) {
		return id, err
	}
	s.refsMu.Lock()
	at, absent := s.absent[name]
	s.refsMu.Unlock()
	if absent && time.Since(at) < s.o.RefsMaxAge {
		return cas.ID{}, err
	}
	id, rerr = s.o.Remote.GetRef(ctx, name)
	if errors.Is(rerr, cas.ErrNotFound) {
		s.noteAbsent(name)
		return cas.ID{}, rerr
	}
	if rerr != nil {
		return cas.ID{}, fmt.Errorf("ref %s: %w", name, rerr)
	}
	s.fromRemote(name, id)
	if err := s.setLocal(ctx, name, id); err != nil {
		s.o.Log.Warn("keep a remote ref locally", "ref", name, "err", err)
	}
	return id, nil
}

func (s *Store) noteAbsent(name string) {
	s.refsMu.Lock()
	s.absent[name] = time.Now()
	if len(s.absent) > 10000 {
		clear(s.absent)
	}
	s.refsMu.Unlock()
}

// checkLocal returns what local ref name (at id) means now, given the
// listing remote. For a ref never published, that is the local ref. A ref
// the remote lists at another id is read at the remote's id, so that the
// mount, a listing and an export agree on what the name holds.
func (s *Store) checkLocal(ctx context.Context, name string, id cas.ID, remote map[string]cas.ID) (cas.ID, error) {
	rid, on := remote[name]
	kid, wasOn := s.known.get(name)
	switch {
	case on && rid == id:
		if !wasOn || kid != id {
			// Published or pulled before this store kept a record.
			s.recordKnown(name, id)
		}
		return id, nil
	case !on && !wasOn:
		return id, nil // never published: Push publishes it
	case on && !wasOn:
		// Made here while the remote was out of reach, and another machine
		// made the same name: the remote's is what the name means, while
		// the local ref stays for Push to report as a conflict.
		return rid, nil
	}
	return s.settle(ctx, name)
}

func (s *Store) recordKnown(name string, id cas.ID) {
	if err := s.known.set(name, id); err != nil {
		s.o.Log.Warn("record a remote ref", "ref", name, "err", err)
	}
}

// settle brings the local ref name, one the remote has had, into line with
// the remote, asked directly (a listing can be older than a change made
// since): removed if the remote no longer has it, pointed at the remote's
// id if that differs. It returns the ref's id now, or ErrNotFound. If the
// remote cannot be asked, nothing changes.
func (s *Store) settle(ctx context.Context, name string) (cas.ID, error) {
	local, lerr := s.o.Local.GetRef(ctx, name)
	if lerr != nil && !errors.Is(lerr, cas.ErrNotFound) {
		return cas.ID{}, lerr
	}
	rid, err := s.o.Remote.GetRef(ctx, name)
	switch {
	case errors.Is(err, cas.ErrNotFound):
		return cas.ID{}, s.removeGone(ctx, name, lerr == nil)
	case err != nil:
		if lerr != nil {
			return cas.ID{}, lerr
		}
		return local, nil
	}
	s.fromRemote(name, rid)
	if lerr != nil || local == rid {
		return rid, nil
	}
	s.o.Log.Info("a ref was made again on the remote with other content; following it", "ref", name,
		"was", local.Short(), "now", rid.Short())
	if err := s.replaceLocal(ctx, name, rid); err != nil {
		return cas.ID{}, fmt.Errorf("ref %s: take the remote's id: %w", name, err)
	}
	s.changed(name)
	return rid, nil
}

// removeGone removes ref name here, which the remote had and has no
// longer: another machine removed it. It returns ErrNotFound, wrapped.
func (s *Store) removeGone(ctx context.Context, name string, local bool) error {
	if local {
		if err := s.o.Local.DeleteRef(ctx, name); err != nil {
			return fmt.Errorf("ref %s: remove it here, as the remote did: %w", name, err)
		}
	}
	if err := s.known.drop(name); err != nil {
		return err
	}
	s.noteRemote(name, cas.ID{})
	if local {
		s.removedMu.Lock()
		s.removedLog = append(s.removedLog, name)
		if len(s.removedLog) > maxRemovedLog {
			s.removedLog = slices.Delete(s.removedLog, 0, len(s.removedLog)-maxRemovedLog)
		}
		s.removed.Add(1)
		s.removedMu.Unlock()
		// Debug: a live run replaces its ref every few seconds; the
		// caller's OnRefChange tells the user what matters to them.
		s.o.Log.Debug("a ref was removed on the remote; removed here too", "ref", name)
		s.changed(name)
	}
	return fmt.Errorf("ref %s: %w", name, cas.ErrNotFound)
}

// ListRefs merges the remote's refs (at most RefsMaxAge old) over the
// local ones, less those the remote had and has no longer (the listing
// removes them here: see reconcile). If the remote cannot be listed, the
// local refs are listed and the failure is logged once per RefsMaxAge.
func (s *Store) ListRefs(ctx context.Context, prefix string, fn func(string, cas.ID) error) error {
	remote, rerr := s.remoteRefs(ctx)
	if rerr != nil && ctx.Err() != nil {
		return rerr
	}
	merged := map[string]cas.ID{}
	if err := s.o.Local.ListRefs(ctx, prefix, func(name string, id cas.ID) error {
		if rerr == nil && s.authoritative(ctx, remote) && s.goneFrom(remote, name) {
			return nil
		}
		merged[name] = id
		return nil
	}); err != nil {
		return err
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

// authoritative reports whether a listing of the remote's refs may remove
// refs here. One with no ref at all may only if the remote holds objects:
// a remote with neither is one that was emptied, or replaced by another
// (a new bucket, a wrong prefix), while one whose every version another
// machine removed keeps its packs (nothing deletes them).
func (s *Store) authoritative(ctx context.Context, remote map[string]cas.ID) bool {
	if len(remote) > 0 || s.remoteHasObjects.Load() {
		return true
	}
	errFound := errors.New("found one")
	err := s.o.RemoteFiles.List(ctx, func(cas.ID, int64) error { return errFound })
	if errors.Is(err, errFound) {
		s.remoteHasObjects.Store(true) // for good: objects are never deleted
		return true
	}
	return false
}

// goneFrom reports whether name is a ref the remote had and the listing
// remote lacks.
func (s *Store) goneFrom(remote map[string]cas.ID, name string) bool {
	if _, on := remote[name]; on {
		return false
	}
	_, wasOn := s.known.get(name)
	return wasOn
}

// RemoteRefs returns the remote's refs, listed afresh, and the error of
// listing them.
func (s *Store) RemoteRefs(ctx context.Context) (map[string]cas.ID, error) {
	s.refsMu.Lock()
	s.listed = time.Time{}
	// Every ref read again, not only new names: one removed and made
	// again with other content since the last listing keeps its name.
	s.readAll = true
	s.refsMu.Unlock()
	return s.remoteRefs(ctx)
}

// remoteRefs returns the remote's refs as last listed, listing them again
// when the listing is older than RefsMaxAge. Concurrent callers share one
// listing, and a new listing settles the local refs with it (reconcile)
// before they get it. The map must not be modified.
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
		s.during = map[string]cas.ID{}
		old := s.remote
		if s.readAll {
			old, s.readAll = nil, false
		}
		s.refsMu.Unlock()

		m, err := s.listRemote(ctx, old)
		m, err = s.keepListing(m, old, err)
		if err == nil {
			s.reconcile(ctx, m)
		}
		s.refsMu.Lock()
		m, err = s.remote, s.listErr // with what reconcile noted
		s.listOnce = nil
		close(done)
		s.refsMu.Unlock()
		return m, err
	}
}

// keepListing makes listing m (or, if it failed with err, the old one)
// the kept one, with the changes this store made while it was under way.
func (s *Store) keepListing(m, old map[string]cas.ID, err error) (map[string]cas.ID, error) {
	s.refsMu.Lock()
	defer s.refsMu.Unlock()
	if err != nil {
		if s.listErr == nil {
			s.o.Log.Warn("cannot list the remote's refs; showing local ones only", "err", err)
		}
		m = old // keep what was known
	} else {
		for name, id := range s.during {
			if id.IsZero() {
				delete(m, name)
			} else {
				m[name] = id
			}
		}
	}
	s.during = nil
	s.listErr = err
	s.remote = m
	s.listed = time.Now()
	return m, err
}

// reconcile settles the local refs with a listing of the remote's: every
// ref the remote had (see known) that the listing lacks, or lists at
// another id, is settled with the remote (see settle), which asks the
// remote for that ref alone before changing anything. A listing that is
// not authoritative changes nothing.
func (s *Store) reconcile(ctx context.Context, remote map[string]cas.ID) {
	s.reconcileMu.Lock()
	defer s.reconcileMu.Unlock()
	if !s.known.isAdopted() {
		s.adopt(ctx, remote)
	}
	if !s.authoritative(ctx, remote) {
		return
	}
	for name, kid := range s.known.all() {
		if rid, on := remote[name]; on && rid == kid {
			continue
		}
		if _, err := s.settle(ctx, name); err != nil && !errors.Is(err, cas.ErrNotFound) {
			s.o.Log.Warn("settle a ref with the remote", "ref", name, "err", err)
		}
	}
}

// adopt makes the record of the remote's refs, the first time there is
// none (a store from before the record was kept): every local ref that
// the remote has at the same id was published or pulled, and is recorded.
// A local ref the remote lacks cannot be told from one never published,
// and is not: it stays, and Push publishes it.
func (s *Store) adopt(ctx context.Context, remote map[string]cas.ID) {
	err := s.o.Local.ListRefs(ctx, "", func(name string, id cas.ID) error {
		if rid, on := remote[name]; on && rid == id {
			return s.known.set(name, id)
		}
		return nil
	})
	if err == nil {
		err = s.known.markAdopted()
	}
	if err != nil {
		s.o.Log.Warn("record the refs the remote has", "err", err)
	}
}

// recheck is how many refs of the last listing a listing by names reads
// again, chosen at random, once per Options.RecheckEvery: a ref removed
// and made again between two listings keeps its name in both, and only a
// read shows its new id.
const recheck = 8

// listRemote lists the remote's refs. With ListRefNames it reads only the
// refs that old does not know, and now and then a few that it does (see
// recheck): refs are create-only, so a name keeps its id until it is
// deleted, which the next listing shows unless the name was made again by
// then. It is called by one lister at a time (see remoteRefs).
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
	if time.Since(s.rechecked) >= s.o.RecheckEvery {
		s.rechecked = time.Now()
		fresh = append(fresh, sample(m, recheck)...)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	var mu sync.Mutex
	for _, name := range fresh {
		g.Go(func() error {
			id, err := s.o.Remote.GetRef(gctx, name)
			if err != nil && !errors.Is(err, cas.ErrNotFound) {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				delete(m, name) // deleted meanwhile
			} else {
				m[name] = id
			}
			return nil
		})
	}
	return m, g.Wait()
}

// sample returns up to n names of m, a different few each time (the order
// of a map's range is random).
func sample(m map[string]cas.ID, n int) []string {
	var out []string
	for name := range m {
		if len(out) == n {
			break
		}
		out = append(out, name)
	}
	return out
}

// DeleteRef deletes the ref on the remote, then locally.
func (s *Store) DeleteRef(ctx context.Context, name string) error {
	if err := s.o.Remote.DeleteRef(ctx, name); err != nil {
		return fmt.Errorf("delete ref %s on the remote: %w", name, err)
	}
	s.noteRemote(name, cas.ID{})
	if err := s.known.drop(name); err != nil {
		return err
	}
	if err := s.o.Local.DeleteRef(ctx, name); err != nil {
		return err
	}
	// The name may be made again with other content: the mount must not
	// keep serving this one under it.
	s.changed(name)
	return nil
}

// Pending lists the local refs to publish: those never published that the
// remote does not have, or has with another id (a conflict). A ref the
// remote had and has no longer was removed by another machine, and is not
// published again, unless the remote holds no ref at all (see
// authoritative): a new or emptied remote gets every local ref.
func (s *Store) Pending(ctx context.Context) (map[string]cas.ID, error) {
	remote, err := s.RemoteRefs(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]cas.ID{}
	err = s.o.Local.ListRefs(ctx, "", func(name string, id cas.ID) error {
		if _, wasOn := s.known.get(name); wasOn && s.authoritative(ctx, remote) {
			return nil // on the remote, or settled with it by the listing
		}
		if rid, ok := remote[name]; !ok || rid != id {
			out[name] = id
		} else {
			s.recordKnown(name, id)
		}
		return nil
	})
	return out, err
}

// maxRemovedLog bounds the names of removed refs a Store remembers for
// PullStats.RemovedNames.
const maxRemovedLog = 4096

// PullStats counts what Pull recorded locally.
type PullStats struct {
	Refs  int      // refs new or changed locally
	Names []string // their names, sorted
	// Removed counts the local refs removed because the remote had
	// removed them (by this pull's listing or by an earlier look), and
	// RemovedNames names them (the last maxRemovedLog of them).
	Removed      int
	RemovedNames []string
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
// network. Local refs never published are kept (Push publishes them); a
// ref the remote had and has no longer is removed here (by the listing:
// see reconcile).
func (s *Store) Pull(ctx context.Context) (PullStats, error) {
	removed := s.removed.Load()
	remote, err := s.RemoteRefs(ctx)
	if err != nil {
		return PullStats{}, fmt.Errorf("pull: list the remote's refs: %w", err)
	}
	st := PullStats{Removed: int(s.removed.Load() - removed)}
	s.removedMu.Lock()
	st.RemovedNames = slices.Clone(s.removedLog[max(0, len(s.removedLog)-st.Removed):])
	s.removedMu.Unlock()
	local := map[string]cas.ID{}
	if err := s.o.Local.ListRefs(ctx, "", func(name string, id cas.ID) error {
		local[name] = id
		return nil
	}); err != nil {
		return st, err
	}
	for _, name := range slices.Sorted(maps.Keys(remote)) {
		if err := s.known.set(name, remote[name]); err != nil {
			return st, fmt.Errorf("pull: %w", err)
		}
		if local[name] == remote[name] {
			continue
		}
		if err := s.setLocal(ctx, name, remote[name]); err != nil {
			return st, fmt.Errorf("pull: ref %s: %w", name, err)
		}
		if !local[name].IsZero() {
			s.changed(name)
		}
		st.Refs++
		st.Names = append(st.Names, name)
	}
	return st, nil
}
