package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/limit"
	"github.com/mlfs/mlfs/cas/local"
	"github.com/mlfs/mlfs/cas/metrics"
	"github.com/mlfs/mlfs/cas/pack"
	"github.com/mlfs/mlfs/cas/retry"
	"github.com/mlfs/mlfs/cas/tiered"
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
	// Shared is the two-tier store when a remote is configured, else nil.
	Shared *tiered.Store
	// RemoteWhere names the remote in messages (no credentials).
	RemoteWhere string
	// Metrics holds the store's Prometheus counters (requests, bytes and
	// latency by backend and operation).
	Metrics *prometheus.Registry
	// RemoteRequests counts the requests made to the remote, by operation;
	// nil without a remote.
	RemoteRequests func() map[string]int64
	// checkRemote opens the remote now (it opens on first use otherwise)
	// and says why it cannot; nil without a remote.
	checkRemote func(ctx context.Context) error
	// SyncRuns, set by a daemon with a remote, publishes changed runs
	// and/or imports new ones now, and counts them.
	SyncRuns func(ctx context.Context, publish, imp bool) (published, imported int, err error)
	closers  []func() error
	log      *slog.Logger
}

// Close flushes and releases everything, in reverse order of opening. With
// a remote, it logs (at debug level: mlfs -v) the requests made to it.
func (r *Repo) Close() error {
	var errs []error
	for i := len(r.closers) - 1; i >= 0; i-- {
		errs = append(errs, r.closers[i]())
	}
	if r.closers != nil && r.RemoteRequests != nil {
		r.logRequests()
	}
	r.closers = nil
	return errors.Join(errs...)
}

// logRequests logs the requests made to the remote since it was opened,
// by operation (those made at least once) and in all.
func (r *Repo) logRequests() {
	counts := r.RemoteRequests()
	attrs := []any{"remote", r.RemoteWhere}
	var total int64
	for _, op := range slices.Sorted(maps.Keys(counts)) {
		if n := counts[op]; n > 0 {
			attrs = append(attrs, op, n)
			total += n
		}
	}
	r.log.Debug("remote requests", append(attrs, "total", total)...)
}

// OpenRepo assembles the storage stack for cfg. Without a remote:
//
//	repo → pack (blobs bundled into 16 MiB packs) → local (a folder)
//
// With one, the local stack becomes the first tier of a tiered store whose
// second tier is the remote (see cas/tiered):
//
//	repo → tiered ─┬→ pack → local
//	               └→ pack (read-ahead) → remote backend (s3, gcs, azure, file)
//
// (the daemon's chunk cache sits above the repo's reads). If withIndex,
// it opens the local badger index too. The index only speeds up repeated
// adds; when another mlfs process holds it, mlfs goes on without.
func OpenRepo(ctx context.Context, cfg *config.Config, withIndex bool, log *slog.Logger) (*Repo, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Repo{Config: cfg, Metrics: prometheus.NewRegistry(), log: log}
	r.PurgeCache = r.purgeOffline
	be, err := local.Open(cfg.Store)
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, be.Close)
	lp, err := pack.New(ctx, be, pack.Options{Log: log})
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("store %s: %w", cfg.Store, err)
	}
	// pack.Close closes be too; replace be's closer.
	r.closers = []func() error{lp.Close}
	var st cas.Store = lp
	rc, err := cfg.RemoteSettings()
	if err != nil {
		r.Close()
		return nil, err
	}
	if rc.URL != "" {
		t, err := r.openShared(ctx, rc, lp, be, log)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.closers = []func() error{t.Close}
		st = t
	}
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

// Remote request settings. Up to remoteRequests requests are in flight
// at once: enough to fill a fast link with ranged GETs of a few MiB, few
// enough not to be throttled. A miss of a small blob fetches a window of
// remoteReadAhead bytes of its pack, so neighbouring small files come in
// the same GET.
const (
	remoteRequests  = 16
	remoteReadAhead = 4 << 20
)

// wrap puts the request layers over the bare backend, from the outside in:
//
//	retry (backoff with jitter, per-attempt timeout; errors classified by
//	the backend) → limit (requests in flight) → metrics (counts every
//	request that reaches the backend) → backend
func (rb *remoteBackend) wrap(reg prometheus.Registerer, log *slog.Logger) (cas.Store, *metrics.Store, error) {
	counted, err := metrics.New(rb.store, reg, rb.kind)
	if err != nil {
		rb.store.Close()
		return nil, nil, err
	}
	return retry.New(limit.New(counted, remoteRequests), retry.Options{Transient: rb.transient, AttemptTimeout: rb.timeout, Log: log}), counted, nil
}

// openShared makes the tiered store over the local pack store lp (in the
// folder be) and the remote rc. The remote is opened on first use (see
// lazyRemote), so that a machine whose remote is out of reach still works
// with what it has.
func (r *Repo) openShared(ctx context.Context, rc config.Remote, lp *pack.Store, be cas.Store, log *slog.Logger) (*tiered.Store, error) {
	where, err := remoteWhere(rc)
	if err != nil {
		return nil, err
	}
	var counted *metrics.Store
	var countedMu sync.Mutex
	l := &lazyRemote{where: where, log: log, open: func(ctx context.Context) (opened, error) {
		rb, err := openBackend(ctx, rc, log)
		if err != nil {
			return opened{}, err
		}
		wrapped, c, err := rb.wrap(r.Metrics, log)
		if err != nil {
			return opened{}, err
		}
		rp, err := pack.New(ctx, wrapped, pack.Options{
			ReadAhead: remoteReadAhead,
			// A folder per remote, named by the hash of its URL (which
			// also keeps any credentials in the URL out of the path).
			IndexCache: filepath.Join(r.Config.Paths.CacheDir, "packs", cas.Sum([]byte(rc.URL)).String()),
			Log:        log,
		})
		if err != nil {
			wrapped.Close()
			return opened{}, fmt.Errorf("remote %s: %w", rb.where, err)
		}
		countedMu.Lock()
		counted = c
		countedMu.Unlock()
		return opened{packs: rp, files: wrapped}, nil
	}}
	remote, files := lazyStore{l: l, packs: true}, lazyStore{l: l}
	// RemoteKey: which names this machine has seen on the remote is kept
	// per remote, so that moving to another one removes nothing here.
	t, err := tiered.New(tiered.Options{Local: lp, LocalFiles: be, Remote: remote, RemoteFiles: files,
		ListRefNames: files.ListRefNames, RemoteKey: rc.URL, Log: log})
	if err != nil {
		return nil, err
	}
	r.Shared, r.RemoteWhere = t, where
	r.RemoteRequests = func() map[string]int64 {
		countedMu.Lock()
		defer countedMu.Unlock()
		if counted == nil {
			return nil
		}
		return counted.Counts()
	}
	r.checkRemote = func(ctx context.Context) error {
		_, probe, err := l.get(ctx)
		return l.note(probe, err)
	}
	return t, nil
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
