// Package mem is an in-memory cas.Store, for tests and for callers that
// want a store with no disk at all. It keeps every object for its lifetime.
package mem

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/mlfs/mlfs/cas"
)

// Store keeps objects and refs in maps.
type Store struct {
	mu   sync.RWMutex
	objs map[cas.ID][]byte
	refs map[string]cas.ID
}

var _ cas.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{objs: map[cas.ID][]byte{}, refs: map[string]cas.ID{}}
}

func (s *Store) get(ctx context.Context, id cas.ID) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	b, ok := s.objs[id]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("object %s: %w", id, cas.ErrNotFound)
	}
	return b, nil
}

func (s *Store) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	b, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := id.Verify(b); err != nil {
		return nil, err
	}
	return bytes.Clone(b), nil
}

func (s *Store) GetRange(ctx context.Context, id cas.ID, off, length int64) ([]byte, error) {
	b, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	lo, hi, err := cas.ClampRange(id, int64(len(b)), off, length)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(b[lo:hi]), nil
}

func (s *Store) Stat(ctx context.Context, id cas.ID) (int64, error) {
	b, err := s.get(ctx, id)
	return int64(len(b)), err
}

func (s *Store) Put(ctx context.Context, id cas.ID, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objs[id]; !ok {
		s.objs[id] = bytes.Clone(data)
	}
	return nil
}

func (s *Store) List(ctx context.Context, fn func(cas.ID, int64) error) error {
	s.mu.RLock()
	ids := make(map[cas.ID]int64, len(s.objs))
	for id, b := range s.objs {
		ids[id] = int64(len(b))
	}
	s.mu.RUnlock()
	for id, size := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(id, size); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) Delete(ctx context.Context, id cas.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.objs, id)
	s.mu.Unlock()
	return nil
}

func (s *Store) CreateRef(ctx context.Context, name string, id cas.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := cas.CheckRefName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.refs[name]; ok {
		return fmt.Errorf("ref %s: %w", name, cas.ErrExists)
	}
	s.refs[name] = id
	return nil
}

func (s *Store) GetRef(ctx context.Context, name string) (cas.ID, error) {
	if err := ctx.Err(); err != nil {
		return cas.ID{}, err
	}
	s.mu.RLock()
	id, ok := s.refs[name]
	s.mu.RUnlock()
	if !ok {
		return id, fmt.Errorf("ref %s: %w", name, cas.ErrNotFound)
	}
	return id, nil
}

func (s *Store) ListRefs(ctx context.Context, prefix string, fn func(string, cas.ID) error) error {
	s.mu.RLock()
	var names []string
	for n := range s.refs {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	refs := make(map[string]cas.ID, len(names))
	for _, n := range names {
		refs[n] = s.refs[n]
	}
	s.mu.RUnlock()
	sort.Strings(names)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(n, refs[n]); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) DeleteRef(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.refs, name)
	s.mu.Unlock()
	return nil
}

func (s *Store) Close() error { return nil }

// Tamper lets a test change the stored bytes of an object behind the
// store's back, to prove that corruption is detected.
func (s *Store) Tamper(id cas.ID, f func([]byte) []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[id] = f(bytes.Clone(s.objs[id]))
}
