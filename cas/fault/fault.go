package fault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/mlfs/mlfs/cas"
)

// Op names a cas.Store method.
type Op string

// The ops a Rule can choose.
const (
	OpGet       Op = "get"
	OpGetRange  Op = "get_range"
	OpStat      Op = "stat"
	OpPut       Op = "put"
	OpList      Op = "list"
	OpDelete    Op = "delete"
	OpCreateRef Op = "create_ref"
	OpGetRef    Op = "get_ref"
	OpListRefs  Op = "list_refs"
	OpDeleteRef Op = "delete_ref"
)

// ErrInjected is a convenient Rule.Err for tests that need no particular
// error.
var ErrInjected = errors.New("injected fault")

// Rule says which calls a fault hits and what it does to them.
type Rule struct {
	// Ops are the methods the rule applies to; empty means all.
	Ops []Op
	// Nth, if positive, makes the rule fire on the Nth matching call only,
	// counting from 1. Otherwise it fires on a fraction Prob of them.
	Nth  int
	Prob float64
	// Limit, if positive, is the most times the rule fires.
	Limit int

	// Latency delays the call; a context that ends meanwhile ends the
	// call with its error.
	Latency time.Duration
	// Err fails the call with an error wrapping Err, without calling the
	// inner store, or after calling it if Lost is set: the request was
	// carried out but its answer never arrived.
	Err  error
	Lost bool
	// Corrupt flips one byte, and Truncate drops the second half, of what
	// Get or GetRange returns; see the package doc.
	Corrupt  bool
	Truncate bool
}

// Plan is the rules a Store follows. Every rule that fires on a call adds
// its latency; the first of them with an effect (Err, Corrupt or Truncate)
// decides the outcome.
type Plan struct {
	Seed  uint64
	Rules []Rule
}

// Stats count what a Store injected.
type Stats struct {
	Calls       int64 // calls made to the Store
	Errors      int64 // calls failed with a Rule's Err
	Delays      int64 // calls delayed
	Corruptions int64 // results with a flipped byte
	Truncations int64 // results cut short
}

// Store is a cas.Store that injects the faults of a Plan into the calls it
// passes to the store it wraps.
type Store struct {
	inner cas.Store

	mu    sync.Mutex
	rules []rule
	rng   *rand.Rand
	stats Stats
}

type rule struct {
	Rule
	seen, fired int
}

var _ cas.Store = (*Store)(nil)

// New returns a Store that follows p in front of inner.
func New(inner cas.Store, p Plan) *Store {
	s := &Store{inner: inner}
	s.SetPlan(p)
	return s
}

// SetPlan replaces the plan, restarting the rules' counts and the
// generator; Stats keep counting. The empty Plan turns faults off.
func (s *Store) SetPlan(p Plan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = make([]rule, len(p.Rules))
	for i, r := range p.Rules {
		s.rules[i] = rule{Rule: r}
	}
	s.rng = rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))
}

// Stats returns what has been injected so far.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// outcome is what the plan does to one call.
type outcome struct {
	latency  time.Duration
	err      error
	lost     bool
	corrupt  bool
	truncate bool
	flip     int // which byte Corrupt flips, as a fraction of the length in 1/2^16
}

func (s *Store) decide(op Op) outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Calls++
	var o outcome
	decided := false
	for i := range s.rules {
		r := &s.rules[i]
		if len(r.Ops) > 0 && !slices.Contains(r.Ops, op) {
			continue
		}
		r.seen++
		var fire bool
		if r.Nth > 0 {
			fire = r.seen == r.Nth
		} else {
			fire = s.rng.Float64() < r.Prob
		}
		if !fire || (r.Limit > 0 && r.fired >= r.Limit) {
			continue
		}
		r.fired++
		o.latency += r.Latency
		if !decided && (r.Err != nil || r.Corrupt || r.Truncate) {
			decided = true
			o.err, o.lost, o.corrupt, o.truncate = r.Err, r.Lost, r.Corrupt, r.Truncate
		}
	}
	if o.latency > 0 {
		s.stats.Delays++
	}
	if o.err != nil {
		s.stats.Errors++
		o.err = fmt.Errorf("fault injected into %s: %w", op, o.err)
	}
	if o.corrupt {
		o.flip = s.rng.IntN(1 << 16)
	}
	return o
}

// damage applies Corrupt or Truncate to a result, and counts it.
func (s *Store) damage(o outcome, b []byte) []byte {
	if len(b) == 0 || !(o.corrupt || o.truncate) {
		return b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.corrupt {
		s.stats.Corruptions++
		b[len(b)*o.flip>>16] ^= 0x55
		return b
	}
	s.stats.Truncations++
	return b[:len(b)/2]
}

// run makes one call through the plan: the latency, then the error or the
// inner call f, or both when the answer is lost.
func run[T any](ctx context.Context, s *Store, op Op, f func() (T, error)) (T, outcome, error) {
	var zero T
	o := s.decide(op)
	if o.latency > 0 {
		t := time.NewTimer(o.latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, o, ctx.Err()
		case <-t.C:
		}
	}
	if o.err != nil && !o.lost {
		return zero, o, o.err
	}
	v, err := f()
	if o.err != nil {
		return zero, o, o.err
	}
	return v, o, err
}

func (s *Store) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	b, o, err := run(ctx, s, OpGet, func() ([]byte, error) { return s.inner.Get(ctx, id) })
	if err != nil {
		return nil, err
	}
	if len(b) > 0 && (o.corrupt || o.truncate) {
		// Verify as a backend would, which turns the damage into ErrCorrupt.
		if err := id.Verify(s.damage(o, b)); err != nil {
			return nil, fmt.Errorf("fault injected into get: %w", err)
		}
	}
	return b, nil
}

func (s *Store) GetRange(ctx context.Context, id cas.ID, off, length int64) ([]byte, error) {
	b, o, err := run(ctx, s, OpGetRange, func() ([]byte, error) { return s.inner.GetRange(ctx, id, off, length) })
	if err != nil {
		return nil, err
	}
	return s.damage(o, b), nil
}

func (s *Store) Stat(ctx context.Context, id cas.ID) (int64, error) {
	size, _, err := run(ctx, s, OpStat, func() (int64, error) { return s.inner.Stat(ctx, id) })
	return size, err
}

type none struct{}

// wrap0 adapts a method that returns only an error to run.
func wrap0(f func() error) func() (none, error) {
	return func() (none, error) { return none{}, f() }
}

func (s *Store) Put(ctx context.Context, id cas.ID, data []byte) error {
	_, _, err := run(ctx, s, OpPut, wrap0(func() error { return s.inner.Put(ctx, id, data) }))
	return err
}

func (s *Store) List(ctx context.Context, fn func(cas.ID, int64) error) error {
	_, _, err := run(ctx, s, OpList, wrap0(func() error { return s.inner.List(ctx, fn) }))
	return err
}

func (s *Store) Delete(ctx context.Context, id cas.ID) error {
	_, _, err := run(ctx, s, OpDelete, wrap0(func() error { return s.inner.Delete(ctx, id) }))
	return err
}

func (s *Store) CreateRef(ctx context.Context, name string, id cas.ID) error {
	_, _, err := run(ctx, s, OpCreateRef, wrap0(func() error { return s.inner.CreateRef(ctx, name, id) }))
	return err
}

func (s *Store) GetRef(ctx context.Context, name string) (cas.ID, error) {
	id, _, err := run(ctx, s, OpGetRef, func() (cas.ID, error) { return s.inner.GetRef(ctx, name) })
	return id, err
}

func (s *Store) ListRefs(ctx context.Context, prefix string, fn func(string, cas.ID) error) error {
	_, _, err := run(ctx, s, OpListRefs, wrap0(func() error { return s.inner.ListRefs(ctx, prefix, fn) }))
	return err
}

func (s *Store) DeleteRef(ctx context.Context, name string) error {
	_, _, err := run(ctx, s, OpDeleteRef, wrap0(func() error { return s.inner.DeleteRef(ctx, name) }))
	return err
}

func (s *Store) Close() error { return s.inner.Close() }
