package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mlfs/mlfs/config"
	"github.com/mlfs/mlfs/daemon"
	"github.com/mlfs/mlfs/repo"
)

func (g *globals) config() (*config.Config, error) {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return nil, err
	}
	if g.store != "" {
		abs, err := filepath.Abs(g.store)
		if err != nil {
			return nil, err
		}
		cfg.Store = abs
	}
	return cfg, nil
}

// store is what the commands need of a repository. The local
// *daemon.Repo and the *daemon.Client of a running daemon both provide it,
// with the same results and error texts, so a command prints the same
// either way.
type store interface {
	Add(ctx context.Context, ref repo.Ref, path string, opts repo.AddOptions) (*repo.AddResult, error)
	Versions(ctx context.Context, dataset string) ([]repo.VersionInfo, error)
	Resolve(ctx context.Context, ref repo.Ref) (repo.VersionInfo, error)
	Export(ctx context.Context, ref repo.Ref, dir string, opts repo.ExportOptions) (repo.VersionInfo, error)
	Diff(ctx context.Context, a, b repo.Ref) ([]repo.Change, error)
	Fsck(ctx context.Context, report func(repo.Problem)) (repo.FsckStats, error)
	GC(ctx context.Context, dryRun bool) (repo.GCStats, error)
	RemoveVersion(ctx context.Context, ref repo.Ref) error
	Checkout(ctx context.Context, ref repo.Ref, force bool) (repo.VersionInfo, error)
	Push(ctx context.Context, refs []repo.Ref, progress func(bytes, files int64)) (daemon.SyncResult, error)
	Pull(ctx context.Context, refs []repo.Ref, progress func(bytes, files int64)) (daemon.SyncResult, error)
	// Close flushes and releases the store (local) or the connection
	// (daemon). Calling it twice is allowed.
	Close() error
}

var (
	_ store = (*daemon.Repo)(nil)
	_ store = (*daemon.Client)(nil)
)

// open returns the running daemon's store if a daemon serves this
// instance's store, and otherwise opens the store in this process;
// withIndex for commands that profit from the local index (add).
func (g *globals) open(ctx context.Context, withIndex bool) (store, error) {
	cfg, err := g.config()
	if err != nil {
		return nil, err
	}
	c, err := daemon.Dial(cfg.Paths.Socket)
	switch {
	case errors.Is(err, daemon.ErrNoDaemon):
		g.log.Debug("no daemon; opening the store in this process", "store", cfg.Store, "socket", cfg.Paths.Socket)
	case err != nil:
		return nil, err
	case c.Store() != cfg.Store:
		// --store or $MLFS_STORE name another store than the daemon's.
		c.Close()
		g.log.Debug("the daemon serves another store; opening this one in this process",
			"store", cfg.Store, "daemon_store", c.Store(), "daemon_pid", c.PID())
	default:
		g.log.Debug("using the daemon", "socket", c.Socket(), "pid", c.PID(), "store", c.Store())
		return c, nil
	}
	r, err := daemon.OpenRepo(ctx, cfg, withIndex, g.log)
	if err != nil {
		return nil, err // not a nil *daemon.Repo in a non-nil store
	}
	return r, nil
}

// progress returns a progress callback drawing a bar on stderr when it is
// a terminal, and nil (no output) otherwise.
func (g *globals) progress(verb string, total int64) (func(bytes, files int64), func()) {
	if g.quiet || !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil, func() {}
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(verb),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionShowCount(),
	)
	return func(bytes, files int64) { bar.Set64(bytes) }, func() { bar.Finish(); fmt.Fprint(os.Stderr, "") }
}

// humanBytes formats n as KiB/MiB/GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
