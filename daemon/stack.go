package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mlfs/mlfs/cas/local"
	"github.com/mlfs/mlfs/cas/pack"
	"github.com/mlfs/mlfs/config"
	"github.com/mlfs/mlfs/index"
	"github.com/mlfs/mlfs/index/badgerkv"
	"github.com/mlfs/mlfs/repo"
	"github.com/mlfs/mlfs/tracking"
	"github.com/mlfs/mlfs/worktree"
)

// Repo is an open repository and the resources behind it.
type Repo struct {
	*repo.Repo
	Config *config.Config
	// Index is the local badger index, nil if another process holds it.
	Index index.KV
	// Work is the working trees: the daemon's, or, without a daemon, one
	// opened for a command that needs it (checkout).
	Work *worktree.Set
	// Forget, if set, tells the mount that a working tree changed behind it.
	Forget func(dataset string)
	// Runs answers about runs: the daemon's tracker, or the index.
	Runs tracking.View
	// Status, if set, describes the running daemon.
	Status func() Status
	// PurgeCache empties the chunk cache: the daemon's, or the cache folder.
	PurgeCache func() error
	closers    []func() error
}

// Close flushes and releases everything, in reverse order of opening.
func (r *Repo) Close() error {
	var errs []error
	for i := len(r.closers) - 1; i >= 0; i-- {
		errs = append(errs, r.closers[i]())
	}
	r.closers = nil
	return errors.Join(errs...)
}

// OpenRepo assembles the storage stack for cfg:
//
//	repo → pack (blobs bundled into 16 MiB packs) → local (a folder)
//
// and, if withIndex, the local badger index. The index only speeds up
// repeated adds; when another mlfs process holds it, mlfs goes on without.
func OpenRepo(ctx context.Context, cfg *config.Config, withIndex bool, log *slog.Logger) (*Repo, error) {
	r := &Repo{Config: cfg}
	r.PurgeCache = r.purgeOffline
	be, err := local.Open(cfg.Store)
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, be.Close)
	st, err := pack.New(ctx, be, pack.Options{Log: log})
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("store %s: %w", cfg.Store, err)
	}
	// pack.Close closes be too; replace be's closer.
	r.closers = []func() error{st.Close}
	var idx index.KV
	if withIndex {
		if err := os.MkdirAll(cfg.Paths.DataDir, 0o755); err != nil {
			r.Close()
			return nil, err
		}
		kv, err := badgerkv.Open(cfg.Paths.IndexDir, log)
		if err != nil {
			log.Debug("going on without the local index", "err", err)
		} else {
			idx = kv
			r.Index = kv
			r.closers = append(r.closers, kv.Close)
		}
	}
	r.Repo = repo.New(st, idx, filepath.Join(cfg.Store, "lock"), log)
	if idx != nil {
		// gc keeps what working trees (and run folders, which are
		// working trees too) still read from the store.
		r.Repo.AddRoots("working trees", worktree.Roots(idx))
		r.Runs = &tracking.Offline{KV: idx, DataDir: RunsDir(cfg)}
	}
	return r, nil
}

// PurgeCache empties the chunk cache of a store without a daemon.
func (r *Repo) purgeOffline() error {
	c, err := openCache(r.Config, r, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Purge()
}

// RunsDir is where the runs' local file bytes live.
func RunsDir(cfg *config.Config) string { return filepath.Join(cfg.Paths.DataDir, "runs") }

// Checkout resets a dataset's working tree to a version.
func (r *Repo) Checkout(ctx context.Context, ref repo.Ref, force bool) (repo.VersionInfo, error) {
	if r.Work == nil {
		if r.Index == nil {
			return repo.VersionInfo{}, fmt.Errorf("checkout %s: the index %s is held by another mlfs process", ref, r.Config.Paths.IndexDir)
		}
		r.Work = worktree.NewSet(r.Index, filepath.Join(r.Config.Paths.DataDir, "work"), r.Repo, r.Store(), nil)
	}
	v, err := r.Work.Checkout(ctx, ref, force)
	if err == nil && r.Forget != nil {
		r.Forget(ref.Dataset)
	}
	return v, err
}
