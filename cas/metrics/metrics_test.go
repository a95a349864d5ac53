package metrics_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/castest"
	"github.com/mlfs/mlfs/cas/mem"
	"github.com/mlfs/mlfs/cas/metrics"
)

func TestConformance(t *testing.T) {
	var inner sync.Map // *metrics.Store -> *mem.Store
	castest.Run(t, castest.Harness{
		New: func(t *testing.T) cas.Store {
			m := mem.New()
			s, err := metrics.New(m, prometheus.NewRegistry(), "mem")
			if err != nil {
				t.Fatal(err)
			}
			inner.Store(s, m)
			return s
		},
		Corrupt: func(t *testing.T, s cas.Store, id cas.ID) {
			m, _ := inner.Load(s)
			m.(*mem.Store).Tamper(id, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
		},
	})
}

// value finds the value of the series of name with the given labels in
// what reg gathers: a counter's value or a histogram's sample count.
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			return metricValue(m)
		}
	}
	return 0
}

func metricValue(m *dto.Metric) float64 {
	if h := m.GetHistogram(); h != nil {
		return float64(h.GetSampleCount())
	}
	return m.GetCounter().GetValue()
}

func TestCountsByOpAndResult(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	s, err := metrics.New(mem.New(), reg, "mem")
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("0123456789")
	id := cas.Sum(data)
	s.Put(ctx, id, data)
	s.Get(ctx, id)
	s.Get(ctx, cas.Sum([]byte("absent")))
	s.GetRange(ctx, id, 2, 3)
	s.GetRange(ctx, id, 20, 3) // ErrRange: an error
	s.CreateRef(ctx, "a/v1", id)
	s.CreateRef(ctx, "a/v1", id)
	stop := errors.New("stop")
	s.List(ctx, func(cas.ID, int64) error { return stop })

	req := func(op, result string) float64 {
		return value(t, reg, "mlfs_store_requests_total", map[string]string{"backend": "mem", "op": op, "result": result})
	}
	for _, c := range []struct {
		op, result string
		want       float64
	}{
		{"put", "ok", 1}, {"get", "ok", 1}, {"get", "not_found", 1},
		{"get_range", "ok", 1}, {"get_range", "error", 1},
		{"create_ref", "ok", 1}, {"create_ref", "exists", 1},
		{"list", "error", 1}, {"stat", "ok", 0},
	} {
		if got := req(c.op, c.result); got != c.want {
			t.Errorf("%s %s: %v, want %v", c.op, c.result, got, c.want)
		}
	}
	bytesOf := func(op string) float64 {
		return value(t, reg, "mlfs_store_bytes_total", map[string]string{"backend": "mem", "op": op})
	}
	if bytesOf("put") != 10 || bytesOf("get") != 10 || bytesOf("get_range") != 3 {
		t.Errorf("bytes: put %v, get %v, get_range %v", bytesOf("put"), bytesOf("get"), bytesOf("get_range"))
	}
	if n := value(t, reg, "mlfs_store_request_seconds", map[string]string{"backend": "mem", "op": "get"}); n != 2 {
		t.Errorf("%v get latencies observed, want 2", n)
	}
	counts := s.Counts()
	if counts["get"] != 2 || counts["get_range"] != 2 || counts["create_ref"] != 2 || counts["put"] != 1 || counts["stat"] != 0 {
		t.Errorf("Counts() = %v", counts)
	}
	if len(counts) != 10 {
		t.Errorf("Counts() has %d ops, want 10", len(counts))
	}
}

// Two stores on one registry, by both routes, keep their own series.
func TestTwoBackendsOneRegistry(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	c, err := metrics.NewCollectors(reg)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Wrap(mem.New(), "a")
	b, err := metrics.New(mem.New(), reg, "b")
	if err != nil {
		t.Fatalf("second store on the registry: %v", err)
	}
	id := cas.Sum([]byte("x"))
	a.Stat(ctx, id)
	b.Stat(ctx, id)
	b.Stat(ctx, id)
	for backend, want := range map[string]float64{"a": 1, "b": 2} {
		got := value(t, reg, "mlfs_store_requests_total", map[string]string{"backend": backend, "op": "stat", "result": "not_found"})
		if got != want {
			t.Errorf("backend %s: %v stats, want %v", backend, got, want)
		}
	}
	if a.Counts()["stat"] != 1 || b.Counts()["stat"] != 2 {
		t.Errorf("counts: a %v, b %v", a.Counts(), b.Counts())
	}

	// A different metric under one of the names is a conflict, reported.
	other := prometheus.NewRegistry()
	other.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "mlfs_store_bytes_total", Help: "something else"}))
	if _, err := metrics.NewCollectors(other); err == nil {
		t.Error("registering over a different metric of the same name succeeded")
	}
}

// Without a registry only Counts count.
func TestNilRegistry(t *testing.T) {
	s, err := metrics.New(mem.New(), nil, "mem")
	if err != nil {
		t.Fatal(err)
	}
	s.Stat(context.Background(), cas.ID{})
	if s.Counts()["stat"] != 1 {
		t.Fatalf("Counts() = %v", s.Counts())
	}
}
