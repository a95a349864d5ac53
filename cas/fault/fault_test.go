package fault_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/castest"
	"github.com/mlfs/mlfs/cas/fault"
	"github.com/mlfs/mlfs/cas/mem"
)

// With an empty plan the store is its inner store.
func TestConformance(t *testing.T) {
	castest.Run(t, castest.Harness{
		New: func(t *testing.T) cas.Store { return fault.New(mem.New(), fault.Plan{}) },
		Corrupt: func(t *testing.T, s cas.Store, id cas.ID) {
			// Through the plan: every Get from now on is damaged.
			s.(*fault.Store).SetPlan(fault.Plan{Rules: []fault.Rule{{Ops: []fault.Op{fault.OpGet}, Prob: 1, Corrupt: true}}})
		},
	})
}

func stored(t *testing.T, n int) (*mem.Store, cas.ID, []byte) {
	t.Helper()
	m := mem.New()
	data := bytes.Repeat([]byte("0123456789"), n/10)
	id := cas.Sum(data)
	if err := m.Put(context.Background(), id, data); err != nil {
		t.Fatal(err)
	}
	return m, id, data
}

func TestNth(t *testing.T) {
	ctx := context.Background()
	m, id, _ := stored(t, 100)
	s := fault.New(m, fault.Plan{Rules: []fault.Rule{{Ops: []fault.Op{fault.OpStat}, Nth: 3, Err: fault.ErrInjected}}})
	for i := 1; i <= 5; i++ {
		_, err := s.Stat(ctx, id)
		if got, want := err != nil, i == 3; got != want {
			t.Fatalf("stat %d: %v", i, err)
		}
		if err != nil && !errors.Is(err, fault.ErrInjected) {
			t.Fatalf("stat %d: %v, want ErrInjected", i, err)
		}
		if _, err := s.Get(ctx, id); err != nil {
			t.Fatalf("get %d, an op the rule does not choose: %v", i, err)
		}
	}
	if st := s.Stats(); st.Calls != 10 || st.Errors != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A seeded fraction fires about as often as asked, the same calls on every
// run, and no more often than Limit.
func TestProbabilitySeedLimit(t *testing.T) {
	ctx := context.Background()
	m, id, _ := stored(t, 100)
	pattern := func(seed uint64, limit int) (fails []bool, n int) {
		s := fault.New(m, fault.Plan{Seed: seed, Rules: []fault.Rule{{Prob: 0.3, Limit: limit, Err: fault.ErrInjected}}})
		for range 1000 {
			_, err := s.Stat(ctx, id)
			fails = append(fails, err != nil)
			if err != nil {
				n++
			}
		}
		if st := s.Stats(); st.Errors != int64(n) {
			t.Fatalf("stats count %d errors, saw %d", st.Errors, n)
		}
		return fails, n
	}
	a, n := pattern(7, 0)
	if n < 240 || n > 360 {
		t.Fatalf("%d of 1000 calls failed, want about 300", n)
	}
	b, _ := pattern(7, 0)
	c, _ := pattern(8, 0)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave different faults")
	}
	if slices.Equal(a, c) {
		t.Fatal("different seeds gave the same faults")
	}
	if _, n := pattern(7, 5); n != 5 {
		t.Fatalf("limit 5: %d faults", n)
	}
}

// A lost answer: the inner store did the work, the caller hears an error.
func TestLost(t *testing.T) {
	ctx := context.Background()
	m, id, _ := stored(t, 100)
	s := fault.New(m, fault.Plan{Rules: []fault.Rule{{Ops: []fault.Op{fault.OpCreateRef}, Nth: 1, Err: fault.ErrInjected, Lost: true}}})
	if err := s.CreateRef(ctx, "a/v1", id); !errors.Is(err, fault.ErrInjected) {
		t.Fatalf("CreateRef: %v", err)
	}
	if got, err := m.GetRef(ctx, "a/v1"); err != nil || got != id {
		t.Fatalf("the lost CreateRef did not reach the inner store: %v", err)
	}
	if err := s.CreateRef(ctx, "a/v1", id); !errors.Is(err, cas.ErrExists) {
		t.Fatalf("second CreateRef: %v", err)
	}
}

func TestDamage(t *testing.T) {
	ctx := context.Background()
	m, id, data := stored(t, 1000)
	s := fault.New(m, fault.Plan{Rules: []fault.Rule{
		{Ops: []fault.Op{fault.OpGet, fault.OpGetRange}, Nth: 1, Corrupt: true},
		{Ops: []fault.Op{fault.OpGet, fault.OpGetRange}, Nth: 2, Truncate: true},
	}})
	for i := range 3 {
		_, err := s.Get(ctx, id)
		if got, want := errors.Is(err, cas.ErrCorrupt), i < 2; got != want {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	s.SetPlan(fault.Plan{Rules: []fault.Rule{
		{Ops: []fault.Op{fault.OpGetRange}, Nth: 1, Corrupt: true},
		{Ops: []fault.Op{fault.OpGetRange}, Nth: 2, Truncate: true},
	}})
	b, err := s.GetRange(ctx, id, 100, 200)
	if err != nil || len(b) != 200 || bytes.Equal(b, data[100:300]) {
		t.Fatalf("corrupted range: %d bytes, %v", len(b), err)
	}
	diff := 0
	for i := range b {
		if b[i] != data[100+i] {
			diff++
		}
	}
	if diff != 1 {
		t.Fatalf("%d bytes differ, want 1", diff)
	}
	if b, err := s.GetRange(ctx, id, 100, 200); err != nil || !bytes.Equal(b, data[100:200]) {
		t.Fatalf("truncated range: %d bytes, %v", len(b), err)
	}
	if b, err := s.GetRange(ctx, id, 100, 200); err != nil || !bytes.Equal(b, data[100:300]) {
		t.Fatalf("third range: %d bytes, %v", len(b), err)
	}
	if st := s.Stats(); st.Corruptions != 2 || st.Truncations != 2 {
		t.Fatalf("stats %+v", st)
	}
	if got, err := m.Get(ctx, id); err != nil || !bytes.Equal(got, data) {
		t.Fatal("damage reached the inner store")
	}
}

func TestLatency(t *testing.T) {
	m, id, _ := stored(t, 100)
	s := fault.New(m, fault.Plan{Rules: []fault.Rule{{Prob: 1, Latency: 50 * time.Millisecond}}})
	start := time.Now()
	if _, err := s.Stat(context.Background(), id); err != nil || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("stat took %v: %v", time.Since(start), err)
	}
	s.SetPlan(fault.Plan{Rules: []fault.Rule{{Prob: 1, Latency: time.Hour}}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Stat(ctx, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("delayed stat with a short deadline: %v", err)
	}
	if st := s.Stats(); st.Delays != 2 {
		t.Fatalf("stats %+v", st)
	}
}
