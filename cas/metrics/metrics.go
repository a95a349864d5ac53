package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlfs/mlfs/cas"
)

type op int

const (
	opGet op = iota
	opGetRange
	opStat
	opPut
	opList
	opDelete
	opCreateRef
	opGetRef
	opListRefs
	opDeleteRef
	numOps
)

var opNames = [numOps]string{"get", "get_range", "stat", "put", "list", "delete", "create_ref", "get_ref", "list_refs", "delete_ref"}

// Collectors are the metric vectors of one registry; see the package doc.
type Collectors struct {
	requests *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

// NewCollectors registers the store metrics with reg, or returns the ones
// registered there before. A nil reg registers nothing, for callers that
// want only Store.Counts.
func NewCollectors(reg prometheus.Registerer) (*Collectors, error) {
	c := &Collectors{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlfs_store_requests_total",
			Help: "Calls to the object store, by backend, operation and result (ok, not_found, exists, error).",
		}, []string{"backend", "op", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlfs_store_bytes_total",
			Help: "Bytes read from the object store by get and get_range, and passed to it by put.",
		}, []string{"backend", "op"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mlfs_store_request_seconds",
			Help: "Latency of calls to the object store.",
			// 1 ms to a minute: a HEAD on a LAN to a large pack over a slow link.
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 13),
		}, []string{"backend", "op"}),
	}
	if reg == nil {
		return c, nil
	}
	var err error
	if c.requests, err = register(reg, c.requests); err != nil {
		return nil, err
	}
	if c.bytes, err = register(reg, c.bytes); err != nil {
		return nil, err
	}
	if c.seconds, err = register(reg, c.seconds); err != nil {
		return nil, err
	}
	return c, nil
}

// register registers v with reg, or returns the equal collector that is
// registered already.
func register[V prometheus.Collector](reg prometheus.Registerer, v V) (V, error) {
	err := reg.Register(v)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if old, ok := are.ExistingCollector.(V); ok {
			return old, nil
		}
	}
	if err != nil {
		return v, fmt.Errorf("register store metrics: %w", err)
	}
	return v, nil
}

// Wrap returns inner with its calls counted under the backend label.
func (c *Collectors) Wrap(inner cas.Store, backend string) *Store {
	s := &Store{inner: inner}
	for i, name := range opNames {
		m := &s.ops[i]
		m.ok = c.requests.WithLabelValues(backend, name, "ok")
		m.notFound = c.requests.WithLabelValues(backend, name, "not_found")
		m.exists = c.requests.WithLabelValues(backend, name, "exists")
		m.failed = c.requests.WithLabelValues(backend, name, "error")
		m.bytes = c.bytes.WithLabelValues(backend, name)
		m.seconds = c.seconds.WithLabelValues(backend, name)
	}
	return s
}

// New wraps inner in the metrics of reg; see NewCollectors.
func New(inner cas.Store, reg prometheus.Registerer, backend string) (*Store, error) {
	c, err := NewCollectors(reg)
	if err != nil {
		return nil, err
	}
	return c.Wrap(inner, backend), nil
}

// Store counts the calls to the store it wraps.
type Store struct {
	inner cas.Store
	ops   [numOps]opMetrics
}

// opMetrics are one op's series, looked up once rather than per call.
type opMetrics struct {
	ok, notFound, exists, failed prometheus.Counter
	bytes                        prometheus.Counter
	seconds                      prometheus.Observer
	calls                        atomic.Int64
}

var _ cas.Store = (*Store)(nil)

// Counts returns the number of calls so far by op name, whatever their
// result; every op is present.
func (s *Store) Counts() map[string]int64 {
	m := make(map[string]int64, numOps)
	for i, name := range opNames {
		m[name] = s.ops[i].calls.Load()
	}
	return m
}

// start begins timing a call of o; the function it returns ends it.
func (s *Store) start(o op) func(n int, err error) {
	begin := time.Now()
	return func(n int, err error) {
		m := &s.ops[o]
		m.seconds.Observe(time.Since(begin).Seconds())
		m.calls.Add(1)
		switch {
		case err == nil:
			m.ok.Inc()
			if n > 0 {
				m.bytes.Add(float64(n))
			}
		case errors.Is(err, cas.ErrNotFound):
			m.notFound.Inc()
		case errors.Is(err, cas.ErrExists):
			m.exists.Inc()
		default:
			m.failed.Inc()
		}
	}
}

func (s *Store) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	done := s.start(opGet)
	b, err := s.inner.Get(ctx, id)
	done(len(b), err)
	return b, err
}

func (s *Store) GetRange(ctx context.Context, id cas.ID, off, length int64) ([]byte, error) {
	done := s.start(opGetRange)
	b, err := s.inner.GetRange(ctx, id, off, length)
	done(len(b), err)
	return b, err
}

func (s *Store) Stat(ctx context.Context, id cas.ID) (int64, error) {
	done := s.start(opStat)
	size, err := s.inner.Stat(ctx, id)
	done(0, err)
	return size, err
}

func (s *Store) Put(ctx context.Context, id cas.ID, data []byte) error {
	done := s.start(opPut)
	err := s.inner.Put(ctx, id, data)
	done(len(data), err)
	return err
}

func (s *Store) List(ctx context.Context, fn func(cas.ID, int64) error) error {
	done := s.start(opList)
	err := s.inner.List(ctx, fn)
	done(0, err)
	return err
}

func (s *Store) Delete(ctx context.Context, id cas.ID) error {
	done := s.start(opDelete)
	err := s.inner.Delete(ctx, id)
	done(0, err)
	return err
}

func (s *Store) CreateRef(ctx context.Context, name string, id cas.ID) error {
	done := s.start(opCreateRef)
	err := s.inner.CreateRef(ctx, name, id)
	done(0, err)
	return err
}

func (s *Store) GetRef(ctx context.Context, name string) (cas.ID, error) {
	done := s.start(opGetRef)
	id, err := s.inner.GetRef(ctx, name)
	done(0, err)
	return id, err
}

func (s *Store) ListRefs(ctx context.Context, prefix string, fn func(string, cas.ID) error) error {
	done := s.start(opListRefs)
	err := s.inner.ListRefs(ctx, prefix, fn)
	done(0, err)
	return err
}

// ListRefNames counts as a list_refs request.
func (s *Store) ListRefNames(ctx context.Context, prefix string, fn func(string) error) error {
	done := s.start(opListRefs)
	err := cas.ListRefNames(ctx, s.inner, prefix, fn)
	done(0, err)
	return err
}

func (s *Store) DeleteRef(ctx context.Context, name string) error {
	done := s.start(opDeleteRef)
	err := s.inner.DeleteRef(ctx, name)
	done(0, err)
	return err
}

func (s *Store) Close() error { return s.inner.Close() }
