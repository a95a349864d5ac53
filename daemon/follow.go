package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/mlfs/mlfs/worktree"
)

// followEvery is how often the daemon looks whether datasets with a
// working tree here have a newer latest version (made on another machine,
// or by mlfs add on this one), to bring the trees that have nothing of
// their own to it. A look lists each such dataset's names through the
// store, which lists the remote at most once a second for all its callers
// (the mount's listings and the runs' import look as often); version
// objects are read only when the names changed (worktree.Set.Follow).
const followEvery = 2 * time.Second

// followTimeout bounds one look at one dataset, so that a remote that
// hangs delays the next look instead of stopping them.
const followTimeout = time.Minute

// follower keeps clean working trees on their dataset's latest version.
type follower struct {
	work *worktree.Set
	// forget tells the mount that a working tree changed behind it.
	forget func(dataset string)
	log    *slog.Logger
	// failed is the last error per dataset, logged once until it changes
	// or a look succeeds: a remote out of reach fails every look.
	failed map[string]string
	stop   context.CancelFunc
	done   chan struct{}
}

// startFollowing looks now and every followEvery until Stop.
func startFollowing(work *worktree.Set, forget func(string), log *slog.Logger) *follower {
	ctx, stop := context.WithCancel(context.Background())
	f := &follower{work: work, forget: forget, log: log, failed: map[string]string{}, stop: stop, done: make(chan struct{})}
	go f.loop(ctx)
	return f
}

// Stop ends the looks and waits for the one under way.
func (f *follower) Stop() {
	f.stop()
	<-f.done
}

func (f *follower) loop(ctx context.Context) {
	defer close(f.done)
	tick := time.NewTicker(followEvery)
	defer tick.Stop()
	for {
		f.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// once looks at every dataset with a working tree here.
func (f *follower) once(ctx context.Context) {
	names, err := f.work.Trees()
	if err != nil {
		f.fail("", err)
		return
	}
	for _, ds := range names {
		if ctx.Err() != nil {
			return
		}
		f.follow(ctx, ds)
	}
}

// follow looks at one dataset's working tree, and tells the mount and the
// log when it moved.
func (f *follower) follow(ctx context.Context, ds string) {
	ctx, cancel := context.WithTimeout(ctx, followTimeout)
	defer cancel()
	res, err := f.work.Follow(ctx, ds)
	if err != nil {
		if ctx.Err() == nil || ctx.Err() == context.DeadlineExceeded {
			f.fail(ds, err)
		}
		return
	}
	delete(f.failed, ds)
	switch {
	case res == nil:
	case res.Moved:
		f.forget(ds)
		f.log.Info("working tree follows the latest version", "dataset", ds, "from", res.Base, "to", res.Latest.Ref.String(),
			"made_on", res.Latest.Host, "made_by", res.Latest.User)
	default:
		// Told once per newer version; the snapshot warns again.
		f.log.Info("working tree stays behind the latest version", "dataset", ds, "base", res.Base, "latest", res.Latest.Ref.String(),
			"made_on", res.Latest.Host, "why", res.Stuck)
	}
}

func (f *follower) fail(ds string, err error) {
	if f.failed[ds] == err.Error() {
		return
	}
	f.failed[ds] = err.Error()
	f.log.Warn("look for a newer version for a working tree", "dataset", ds, "err", err)
}
