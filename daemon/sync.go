package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/repo"
)

// ErrNoRemote is returned by Push and Pull when no remote is configured.
var ErrNoRemote = errors.New("no remote is configured (mlfs remote add NAME URL, then restart the daemon)")

// SyncResult says what a push or a pull did.
type SyncResult struct {
	Remote string `json:"remote"` // where, without credentials
	// Packs and Bytes count the pack files uploaded (push).
	Packs int   `json:"packs"`
	Bytes int64 `json:"bytes"`
	// Refs counts the names published (push) or recorded here (pull).
	Refs int `json:"refs"`
	// Removed counts the version names removed here because the remote no
	// longer has them: another machine removed them (runs are not counted).
	Removed int `json:"removed,omitempty"`
	// Conflicts are local names the remote has for other content (push):
	// made here while another machine made the same name.
	Conflicts []string `json:"conflicts,omitempty"`
	// Runs counts the runs published (push) or imported (pull); only a
	// daemon publishes and imports runs.
	Runs int `json:"runs"`
	// Fetched and FetchedBytes count the objects of the versions named to
	// pull that were copied here (pull).
	Fetched      int   `json:"fetched"`
	FetchedBytes int64 `json:"fetched_bytes"`
}

// Push publishes to the remote every local pack and every local name it
// lacks that was never on it (a name another machine removed from the
// remote is not made again: see tiered.Store.Pending) (only the versions of refs, if any are given: a dataset's, or one
// version), then (in a daemon) every run that changed since it was last
// published. progress, if set, gets the bytes uploaded so far.
func (r *Repo) Push(ctx context.Context, refs []repo.Ref, progress func(bytes, files int64)) (SyncResult, error) {
	res := SyncResult{Remote: r.RemoteWhere}
	if r.Shared == nil {
		return res, ErrNoRemote
	}
	var cb func(done, total int64)
	if progress != nil {
		cb = func(done, _ int64) { progress(done, 0) }
	}
	st, err := r.Shared.Upload(ctx, cb)
	res.Packs, res.Bytes = st.Packs, st.Bytes
	if err != nil {
		return res, err
	}
	pending, err := r.Shared.Pending(ctx)
	if err != nil {
		return res, fmt.Errorf("push: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(pending)) {
		if !named(refs, name) {
			continue
		}
		err := r.Shared.CreateRef(ctx, name, pending[name])
		switch {
		case errors.Is(err, cas.ErrExists):
			res.Conflicts = append(res.Conflicts, name)
		case err != nil:
			return res, fmt.Errorf("push %s: %w", name, err)
		default:
			res.Refs++
		}
	}
	if r.SyncRuns != nil {
		pub, _, err := r.SyncRuns(ctx, true, false)
		res.Runs = pub
		if err != nil {
			return res, fmt.Errorf("push runs: %w", err)
		}
	}
	return res, nil
}

// Pull records the remote's names here, so they resolve without the
// network, and (in a daemon) imports the runs published since the last
// look. Data stays where it is, fetched when read, except for the versions
// of refs (a dataset's latest, or one version): their objects are copied
// here, so they read without the network. progress, if set, gets the
// bytes copied so far.
func (r *Repo) Pull(ctx context.Context, refs []repo.Ref, progress func(bytes, files int64)) (SyncResult, error) {
	res := SyncResult{Remote: r.RemoteWhere}
	if r.Shared == nil {
		return res, ErrNoRemote
	}
	st, err := r.Shared.Pull(ctx)
	res.Refs = st.Count(repo.IsVersionRef) // runs are counted as runs, once imported
	for _, name := range st.RemovedNames {
		if repo.IsVersionRef(name) { // a live run's refs come and go
			res.Removed++
		}
	}
	if err != nil {
		return res, err
	}
	// The version objects the names point at are small: keep them all
	// here, so that listing versions and resolving latest work offline.
	var heads []cas.ID
	if err := r.Store().ListRefs(ctx, "", func(_ string, id cas.ID) error {
		heads = append(heads, id)
		return nil
	}); err != nil {
		return res, err
	}
	if _, err := r.Shared.Fetch(ctx, heads, nil); err != nil {
		return res, fmt.Errorf("pull: %w", err)
	}
	if r.SyncRuns != nil {
		_, imp, err := r.SyncRuns(ctx, false, true)
		res.Runs = imp
		if err != nil {
			return res, fmt.Errorf("pull runs: %w", err)
		}
	}
	for _, ref := range refs {
		if ref.Version == "" {
			ref.Version = "latest"
		}
		v, err := r.Resolve(ctx, ref)
		if err != nil {
			return res, fmt.Errorf("pull %s: %w", ref, err)
		}
		var ids []cas.ID
		if err := r.Repo.Walk(ctx, v.ID, func(id cas.ID, _ int64) error {
			ids = append(ids, id)
			return nil
		}); err != nil {
			return res, fmt.Errorf("pull %s: %w", v.Ref, err)
		}
		base := res.FetchedBytes
		var cb func(int64)
		if progress != nil {
			cb = func(n int64) { progress(base+n, 0) }
		}
		st, err := r.Shared.Fetch(ctx, ids, cb)
		res.Fetched += st.Objects
		res.FetchedBytes += st.Bytes
		if err != nil {
			return res, fmt.Errorf("pull %s: %w", v.Ref, err)
		}
	}
	return res, nil
}

// FollowRemoteRefs has forget called with the mount's name
// (dataset@version) of every version whose name the remote changed (see
// tiered.Store.OnRefChange): removed there, or made again with other
// content. The mount caches a version's folder for long, since a version
// never changes; a name that changes what it means must be forgotten.
func (r *Repo) FollowRemoteRefs(forget func(name string)) {
	if r.Shared == nil {
		return
	}
	r.Shared.OnRefChange(func(ref string) {
		if !repo.IsVersionRef(ref) {
			return // runs come and go through the tracker
		}
		ds, ver, _ := strings.Cut(ref, "/")
		r.log.Info("a version changed on the remote (removed, or made again by another machine): the mount reads it anew", "version", ds+"@"+ver)
		forget(ds + "@" + ver)
	})
}

// named reports whether ref name (dataset/version) is one of refs; every
// name is, when refs is empty.
func named(refs []repo.Ref, name string) bool {
	if len(refs) == 0 {
		return true
	}
	ds, ver, _ := strings.Cut(name, "/")
	for _, r := range refs {
		if r.Dataset == ds && (r.Version == "" || r.Version == ver) {
			return true
		}
	}
	return false
}
