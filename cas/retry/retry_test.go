package retry_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/castest"
	"github.com/mlfs/mlfs/cas/fault"
	"github.com/mlfs/mlfs/cas/mem"
	"github.com/mlfs/mlfs/cas/retry"
)

func injected(err error) bool { return errors.Is(err, fault.ErrInjected) }

func noSleep(context.Context, time.Duration) error { return nil }

func TestConformance(t *testing.T) {
	var inner sync.Map // *retry.Store -> *mem.Store
	castest.Run(t, castest.Harness{
		New: func(t *testing.T) cas.Store {
			// Everything counts as transient, to show that the sentinels
			// are not retried whatever the classifier says.
			m := mem.New()
			s := retry.New(m, retry.Options{Transient: func(error) bool { return true }, Sleep: noSleep})
			inner.Store(s, m)
			return s
		},
		Corrupt: func(t *testing.T, s cas.Store, id cas.ID) {
			m, _ := inner.Load(s)
			m.(*mem.Store).Tamper(id, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
		},
	})
}

// setup returns a store with one object, a fault store in front of it, and
// a retry store in front of that.
func setup(t *testing.T, o retry.Options, rules ...fault.Rule) (*mem.Store, *fault.Store, *retry.Store, cas.ID, []byte) {
	t.Helper()
	m := mem.New()
	data := bytes.Repeat([]byte("retry me "), 100)
	id := cas.Sum(data)
	if err := m.Put(context.Background(), id, data); err != nil {
		t.Fatal(err)
	}
	f := fault.New(m, fault.Plan{Seed: 1, Rules: rules})
	if o.Transient == nil {
		o.Transient = injected
	}
	if o.Sleep == nil {
		o.Sleep = noSleep
	}
	return m, f, retry.New(f, o), id, data
}

func TestTransientIsRetried(t *testing.T) {
	ctx := context.Background()
	var logged bytes.Buffer
	_, f, s, id, data := setup(t, retry.Options{Log: slog.New(slog.NewTextHandler(&logged, nil))},
		fault.Rule{Nth: 1, Err: fault.ErrInjected}, fault.Rule{Nth: 2, Err: fault.ErrInjected})
	got, err := s.Get(ctx, id)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %v", err)
	}
	if st := f.Stats(); st.Calls != 3 || st.Errors != 2 {
		t.Fatalf("stats %+v, want 3 calls and 2 faults", st)
	}
	if n := strings.Count(logged.String(), "retrying"); n != 2 {
		t.Fatalf("%d retries logged, want 2:\n%s", n, logged.String())
	}
}

func TestPermanentIsNotRetried(t *testing.T) {
	ctx := context.Background()
	other := errors.New("permission denied")
	_, f, s, id, _ := setup(t, retry.Options{}, fault.Rule{Prob: 1, Err: other})
	if _, err := s.Stat(ctx, id); !errors.Is(err, other) || strings.Contains(err.Error(), "attempts") {
		t.Fatalf("stat: %v", err)
	}
	if st := f.Stats(); st.Calls != 1 {
		t.Fatalf("%d calls for a permanent error", st.Calls)
	}

	// Not even a classifier that calls everything transient gets a
	// not-found retried.
	_, f, s, _, _ = setup(t, retry.Options{Transient: func(error) bool { return true }})
	if _, err := s.Get(ctx, cas.Sum([]byte("absent"))); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("get: %v", err)
	}
	if st := f.Stats(); st.Calls != 1 {
		t.Fatalf("%d calls, want 1", st.Calls)
	}
}

func TestGivesUp(t *testing.T) {
	_, f, s, id, _ := setup(t, retry.Options{MaxAttempts: 4}, fault.Rule{Prob: 1, Err: fault.ErrInjected})
	err := s.Put(context.Background(), id, []byte("x"))
	if !errors.Is(err, fault.ErrInjected) || !strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Fatalf("put: %v", err)
	}
	if st := f.Stats(); st.Calls != 4 {
		t.Fatalf("%d calls, want 4", st.Calls)
	}
}

// Delays grow exponentially up to MaxDelay, with full jitter below.
func TestBackoff(t *testing.T) {
	var mu sync.Mutex
	var delays [][]time.Duration
	const base, maxDelay = 10 * time.Millisecond, 100 * time.Millisecond
	for range 200 {
		var ds []time.Duration
		_, _, s, id, _ := setup(t, retry.Options{
			MaxAttempts: 8, BaseDelay: base, MaxDelay: maxDelay,
			Sleep: func(_ context.Context, d time.Duration) error {
				mu.Lock()
				ds = append(ds, d)
				mu.Unlock()
				return nil
			},
		}, fault.Rule{Prob: 1, Err: fault.ErrInjected})
		s.Stat(context.Background(), id)
		if len(ds) != 7 {
			t.Fatalf("%d sleeps for 8 attempts", len(ds))
		}
		delays = append(delays, ds)
	}
	for n := range 7 {
		limit := min(maxDelay, base<<n)
		var largest time.Duration
		for _, ds := range delays {
			if ds[n] < 0 || ds[n] > limit {
				t.Fatalf("delay %d is %v, outside [0, %v]", n+1, ds[n], limit)
			}
			largest = max(largest, ds[n])
		}
		if largest < limit*3/4 {
			t.Errorf("delay %d: largest of 200 is %v, limit %v: not jittered over the whole range", n+1, largest, limit)
		}
	}
}

// A CreateRef whose first attempt succeeded but lost its answer succeeds.
func TestCreateRefLostAnswer(t *testing.T) {
	ctx := context.Background()
	lost := fault.Rule{Ops: []fault.Op{fault.OpCreateRef}, Nth: 1, Err: fault.ErrInjected, Lost: true}
	m, f, s, id, _ := setup(t, retry.Options{}, lost)
	if err := s.CreateRef(ctx, "iris/v1", id); err != nil {
		t.Fatalf("CreateRef: %v", err)
	}
	if got, err := m.GetRef(ctx, "iris/v1"); err != nil || got != id {
		t.Fatalf("ref: %v", err)
	}
	if st := f.Stats(); st.Errors != 1 {
		t.Fatalf("stats %+v", st)
	}

	// Someone else's ref is still a lost race, retried or not.
	m, _, s, id, _ = setup(t, retry.Options{}, fault.Rule{Ops: []fault.Op{fault.OpCreateRef}, Nth: 1, Err: fault.ErrInjected})
	other := cas.Sum([]byte("other"))
	if err := m.CreateRef(ctx, "iris/v1", other); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRef(ctx, "iris/v1", id); !errors.Is(err, cas.ErrExists) {
		t.Fatalf("CreateRef over another id: %v, want ErrExists", err)
	}

	// When the ref cannot be read back, the outcome is unknown: an error,
	// but not ErrExists.
	_, _, s, id, _ = setup(t, retry.Options{MaxAttempts: 2}, lost,
		fault.Rule{Ops: []fault.Op{fault.OpGetRef}, Prob: 1, Err: fault.ErrInjected})
	if err := s.CreateRef(ctx, "iris/v1", id); err == nil || errors.Is(err, cas.ErrExists) {
		t.Fatalf("CreateRef with an unreadable ref: %v", err)
	}
}

func TestCorruptGetIsReadAgain(t *testing.T) {
	ctx := context.Background()
	m, f, s, id, data := setup(t, retry.Options{}, fault.Rule{Ops: []fault.Op{fault.OpGet}, Nth: 1, Corrupt: true})
	if got, err := s.Get(ctx, id); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get after a garbled read: %v", err)
	}
	if st := f.Stats(); st.Calls != 2 || st.Corruptions != 1 {
		t.Fatalf("stats %+v", st)
	}

	// Corruption at rest is reported after a few reads, not retried away.
	m.Tamper(id, func(b []byte) []byte { b[0] ^= 1; return b })
	if _, err := s.Get(ctx, id); !errors.Is(err, cas.ErrCorrupt) {
		t.Fatalf("get of a corrupt object: %v", err)
	}
	if st := f.Stats(); st.Calls != 2+3 {
		t.Fatalf("%d reads of a corrupt object, want 3", st.Calls-2)
	}
}

func TestAttemptTimeout(t *testing.T) {
	ctx := context.Background()
	stall := fault.Rule{Nth: 1, Latency: time.Hour}
	_, f, s, id, _ := setup(t, retry.Options{AttemptTimeout: 20 * time.Millisecond, Transient: func(error) bool { return false }}, stall)
	start := time.Now()
	if _, err := s.Stat(ctx, id); err != nil {
		t.Fatalf("stat after a stalled attempt: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stalled attempt cut after %v", d)
	}
	if st := f.Stats(); st.Calls != 2 {
		t.Fatalf("%d calls", st.Calls)
	}

	_, _, s, id, _ = setup(t, retry.Options{AttemptTimeout: 10 * time.Millisecond, MaxAttempts: 3}, fault.Rule{Prob: 1, Latency: time.Hour})
	_, err := s.Get(ctx, id)
	if !errors.Is(err, retry.ErrAttemptTimeout) || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Fatalf("get with every attempt stalled: %v", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatalf("timed-out attempts look like a canceled caller: %v", err)
	}
}

// The caller's context ends the call at once, in an attempt or in the
// backoff between attempts.
func TestCallerCancel(t *testing.T) {
	for _, c := range []struct {
		name string
		rule fault.Rule
	}{
		{"in an attempt", fault.Rule{Prob: 1, Latency: time.Hour}},
		{"in backoff", fault.Rule{Prob: 1, Err: fault.ErrInjected}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The real Sleep, with an hour's backoff.
			s := retry.New(fault.New(mem.New(), fault.Plan{Rules: []fault.Rule{c.rule}}),
				retry.Options{Transient: injected, BaseDelay: time.Hour, MaxDelay: time.Hour})
			id := cas.Sum([]byte("x"))
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			start := time.Now()
			_, err := s.Stat(ctx, id)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("stat: %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("cancel took %v to end the call", d)
			}
		})
	}
}

func TestListRetriedOnlyBeforeCallback(t *testing.T) {
	ctx := context.Background()
	_, f, s, id, _ := setup(t, retry.Options{}, fault.Rule{Ops: []fault.Op{fault.OpList}, Nth: 1, Err: fault.ErrInjected})
	n := 0
	if err := s.List(ctx, func(got cas.ID, _ int64) error {
		if got != id {
			t.Errorf("listed %s", got)
		}
		n++
		return nil
	}); err != nil || n != 1 {
		t.Fatalf("list failed before the callback: %v, %d entries", err, n)
	}
	if st := f.Stats(); st.Calls != 2 {
		t.Fatalf("%d calls", st.Calls)
	}

	// Failing after the entries went by: retrying would list them twice.
	_, f, s, _, _ = setup(t, retry.Options{}, fault.Rule{Ops: []fault.Op{fault.OpList, fault.OpListRefs}, Prob: 1, Err: fault.ErrInjected, Lost: true})
	n = 0
	if err := s.List(ctx, func(cas.ID, int64) error { n++; return nil }); !errors.Is(err, fault.ErrInjected) || n != 1 {
		t.Fatalf("list failed after the callback: %v, %d entries", err, n)
	}
	if err := f.CreateRef(ctx, "a/v1", id); err != nil {
		t.Fatal(err)
	}
	n = 0
	if err := s.ListRefs(ctx, "", func(string, cas.ID) error { n++; return nil }); !errors.Is(err, fault.ErrInjected) || n != 1 {
		t.Fatalf("list refs failed after the callback: %v, %d entries", err, n)
	}
	if st := f.Stats(); st.Calls != 3 {
		t.Fatalf("%d calls, want 3", st.Calls)
	}
}

// A slow callback does not count against the attempt's timeout.
func TestListCallbackTimeNotCounted(t *testing.T) {
	m := mem.New()
	for i := range 3 {
		data := []byte{byte(i)}
		m.Put(context.Background(), cas.Sum(data), data)
	}
	s := retry.New(m, retry.Options{AttemptTimeout: 20 * time.Millisecond, Sleep: noSleep})
	n := 0
	err := s.List(context.Background(), func(cas.ID, int64) error {
		time.Sleep(30 * time.Millisecond)
		n++
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("list with a slow callback: %v, %d entries", err, n)
	}
}
