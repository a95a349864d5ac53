package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mlfs/mlfs/cas/cache"
	"github.com/mlfs/mlfs/config"
	"github.com/mlfs/mlfs/fs"
	"github.com/mlfs/mlfs/tracking"
	"github.com/mlfs/mlfs/worktree"
)

// Options tune Run.
type Options struct {
	// Mount is where to mount; empty means the configured mount point.
	Mount string
	// Debug logs every FUSE request.
	Debug bool
	// AllowOther lets other users use the mount.
	AllowOther bool
	Log        *slog.Logger
	// Ready, if set, is called once the mount and the socket serve.
	Ready func(mountpoint string)
}

// Run serves the mount and the socket until ctx ends or the filesystem is
// unmounted from outside (mlfs umount, fusermount3 -u), then unmounts,
// writes every pending pack and closes the index.
func Run(ctx context.Context, cfg *config.Config, opt Options) (err error) {
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	errs := newErrorRing(log.Handler())
	log = slog.New(errs)
	started := time.Now()
	dir := opt.Mount
	if dir == "" {
		dir = cfg.Mount
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	if err := prepareMountpoint(dir, log); err != nil {
		return err
	}
	r, err := OpenRepo(ctx, cfg, true, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := r.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the store: %w", cerr)
		}
	}()
	if r.Index == nil {
		return fmt.Errorf("the index %s is held by another mlfs process: is a daemon already running? (mlfs umount its mount point first)", cfg.Paths.IndexDir)
	}
	if r.checkRemote != nil {
		// A remote that refuses us (wrong credentials, no such bucket) is a
		// mistake to show now; one that is merely out of reach is not: the
		// daemon serves what it has and tries again.
		if err := r.checkRemote(ctx); err != nil && !passing(err) {
			return err
		}
	}
	c, err := openCache(cfg, r, log)
	if err != nil {
		return err
	}
	defer c.Close()
	work := worktree.NewSet(r.Index, filepath.Join(cfg.Paths.DataDir, "work"), r.Repo, c, log)
	killedAfter, _ := cfg.KilledAfter()
	runs, err := tracking.Open(ctx, tracking.Options{KV: r.Index, DataDir: RunsDir(cfg), Repo: r.Repo, Objects: c,
		KilledAfter: killedAfter, Publish: r.Shared != nil, Import: r.Shared != nil, Log: log})
	if err != nil {
		return err
	}
	// After the unmount (deferred later, run earlier): the last writes
	// are parsed and committed before the index closes.
	defer func() {
		if cerr := runs.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the runs: %w", cerr)
		}
	}()
	r.Runs = tracking.Live{T: runs}
	if r.Shared != nil {
		r.SyncRuns = func(ctx context.Context, publish, imp bool) (pub, got int, err error) {
			if publish {
				if pub, err = runs.Publish(ctx); err != nil {
					return pub, 0, err
				}
			}
			if imp {
				got, err = runs.Import(ctx)
			}
			return pub, got, err
		}
	}
	r.PurgeCache = c.Purge
	root := fs.New(fs.Options{Repo: r.Repo, Objects: c, Work: work, Runs: runs, Log: log, Prefetch: r.Shared != nil})
	r.Work, r.Forget = work, root.Forget
	r.FollowRemoteRefs(root.ForgetVersion)
	r.Status = func() Status {
		st := Status{PID: os.Getpid(), Started: started, Mount: dir, Store: cfg.Store, Remote: r.RemoteWhere,
			Cache: c.Stats(), Runs: runs.Stats(), Errors: errs.recent()}
		if r.RemoteRequests != nil {
			st.RemoteRequests = r.RemoteRequests()
		}
		return st
	}

	ln, err := Listen(cfg.Paths.Socket)
	if err != nil {
		return err
	}
	server, err := fs.Mount(dir, root, fs.MountOptions{Debug: opt.Debug, AllowOther: opt.AllowOther})
	if err != nil {
		ln.Close()
		return err
	}
	// Clean working trees follow versions made elsewhere; stopped before
	// the store and the index close (deferred later, run earlier).
	follow := startFollowing(work, root.Forget, log)
	defer follow.Stop()
	apiCtx, stopAPI := context.WithCancel(context.Background())
	apiDone := make(chan error, 1)
	go func() { apiDone <- Serve(apiCtx, ln, r, log) }()
	log.Info("serving", "mount", dir, "store", cfg.Store, "cache", cfg.Paths.CacheDir, "socket", cfg.Paths.Socket, "pid", os.Getpid())
	if opt.Ready != nil {
		opt.Ready(dir)
	}

	unmounted := make(chan struct{})
	go func() { server.Wait(); close(unmounted) }()
	select {
	case <-ctx.Done():
		log.Info("stopping: unmounting", "mount", dir)
		unmount(dir, server, log)
		<-unmounted
	case <-unmounted:
		if pid := unmountedBy(cfg, dir); pid != 0 {
			log.Info("unmounted by mlfs umount; stopping", "mount", dir, "umount_pid", pid)
		} else {
			log.Info("unmounted from outside; stopping", "mount", dir)
		}
	}
	stopAPI()
	if err := <-apiDone; err != nil {
		log.Warn("socket server", "err", err)
	}
	return nil
}

// openCache opens the chunk cache with the configured size.
func openCache(cfg *config.Config, r *Repo, log *slog.Logger) (*cache.Cache, error) {
	var bytes int64
	var percent float64
	if cfg.CacheSize != "" {
		var err error
		if bytes, percent, err = config.ParseSize(cfg.CacheSize); err != nil {
			return nil, err
		}
	}
	dir := filepath.Join(cfg.Paths.CacheDir, "chunks")
	size, err := cache.SizeFor(dir, bytes, percent)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Every store of the stack verifies what it reads (the pack stores
	// hash each blob), so the cache need not hash a fetch again; and a
	// reader waits on the fetch only, not on the cache's disk write too.
	c, err := cache.New(dir, size, r.Store(), log, cache.SourceVerifies(), cache.WriteBehind(writeBehind))
	if err != nil {
		return nil, fmt.Errorf("chunk cache %s: %w", dir, err)
	}
	return c, nil
}

// writeBehind bounds the fetched chunks held in memory while they wait to
// be written to the chunk cache: a few read-ahead windows' worth.
const writeBehind = 64 << 20

// Stale reports whether dir is a mount whose FUSE server is gone. It asks
// with statfs, which the kernel never answers from its caches (a stat
// can be answered from cached attributes for a while after the death).
func Stale(dir string) bool {
	var st syscall.Statfs_t
	err := syscall.Statfs(dir, &st)
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED)
}

// prepareMountpoint makes sure dir can be mounted on: it exists, and a
// stale mount left by a daemon that died ("transport endpoint is not
// connected") is detached first.
func prepareMountpoint(dir string, log *slog.Logger) error {
	_, err := os.Stat(dir)
	if Stale(dir) {
		err = syscall.ENOTCONN
	}
	switch {
	case errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED):
		log.Warn("replacing a stale mount left by a daemon that died", "mount", dir)
		if err := detach(dir); err != nil {
			return fmt.Errorf("mount point %s: stale mount, and detaching it failed: %w", dir, err)
		}
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("mount point %s: %w", dir, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("mount point %s: %w", dir, err)
	}
	if mounted, _ := IsMounted(dir); mounted {
		return fmt.Errorf("mount point %s: already mounted (mlfs umount %s first)", dir, dir)
	}
	return nil
}

// detach lazily unmounts dir: at once for new users, for good once the
// last open file in it is closed.
func detach(dir string) error {
	if os.Geteuid() == 0 {
		return syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	out, err := exec.Command("fusermount3", "-u", "-z", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusermount3 -u -z: %v: %s", err, out)
	}
	return nil
}

type unmounter interface{ Unmount() error }

// unmount unmounts, retrying while files are open, then detaches.
func unmount(dir string, s unmounter, log *slog.Logger) {
	for i := 0; i < 10; i++ {
		if err := s.Unmount(); err == nil {
			return
		} else if i == 0 {
			log.Warn("mount busy; retrying", "mount", dir, "err", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	log.Warn("mount still busy; detaching it", "mount", dir)
	if err := detach(dir); err != nil {
		log.Error("detach", "mount", dir, "err", err)
	}
}
