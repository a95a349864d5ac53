package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mlfs/mlfs/cas"
)

// reopenEvery is how often a remote that could not be opened is tried
// again, at most.
const reopenEvery = 5 * time.Second

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
}

func (l *lazyRemote) get(ctx context.Context) (opened, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ready != nil {
		return *l.ready, nil
	}
	if l.err != nil && time.Since(l.failed) < reopenEvery {
		return opened{}, l.err
	}
	o, err := l.open(ctx)
	if err != nil {
		if l.err == nil {
			l.log.Error("cannot open the remote; serving what this machine has, and trying again", "remote", l.where, "err", err)
		}
		l.err, l.failed = fmt.Errorf("remote %s is out of reach: %w", l.where, err), time.Now()
		return opened{}, l.err
	}
	if l.err != nil {
		l.log.Info("the remote is reachable again", "remote", l.where)
	}
	l.ready, l.err = &o, nil
	return o, nil
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

func (s lazyStore) store(ctx context.Context) (cas.Store, error) {
	o, err := s.l.get(ctx)
	if err != nil {
		return nil, err
	}
	if s.packs {
		return o.packs, nil
	}
	return o.files, nil
}

func (s lazyStore) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	st, err := s.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.Get(ctx, id)
}

func (s lazyStore) GetRange(ctx context.Context, id cas.ID, off, length int64) ([]byte, error) {
	st, err := s.store(ctx)
	if err != nil {
		return nil, err
	}
	return st.GetRange(ctx, id, off, length)
}

func (s lazyStore) Stat(ctx context.Context, id cas.ID) (int64, error) {
	st, err := s.store(ctx)
	if err != nil {
		return 0, err
	}
	return st.Stat(ctx, id)
}

func (s lazyStore) Put(ctx context.Context, id cas.ID, data []byte) error {
	st, err := s.store(ctx)
	if err != nil {
		return err
	}
	return st.Put(ctx, id, data)
}

func (s lazyStore) List(ctx context.Context, fn func(cas.ID, int64) error) error {
	st, err := s.store(ctx)
	if err != nil {
		return err
	}
	return st.List(ctx, fn)
}

func (s lazyStore) Delete(ctx context.Context, id cas.ID) error {
	st, err := s.store(ctx)
	if err != nil {
		return err
	}
	return st.Delete(ctx, id)
}

func (s lazyStore) CreateRef(ctx context.Context, name string, id cas.ID) error {
	st, err := s.store(ctx)
	if err != nil {
		return err
	}
	return st.CreateRef(ctx, name, id)
}

func (s lazyStore) GetRef(ctx context.Context, name string) (cas.ID, error) {
	st, err := s.store(ctx)
	if err != nil {
		return cas.ID{}, err
	}
	return st.GetRef(ctx, name)
}

func (s lazyStore) ListRefs(ctx context.Context, prefix string, fn func(string, cas.ID) error) error {
	st, err := s.store(ctx)
	if err != nil {
		return err
	}
	return st.ListRefs(ctx, prefix, fn)
}

func (s lazyStore) ListRefNames(ctx context.Context, prefix string, fn func(string) error) error {
	st, err := s.store(ctx)
	if err != nil {
		return err
	}
	return cas.ListRefNames(ctx, st, prefix, fn)
}

func (s lazyStore) DeleteRef(ctx context.Context, name string) error {
	st, err := s.store(ctx)
	if err != nil {
		return err
	}
	return st.DeleteRef(ctx, name)
}

// Prefetch passes a prefetch on to the pack store, if it is open.
func (s lazyStore) Prefetch(ctx context.Context, ids []cas.ID) error {
	st, err := s.store(ctx)
	if err != nil {
		return err
	}
	if p, ok := st.(interface {
		Prefetch(context.Context, []cas.ID) error
	}); ok {
		return p.Prefetch(ctx, ids)
	}
	return nil
}

// Close closes the remote if it was opened; the two views share it, so
// only the pack view closes.
func (s lazyStore) Close() error {
	if s.packs {
		return s.l.close()
	}
	return nil
}
