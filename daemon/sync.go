package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/mlfs/mlfs/cas"
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
	// Conflicts are local names the remote has for other content (push):
	// made here while another machine made the same name.
	Conflicts []string `json:"conflicts,omitempty"`
	// Runs counts the runs published (push) or imported (pull); only a
	// daemon publishes and imports runs.
	Runs int `json:"runs"`
}

// Push publishes to the remote every local pack and every local name it
// lacks, then (in a daemon) every run that changed since it was last
// published. progress, if set, gets the bytes uploaded so far.
func (r *Repo) Push(ctx context.Context, progress func(bytes, files int64)) (SyncResult, error) {
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
// look. Data stays where it is: files are fetched when read.
func (r *Repo) Pull(ctx context.Context) (SyncResult, error) {
	res := SyncResult{Remote: r.RemoteWhere}
	if r.Shared == nil {
		return res, ErrNoRemote
	}
	st, err := r.Shared.Pull(ctx)
	res.Refs = st.Refs
	if err != nil {
		return res, err
	}
	if r.SyncRuns != nil {
		_, imp, err := r.SyncRuns(ctx, false, true)
		res.Runs = imp
		if err != nil {
			return res, fmt.Errorf("pull runs: %w", err)
		}
	}
	if r.Forget != nil {
		r.Forget("")
	}
	return res, nil
}
