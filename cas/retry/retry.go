package retry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/mlfs/mlfs/cas"
)

// ErrAttemptTimeout marks an attempt canceled because it ran past
// Options.AttemptTimeout.
var ErrAttemptTimeout = errors.New("attempt timed out")

// Defaults for the zero fields of Options.
const (
	DefaultMaxAttempts    = 6
	DefaultBaseDelay      = 100 * time.Millisecond
	DefaultMaxDelay       = 5 * time.Second
	DefaultAttemptTimeout = 60 * time.Second
)

// corruptRereads is how many extra reads a Get that fails verification
// gets; see the package doc.
const corruptRereads = 2

// Options tune the retrying. The zero value of every field but Transient
// picks a default.
type Options struct {
	// Transient reports whether an error of the inner store is worth
	// another attempt; use the backend's classifier, such as s3.Transient.
	// If nil, only timed-out attempts are retried.
	Transient func(error) bool
	// MaxAttempts is the most attempts a call makes, the first included.
	MaxAttempts int
	// BaseDelay and MaxDelay bound the backoff between attempts.
	BaseDelay, MaxDelay time.Duration
	// AttemptTimeout cancels an attempt that takes longer; the attempt
	// counts as transient. It must cover the largest object at the slowest
	// throughput worth waiting for: a 64 MiB pack at 2 MiB/s takes 32 s,
	// hence the default of a minute. Negative means no timeout.
	AttemptTimeout time.Duration
	// Log receives a warning for every failed attempt that is retried. Nil
	// logs nothing.
	Log *slog.Logger
	// Sleep waits d, or returns ctx's error if ctx ends first. Tests
	// replace it to run without waiting; nil uses a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Store retries the calls of the store it wraps.
type Store struct {
	inner cas.Store
	o     Options
}

var _ cas.Store = (*Store)(nil)

// New returns a Store that retries inner's transient failures.
func New(inner cas.Store, o Options) *Store {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = DefaultBaseDelay
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.AttemptTimeout == 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	return &Store{inner: inner, o: o}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// transient is the retry decision for an ordinary error. The sentinels are
// answers from the store, so no classifier can make them retried, not even
// when the answer came just as the attempt timed out.
func (s *Store) transient(err error) bool {
	if isAnswer(err) {
		return false
	}
	if errors.Is(err, ErrAttemptTimeout) {
		return true
	}
	return s.o.Transient != nil && s.o.Transient(err)
}

// rereadCorrupt is the retry decision of reads that verify what they get:
// they are also retried, a few times, on cas.ErrCorrupt.
func (s *Store) rereadCorrupt() func(error) bool {
	left := corruptRereads
	return func(err error) bool {
		if errors.Is(err, cas.ErrCorrupt) && left > 0 {
			left--
			return true
		}
		return s.transient(err)
	}
}

// backoff returns the delay after failed attempt n (from 1), with full
// jitter.
func (s *Store) backoff(n int) time.Duration {
	limit := s.o.MaxDelay
	if n-1 < 32 {
		limit = min(limit, s.o.BaseDelay<<(n-1))
	}
	if limit <= 0 { // overflowed
		limit = s.o.MaxDelay
	}
	return rand.N(limit + 1)
}

// attempt is one try. Its context ends with cause ErrAttemptTimeout when
// the timeout passes; a pausable attempt's clock stops during pause.
type attempt struct {
	ctx    context.Context
	cancel context.CancelFunc
	timer  *time.Timer // set for a pausable attempt with a timeout
	d      time.Duration
}

func (s *Store) start(ctx context.Context, pausable bool) *attempt {
	a := &attempt{d: s.o.AttemptTimeout}
	switch {
	case a.d <= 0:
		a.ctx, a.cancel = context.WithCancel(ctx)
	case pausable:
		var cancel context.CancelCauseFunc
		a.ctx, cancel = context.WithCancelCause(ctx)
		a.cancel = func() { cancel(nil) }
		a.timer = time.AfterFunc(a.d, func() { cancel(ErrAttemptTimeout) })
	default:
		// A real deadline, so that the inner store sees
		// context.DeadlineExceeded and says so.
		a.ctx, a.cancel = context.WithTimeoutCause(ctx, a.d, ErrAttemptTimeout)
	}
	return a
}

// pause stops the clock while f runs.
func (a *attempt) pause(f func() error) error {
	if a.timer == nil {
		return f()
	}
	a.timer.Stop()
	defer a.timer.Reset(a.d)
	return f()
}

// end releases the attempt and reports whether it timed out.
func (a *attempt) end() (timedOut bool) {
	if a.timer != nil {
		a.timer.Stop()
	}
	timedOut = errors.Is(context.Cause(a.ctx), ErrAttemptTimeout)
	a.cancel()
	return timedOut
}

// timeoutError is the error of a timed-out attempt. It wraps
// ErrAttemptTimeout and context.DeadlineExceeded but not the inner error,
// which is only the store's account of being cut off and may wrap
// context.Canceled: the caller, who canceled nothing, must not read it so.
type timeoutError struct {
	d   time.Duration
	err error
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("%v after %v: %v", ErrAttemptTimeout, e.d, e.err)
}

func (e *timeoutError) Unwrap() []error {
	return []error{ErrAttemptTimeout, context.DeadlineExceeded}
}

// isAnswer reports whether err is one of the sentinels: the store's answer
// to the request rather than a failure to make it.
func isAnswer(err error) bool {
	for _, answer := range []error{cas.ErrNotFound, cas.ErrExists, cas.ErrCorrupt, cas.ErrRange} {
		if errors.Is(err, answer) {
			return true
		}
	}
	return false
}

// do runs f until it succeeds, fails with an error retryable rejects, the
// attempts run out, or ctx ends.
func (s *Store) do(ctx context.Context, op string, retryable func(error) bool, f func(a *attempt) error) error {
	return s.doAttempts(ctx, op, false, retryable, f)
}

// doPausable is do with attempts whose clock f may pause.
func (s *Store) doPausable(ctx context.Context, op string, retryable func(error) bool, f func(a *attempt) error) error {
	return s.doAttempts(ctx, op, true, retryable, f)
}

// onceKey marks a context whose calls make one attempt (see Once).
type onceKey struct{}

// Once returns ctx for calls that make a single attempt, not retried: for
// a caller that knows the remote is failing fast (refusing or resetting
// connections) and wants to learn at once whether it still is.
func Once(ctx context.Context) context.Context { return context.WithValue(ctx, onceKey{}, true) }

func (s *Store) doAttempts(ctx context.Context, op string, pausable bool, retryable func(error) bool, f func(a *attempt) error) error {
	attempts := s.o.MaxAttempts
	if once, _ := ctx.Value(onceKey{}).(bool); once {
		attempts = 1
	}
	for n := 1; ; n++ {
		a := s.start(ctx, pausable)
		err := f(a)
		timedOut := a.end()
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			// The caller gave up; whatever the inner store made of that,
			// say so in a way errors.Is understands.
			if errors.Is(err, cerr) {
				return err
			}
			return fmt.Errorf("%w: %w", cerr, err)
		}
		if timedOut && !isAnswer(err) {
			err = &timeoutError{a.d, err}
		}
		if !retryable(err) {
			return err
		}
		if n >= attempts {
			return fmt.Errorf("gave up after %d attempts: %w", n, err)
		}
		d := s.backoff(n)
		s.o.Log.Warn("store request failed; retrying", "op", op, "attempt", n, "delay", d, "err", err)
		if serr := s.o.Sleep(ctx, d); serr != nil {
			return fmt.Errorf("%w while waiting to retry after %d attempts: %w", serr, n, err)
		}
	}
}

func (s *Store) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	var b []byte
	err := s.do(ctx, "get", s.rereadCorrupt(), func(a *attempt) (err error) {
		b, err = s.inner.Get(a.ctx, id)
		return err
	})
	return b, err
}

func (s *Store) GetRange(ctx context.Context, id cas.ID, off, length int64) ([]byte, error) {
	var b []byte
	err := s.do(ctx, "get range", s.transient, func(a *attempt) (err error) {
		b, err = s.inner.GetRange(a.ctx, id, off, length)
		return err
	})
	return b, err
}

func (s *Store) Stat(ctx context.Context, id cas.ID) (int64, error) {
	var size int64
	err := s.do(ctx, "stat", s.transient, func(a *attempt) (err error) {
		size, err = s.inner.Stat(a.ctx, id)
		return err
	})
	return size, err
}

// Put is safe to repeat: putting an id that exists is a no-op.
func (s *Store) Put(ctx context.Context, id cas.ID, data []byte) error {
	return s.do(ctx, "put", s.transient, func(a *attempt) error {
		return s.inner.Put(a.ctx, id, data)
	})
}

// List retries only until fn has been called; see the package doc.
func (s *Store) List(ctx context.Context, fn func(cas.ID, int64) error) error {
	called := false
	retryable := func(err error) bool { return !called && s.transient(err) }
	return s.doPausable(ctx, "list", retryable, func(a *attempt) error {
		return s.inner.List(a.ctx, func(id cas.ID, size int64) error {
			called = true
			return a.pause(func() error { return fn(id, size) })
		})
	})
}

func (s *Store) Delete(ctx context.Context, id cas.ID) error {
	return s.do(ctx, "delete", s.transient, func(a *attempt) error {
		return s.inner.Delete(a.ctx, id)
	})
}

// CreateRef turns an ErrExists that follows a failed attempt into success
// if the ref points at id; see the package doc.
func (s *Store) CreateRef(ctx context.Context, name string, id cas.ID) error {
	attempts := 0
	err := s.do(ctx, "create ref", s.transient, func(a *attempt) error {
		attempts++
		return s.inner.CreateRef(a.ctx, name, id)
	})
	if attempts == 1 || !errors.Is(err, cas.ErrExists) {
		return err
	}
	got, gerr := s.GetRef(ctx, name)
	if gerr != nil {
		// Neither won nor lost for sure: not ErrExists, which would say lost.
		return fmt.Errorf("create ref %s: exists after %d attempts, and reading it back to see whether one of them made it failed: %w", name, attempts, gerr)
	}
	if got == id {
		return nil
	}
	return err
}

func (s *Store) GetRef(ctx context.Context, name string) (cas.ID, error) {
	var id cas.ID
	err := s.do(ctx, "get ref", s.rereadCorrupt(), func(a *attempt) (err error) {
		id, err = s.inner.GetRef(a.ctx, name)
		return err
	})
	return id, err
}

// ListRefs retries only until fn has been called; see the package doc.
func (s *Store) ListRefs(ctx context.Context, prefix string, fn func(string, cas.ID) error) error {
	called := false
	retryable := func(err error) bool { return !called && s.transient(err) }
	return s.doPausable(ctx, "list refs", retryable, func(a *attempt) error {
		return s.inner.ListRefs(a.ctx, prefix, func(name string, id cas.ID) error {
			called = true
			return a.pause(func() error { return fn(name, id) })
		})
	})
}

// ListRefNames is retried like ListRefs.
func (s *Store) ListRefNames(ctx context.Context, prefix string, fn func(string) error) error {
	called := false
	retryable := func(err error) bool { return !called && s.transient(err) }
	return s.doPausable(ctx, "list ref names", retryable, func(a *attempt) error {
		return cas.ListRefNames(a.ctx, s.inner, prefix, func(name string) error {
			called = true
			return a.pause(func() error { return fn(name) })
		})
	})
}

func (s *Store) DeleteRef(ctx context.Context, name string) error {
	return s.do(ctx, "delete ref", s.transient, func(a *attempt) error {
		return s.inner.DeleteRef(a.ctx, name)
	})
}

func (s *Store) Close() error { return s.inner.Close() }
