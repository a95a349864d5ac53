package series

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

func sameSummary(a, b Summary) bool {
	return a.Count == b.Count && sameFloat(a.Min, b.Min) && sameFloat(a.Max, b.Max) &&
		sameFloat(a.Last, b.Last) && a.LastStep == b.LastStep && a.LastTime == b.LastTime &&
		a.FirstTime == b.FirstTime
}

func summarize(ps []Point) Summary {
	var s Summary
	for _, p := range ps {
		s.Add(p)
	}
	return s
}

func TestSummaryAdd(t *testing.T) {
	nan := math.NaN()
	negZero := math.Copysign(0, -1)
	tests := []struct {
		name string
		pts  []Point
		want Summary
	}{
		{"one", []Point{{Step: 3, Value: 2, Time: 10}},
			Summary{Count: 1, Min: 2, Max: 2, Last: 2, LastStep: 3, LastTime: 10, FirstTime: 10}},
		{"in order", []Point{{0, 5, 100}, {1, 3, 110}, {2, 4, 120}},
			Summary{Count: 3, Min: 3, Max: 5, Last: 4, LastStep: 2, LastTime: 120, FirstTime: 100}},
		{"out of order steps", []Point{{5, 1, 100}, {2, 9, 110}, {3, 0, 90}},
			Summary{Count: 3, Min: 0, Max: 9, Last: 1, LastStep: 5, LastTime: 100, FirstTime: 90}},
		{"equal steps: latest added wins", []Point{{5, 1, 100}, {5, 2, 90}, {4, 3, 200}},
			Summary{Count: 3, Min: 1, Max: 3, Last: 2, LastStep: 5, LastTime: 90, FirstTime: 90}},
		{"all NaN", []Point{{0, nan, 1}, {1, nan, 2}},
			Summary{Count: 2, Min: nan, Max: nan, Last: nan, LastStep: 1, LastTime: 2, FirstTime: 1}},
		{"NaN ignored", []Point{{0, nan, 1}, {1, 7, 2}, {2, nan, 3}, {3, -1, 4}},
			Summary{Count: 4, Min: -1, Max: 7, Last: -1, LastStep: 3, LastTime: 4, FirstTime: 1}},
		{"NaN last", []Point{{0, 1, 1}, {1, nan, 2}},
			Summary{Count: 2, Min: 1, Max: 1, Last: nan, LastStep: 1, LastTime: 2, FirstTime: 1}},
		{"infinities", []Point{{0, math.Inf(1), 1}, {1, math.Inf(-1), 2}},
			Summary{Count: 2, Min: math.Inf(-1), Max: math.Inf(1), Last: math.Inf(-1), LastStep: 1, LastTime: 2, FirstTime: 1}},
		{"signed zeros +-", []Point{{0, 0, 1}, {1, negZero, 2}},
			Summary{Count: 2, Min: negZero, Max: 0, Last: negZero, LastStep: 1, LastTime: 2, FirstTime: 1}},
		{"signed zeros -+", []Point{{0, negZero, 1}, {1, 0, 2}},
			Summary{Count: 2, Min: negZero, Max: 0, Last: 0, LastStep: 1, LastTime: 2, FirstTime: 1}},
		{"extreme steps", []Point{{math.MaxInt64, 1, math.MinInt64}, {math.MinInt64, 2, math.MaxInt64}},
			Summary{Count: 2, Min: 1, Max: 2, Last: 1, LastStep: math.MaxInt64, LastTime: math.MinInt64, FirstTime: math.MinInt64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summarize(tt.pts)
			if !sameSummary(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			b, _ := got.MarshalBinary()
			var back Summary
			if err := back.UnmarshalBinary(b); err != nil || !sameSummary(back, got) {
				t.Fatalf("round trip: %+v, %v", back, err)
			}
		})
	}
}

func TestSummaryMerge(t *testing.T) {
	a := summarize([]Point{{0, 1, 100}, {10, 5, 200}})
	b := summarize([]Point{{3, -2, 50}, {10, 7, 300}})
	m := a
	m.Merge(b)
	want := Summary{Count: 4, Min: -2, Max: 5 + 2, Last: 7, LastStep: 10, LastTime: 300, FirstTime: 50}
	if !sameSummary(m, want) {
		t.Fatalf("got %+v, want %+v", m, want)
	}
	// The greater LastStep wins over the greater LastTime.
	c := summarize([]Point{{11, 0, 10}})
	m.Merge(c)
	if m.Last != 0 || m.LastStep != 11 || m.LastTime != 10 || m.FirstTime != 10 {
		t.Fatalf("got %+v", m)
	}
	// Full tie: the argument wins.
	x := summarize([]Point{{1, 1, 1}})
	y := summarize([]Point{{1, 2, 1}})
	x.Merge(y)
	if x.Last != 2 {
		t.Fatalf("tie: got %+v", x)
	}
	// Empty on either side.
	var e Summary
	e.Merge(a)
	if !sameSummary(e, a) {
		t.Fatalf("empty.Merge: %+v", e)
	}
	a2 := a
	a2.Merge(Summary{})
	if !sameSummary(a2, a) {
		t.Fatalf("Merge(empty): %+v", a2)
	}
	// All-NaN merged with values.
	n := summarize([]Point{{0, math.NaN(), 0}})
	n.Merge(a)
	if n.Min != 1 || n.Max != 5 {
		t.Fatalf("NaN merge: %+v", n)
	}
}

// TestSummaryMergeSplit checks that merging the summaries of the two
// halves of a series equals summarizing it whole, for Count, Min, Max and
// FirstTime, and for Last when steps increase and the halves are in
// order.
func TestSummaryMergeSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 1000 {
		n := 1 + r.IntN(50)
		ps := make([]Point, n)
		for i := range ps {
			v := r.NormFloat64()
			if r.IntN(10) == 0 {
				v = math.NaN()
			}
			ps[i] = Point{Step: int64(i), Value: v, Time: r.Int64N(1000)}
		}
		k := r.IntN(n + 1)
		a, b := summarize(ps[:k]), summarize(ps[k:])
		a.Merge(b)
		if whole := summarize(ps); !sameSummary(a, whole) {
			t.Fatalf("split at %d: %+v, whole %+v", k, a, whole)
		}
	}
}

func TestSummaryUnmarshalMalformed(t *testing.T) {
	good, _ := summarize([]Point{{0, 1, 5}, {1, 2, 10}}).MarshalBinary()
	enc := func(s Summary) []byte {
		b, _ := s.MarshalBinary()
		return b
	}
	nan := math.NaN()
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad version", []byte{2, 0}},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(append([]byte(nil), good...), 0)},
		{"count too large", append([]byte{1}, appendUvarint(nil, 1<<63)...)},
		{"min > max", enc(Summary{Count: 2, Min: 3, Max: 1, Last: 2})},
		{"min NaN max not", enc(Summary{Count: 2, Min: nan, Max: 1, Last: 1})},
		{"odd NaN", enc(Summary{Count: 2, Min: math.Float64frombits(0x7FF8000000000002), Max: math.Float64frombits(0x7FF8000000000002), Last: nan})},
		{"last outside", enc(Summary{Count: 2, Min: 1, Max: 2, Last: 3})},
		{"first time after last", enc(Summary{Count: 2, Min: 1, Max: 2, Last: 1, LastTime: 5, FirstTime: 6})},
		{"first time below MinInt64", enc(Summary{Count: 2, Min: 1, Max: 2, Last: 1, LastTime: math.MinInt64 + 1, FirstTime: math.MaxInt64})},
		{"one point, two values", enc(Summary{Count: 1, Min: 1, Max: 2, Last: 1})},
		{"one point, two times", enc(Summary{Count: 1, Min: 1, Max: 1, Last: 1, LastTime: 2, FirstTime: 1})},
		{"one NaN point with a min", enc(Summary{Count: 1, Min: 1, Max: 1, Last: nan})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Summary{Count: 7}
			err := s.UnmarshalBinary(tt.b)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if s.Count != 7 {
				t.Fatalf("s changed: %+v", s)
			}
		})
	}
}

func TestSummaryEmptyEncoding(t *testing.T) {
	b, _ := Summary{}.MarshalBinary()
	var s Summary
	if err := s.UnmarshalBinary(b); err != nil || s.Count != 0 {
		t.Fatalf("%+v, %v", s, err)
	}
	if len(b) != 2 {
		t.Fatalf("empty summary is %d bytes", len(b))
	}
}
