package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/retry"
)

// reopenEvery is how often a remote that could not be opened is tried
// again, at most; and how long calls fail at once after one found the
// remote not answering at all.
const reopenEvery = 5 * time.Second

// openTimeout bounds opening the remote (its first requests).
const openTimeout = 15 * time.Second

// opened is a remote made ready: its pack store and the wrapped backend
// beneath it.
type opened struct {
	packs, files cas.Store
}

// lazyRemote opens a remote on first use, and again on a later use if
// that failed. A machine whose remote is out of reach when the daemon
// starts then still serves what it has locally; calls that need the
// remote fail (EIO in the mount, with the reason in mlfs status) until it
// can be reached.
type lazyRemote struct {
	open  func(ctx context.Context) (opened, error)
	where string
	log   *slog.Logger

	mu     sync.Mutex
	ready  *opened
	err    error
	failed time.Time
	// While silent is set, a call just spent every retry on a remote
	// that did not answer, and each of the mount's requests would wait as
	// long again. If its attempts timed out (hanging), calls fail at once
	// with silent until silentUntil, and one is let through then; if they
	// failed fast (connections refused or reset: hangs is false), every
	// call makes a single attempt, which costs no wait.
	silent      error
	hangs       bool
	silentUntil time.Time
}

// note looks at the outcome of a call to the remote and returns it. probe
// says the call was let through while calls fail at once: any answer from
// the remote, even a refusal, ends that.
func (l *lazyRemote) note(probe bool, err error) error {
	timedOut := unreachable(err)
	if !timedOut && !probe {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !timedOut {
		if l.silent != nil {
			l.log.Info("the remote answers again", "remote", l.where)
		}
		l.silent = nil
		return err
	}
	if l.silent == nil {
		l.log.Error("the remote does not answer; its calls are not retried until it does", "remote", l.where, "err", err)
	}
	l.silent = fmt.Errorf("remote %s does not answer (%w); trying again", l.where, err)
	l.hangs = errors.Is(err, retry.ErrAttemptTimeout)
	l.silentUntil = time.Now().Add(reopenEvery)
	return err
}

// unreachable reports whether err, which a call returned after every
// retry, says the remote did not answer at all: attempts that timed out,
// connections refused or reset, names that do not resolve. A remote that
// answers, even with 503, is not: the retry layer paces those.
func unreachable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, retry.ErrAttemptTimeout) {
		return true
	}
	var op *net.OpError
	var dns *net.DNSError
	var ce interface{ ConnectionError() bool }
	return errors.As(err, &op) || errors.As(err, &dns) || errors.As(err, &ce) && ce.ConnectionError()
}

// get returns the remote, opened. While the remote does not answer (see
// note), calls are probes, whose answer ends the outage: if the remote
// hangs, one every reopenEvery, the others failing at once; if it fails
// fast, every call, with a single attempt (retry.Once). Reads work again
// as soon as the remote does, and none waits a retry budget meanwhile.
func (l *lazyRemote) get(ctx context.Context) (o opened, probe bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.silent != nil && l.hangs {
		// One probe per reopenEvery: after a call found the remote not
		// answering, or after the last probe started (it may hang).
		if time.Now().Before(l.silentUntil) {
			return opened{}, false, l.silent
		}
		l.silentUntil = time.Now().Add(reopenEvery)
	}
	probe = l.silent != nil
	if l.ready != nil {
		return *l.ready, probe, nil
	}
	if l.err != nil && time.Since(l.failed) < reopenEvery {
		return opened{}, false, l.err
	}
	octx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	o, err = l.open(octx)
	if err != nil {
		what := "is out of reach"
		if !passing(err) {
			what = "cannot be used" // credentials, a missing bucket: it answered
		}
		if l.err == nil {
			msg := "cannot open the remote; serving what this machine has, and trying again"
			if !passing(err) {
				msg = "the remote refuses this machine"
			}
			l.log.Error(msg, "remote", l.where, "err", err)
		}
		l.err, l.failed = fmt.Errorf("remote %s %s: %w", l.where, what, err), time.Now()
		return opened{}, false, l.err
	}
	if l.err != nil {
		l.log.Info("the remote is reachable again", "remote", l.where)
	}
	l.ready, l.err = &o, nil
	return o, false, nil
}

func (l *lazyRemote) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ready == nil {
		return nil
	}
	return l.ready.packs.Close() // closes files too: it is their backend
}

// lazyStore is one of a lazyRemote's stores: the pack store (packs) or
// the backend beneath it.
type lazyStore struct {
	l     *lazyRemote
	packs bool
}

var (
	_ cas.Store    = lazyStore{}
	_ cas.RefNamer = lazyStore{}
)

// store returns the store to call, the context to call it with (one
// attempt, while the remote fails fast) and whether the call is a probe.
func (s lazyStore) store(ctx context.Context) (cas.Store, context.Context, bool, error) {
	o, probe, err := s.l.get(ctx)
	if err != nil {
		return nil, ctx, false, err
	}
	if probe {
		ctx = retry.Once(ctx)
	}
	if s.packs {
		return o.packs, ctx, probe, nil
	}
	return o.files, ctx, probe, nil
}

func (s lazyStore) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	st, ctx, probe, err := s.store(ctx)
	if err != nil {
		return nil, err
	}
	b, err := st.Get(ctx, id)
	return b, s.l.note(probe, err)
}

func (s lazyStore) GetRange(ctx context.Context, id cas.ID, off, length int64) ([]byte, error) {
	st, ctx, probe, err := s.store(ctx)
	if err != nil {
		return nil, err
	}
	b, err := st.GetRange(ctx, id, off, length)
	return b, s.l.note(probe, err)
}

func (s lazyStore) Stat(ctx context.Context, id cas.ID) (int64, error) {
	st, ctx, probe, err := s.store(ctx)
	if err != nil {
		return 0, err
	}
	n, err := st.Stat(ctx, id)
	return n, s.l.note(probe, err)
}

func (s lazyStore) Put(ctx context.Context, id cas.ID, data []byte) error {
	st, ctx, probe, err := s.store(ctx)
	if err != nil {
		return err
	}
	return s.l.note(probe, st.Put(ctx, id, data))
}

func (s lazyStore) List(ctx context.Context, fn func(cas.ID, int64) error) error {
	st, ctx, probe, err := s.store(ctx)
	if err != nil {
		return err
	}
	return s.l.note(probe, st.List(ctx, fn))
}

func (s lazyStore) Delete(ctx context.Context, id cas.ID) error {
	st, ctx, probe, err := s.store(ctx)
	if err != nil {
		return err
	}
	return s.l.note(probe, st.Delete(ctx, id))
}

func (s lazyStore) CreateRef(ctx context.Context, name string, id cas.ID) error {
	st, ctx, probe, err := s.store(ctx)
	if err != nil {
		return err
	}
	return s.l.note(probe, st.CreateRef(ctx, name, id))
}

func (s lazyStore) GetRef(ctx context.Context, name string) (cas.ID, error) {
	st, ctx, probe, err := s.store(ctx)
	if err != nil {
		return cas.ID{}, err
	}
	id, err := st.GetRef(ctx, name)
	return id, s.l.note(probe, err)
}

func (s lazyStore) ListRefs(ctx context.Context, prefix string, fn func(string, cas.ID) error) error {
	st, ctx, probe, err := s.store(ctx)
	if err != nil {
		return err
	}
	return s.l.note(probe, st.ListRefs(ctx, prefix, fn))
}

func (s lazyStore) ListRefNames(ctx context.Context, prefix string, fn func(string) error) error {
	st, ctx, probe, err := s.store(ctx)
	if err != nil {
		return err
	}
	return s.l.note(probe, cas.ListRefNames(ctx, st, prefix, fn))
}

func (s lazyStore) DeleteRef(ctx context.Context, name string) error {
	st, ctx, probe, err := s.store(ctx)
	if err != nil {
		return err
	}
	return s.l.note(probe, st.DeleteRef(ctx, name))
}

// Prefetch passes a prefetch on to the pack store, if it is open.
func (s lazyStore) Prefetch(ctx context.Context, ids []cas.ID) error {
	st, ctx, probe, err := s.store(ctx)
	if err != nil {
		return err
	}
	if p, ok := st.(interface {
		Prefetch(context.Context, []cas.ID) error
	}); ok {
		return s.l.note(probe, p.Prefetch(ctx, ids))
	}
	return s.l.note(probe, nil)
}

// Close closes the remote if it was opened; the two views share it, so
// only the pack view closes.
func (s lazyStore) Close() error {
	if s.packs {
		return s.l.close()
	}
	return nil
}
