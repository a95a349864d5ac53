package limit

import (
	"context"

	"github.com/mlfs/mlfs/cas"
)

// Store passes calls to the store it wraps, at most n at a time.
type Store struct {
	inner cas.Store
	slots chan struct{}
}

var _ cas.Store = (*Store)(nil)

// New returns a Store that lets at most n calls into inner at once; n
// below 1 counts as 1.
func New(inner cas.Store, n int) *Store {
	return &Store{inner: inner, slots: make(chan struct{}, max(n, 1))}
}

// acquire takes a slot, or returns ctx's error if ctx ends first.
func (s *Store) acquire(ctx context.Context) error {
	// A done context never gets a slot, even if one is free: select would
	// pick between the two at random.
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) release() { <-s.slots }

// with runs f in a slot.
func with[T any](ctx context.Context, s *Store, f func() (T, error)) (T, error) {
	if err := s.acquire(ctx); err != nil {
		var zero T
		return zero, err
	}
	defer s.release()
	return f()
}

func (s *Store) do(ctx context.Context, f func() error) error {
	_, err := with(ctx, s, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

func (s *Store) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	return with(ctx, s, func() ([]byte, error) { return s.inner.Get(ctx, id) })
}

func (s *Store) GetRange(ctx context.Context, id cas.ID, off, length int64) ([]byte, error) {
	return with(ctx, s, func() ([]byte, error) { return s.inner.GetRange(ctx, id, off, length) })
}

func (s *Store) Stat(ctx context.Context, id cas.ID) (int64, error) {
	return with(ctx, s, func() (int64, error) { return s.inner.Stat(ctx, id) })
}

func (s *Store) Put(ctx context.Context, id cas.ID, data []byte) error {
	return s.do(ctx, func() error { return s.inner.Put(ctx, id, data) })
}

// List holds its slot until it returns; see the package doc.
func (s *Store) List(ctx context.Context, fn func(cas.ID, int64) error) error {
	return s.do(ctx, func() error { return s.inner.List(ctx, fn) })
}

func (s *Store) Delete(ctx context.Context, id cas.ID) error {
	return s.do(ctx, func() error { return s.inner.Delete(ctx, id) })
}

func (s *Store) CreateRef(ctx context.Context, name string, id cas.ID) error {
	return s.do(ctx, func() error { return s.inner.CreateRef(ctx, name, id) })
}

func (s *Store) GetRef(ctx context.Context, name string) (cas.ID, error) {
	return with(ctx, s, func() (cas.ID, error) { return s.inner.GetRef(ctx, name) })
}

// ListRefs holds its slot until it returns; see the package doc.
func (s *Store) ListRefs(ctx context.Context, prefix string, fn func(string, cas.ID) error) error {
	return s.do(ctx, func() error { return s.inner.ListRefs(ctx, prefix, fn) })
}

func (s *Store) ListRefNames(ctx context.Context, prefix string, fn func(string) error) error {
	return s.do(ctx, func() error { return cas.ListRefNames(ctx, s.inner, prefix, fn) })
}

func (s *Store) DeleteRef(ctx context.Context, name string) error {
	return s.do(ctx, func() error { return s.inner.DeleteRef(ctx, name) })
}

// Close closes the inner store without waiting for a slot: calls still in
// flight fail as the inner store's Close makes them.
func (s *Store) Close() error { return s.inner.Close() }
