package parse

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// event is a point emitted or an error reported.
type event struct {
	pt  Point
	err Error
	bad bool // err, not pt
}

func (e event) String() string {
	if e.bad {
		return "! " + e.err.Error()
	}
	return fmt.Sprintf("%s@%d=%s t%d", e.pt.Key, e.pt.Step, fmtFloat(e.pt.Value), e.pt.Time)
}

// same compares events, NaN values included.
func same(a, b event) bool {
	return a.bad == b.bad && a.err == b.err && a.pt.Key == b.pt.Key && a.pt.Step == b.pt.Step &&
		a.pt.Time == b.pt.Time && math.Float64bits(a.pt.Value) == math.Float64bits(b.pt.Value)
}

// events records what a parser emitted and reported, in order.
type events []event

func (e *events) emit(p Point) { *e = append(*e, event{pt: p}) }

func (e *events) report(err Error) { *e = append(*e, event{err: err, bad: true}) }

func (e events) equal(o events) bool { return slices.EqualFunc(e, o, same) }

func (e events) strings() []string {
	var out []string
	for _, v := range e {
		out = append(out, v.String())
	}
	return out
}

func fmtFloat(v float64) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	return fmt.Sprint(v)
}

// newLimited is New with a smaller line limit, to test long lines cheaply.
func newLimited(f Format, key string, limit int) *Parser {
	p := New(f, key)
	if limit > 0 {
		p.limit = limit
	}
	return p
}

// parseAll feeds data in one piece, then ends the input.
func parseAll(f Format, key string, limit int, data []byte) events {
	var ev events
	p := newLimited(f, key, limit)
	p.Feed(data, ev.emit, ev.report)
	p.End(ev.emit, ev.report)
	return ev
}

// parseChunks feeds data cut at the given offsets, then ends the input.
func parseChunks(f Format, key string, limit int, data []byte, cuts []int) events {
	var ev events
	p := newLimited(f, key, limit)
	prev := 0
	for _, c := range cuts {
		p.Feed(data[prev:c], ev.emit, ev.report)
		prev = c
	}
	p.Feed(data[prev:], ev.emit, ev.report)
	p.End(ev.emit, ev.report)
	return ev
}

// parseResumed feeds data[:cut], saves and restores the state, and feeds
// the restored parser the file from its consumed offset.
func parseResumed(t testing.TB, f Format, key string, limit int, data []byte, cut int) events {
	t.Helper()
	var ev events
	p := newLimited(f, key, limit)
	p.Feed(data[:cut], ev.emit, ev.report)
	if c := p.Consumed(); c < 0 || c > int64(cut) {
		t.Fatalf("cut %d: consumed %d", cut, c)
	}
	st := p.State()
	q, err := Restore(st)
	if err != nil {
		t.Fatalf("cut %d: restore: %v", cut, err)
	}
	if !slices.Equal(q.State(), st) {
		t.Fatalf("cut %d: state changed in a round trip", cut)
	}
	if limit > 0 {
		q.limit = limit
	}
	q.Feed(data[p.Consumed():], ev.emit, ev.report)
	q.End(ev.emit, ev.report)
	return ev
}

// checkStreaming checks that every split of data into two feeds, a feed
// per byte, and a resume at every offset give what one feed gives.
func checkStreaming(t *testing.T, f Format, key string, limit int, data []byte) events {
	t.Helper()
	want := parseAll(f, key, limit, data)
	for i := 0; i <= len(data); i++ {
		if got := parseChunks(f, key, limit, data, []int{i}); !got.equal(want) {
			t.Fatalf("split at %d:\n got %s\nwant %s", i, show(got), show(want))
		}
		if got := parseResumed(t, f, key, limit, data, i); !got.equal(want) {
			t.Fatalf("resumed at %d:\n got %s\nwant %s", i, show(got), show(want))
		}
	}
	bytewise := make([]int, len(data))
	for i := range bytewise {
		bytewise[i] = i
	}
	if got := parseChunks(f, key, limit, data, bytewise); !got.equal(want) {
		t.Fatalf("fed a byte at a time:\n got %s\nwant %s", show(got), show(want))
	}
	return want
}

func show(e events) string { return "[" + strings.Join(e.strings(), " | ") + "]" }

// fuzzStreaming is the property the fuzz targets check: splits chosen by
// seed, and resumes at a few offsets, give what one feed gives.
func fuzzStreaming(t *testing.T, f Format, data []byte, seed uint64) {
	limit := 0
	if seed&1 == 1 {
		limit = 1 + int(seed>>1&63) // exercise the long-line path
	}
	want := parseAll(f, "k", limit, data)
	rng := seed | 1
	next := func(n int) int {
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		return int(rng % uint64(n+1))
	}
	var cuts []int
	for at := 0; at < len(data); {
		at += 1 + next(16)
		if at < len(data) {
			cuts = append(cuts, at)
		}
	}
	if got := parseChunks(f, "k", limit, data, cuts); !got.equal(want) {
		t.Fatalf("split at %v:\n got %s\nwant %s", cuts, show(got), show(want))
	}
	for k := 0; k < 2; k++ {
		cut := next(len(data))
		if got := parseResumed(t, f, "k", limit, data, cut); !got.equal(want) {
			t.Fatalf("resumed at %d:\n got %s\nwant %s", cut, show(got), show(want))
		}
	}
}
