package series

import (
	"bytes"
	"errors"
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// bruteBucket computes the bucket of ps directly.
func bruteBucket(ps []Point) Bucket {
	b := Bucket{Count: int64(len(ps)), FirstStep: ps[0].Step, LastStep: ps[len(ps)-1].Step,
		MinStep: math.MaxInt64, MaxStep: math.MinInt64, First: ps[0].Value, Last: ps[len(ps)-1].Value,
		Min: math.NaN(), Max: math.NaN(), FirstTime: ps[0].Time, LastTime: ps[len(ps)-1].Time}
	for _, p := range ps {
		b.MinStep = min(b.MinStep, p.Step)
		b.MaxStep = max(b.MaxStep, p.Step)
		if math.IsNaN(p.Value) {
			continue
		}
		if math.IsNaN(b.Min) || p.Value < b.Min || (p.Value == 0 && b.Min == 0 && math.Signbit(p.Value)) {
			b.Min = p.Value
		}
		if math.IsNaN(b.Max) || p.Value > b.Max || (p.Value == 0 && b.Max == 0 && !math.Signbit(p.Value)) {
			b.Max = p.Value
		}
	}
	return b
}

func sameBucket(a, b Bucket) bool {
	return a.Count == b.Count && a.FirstStep == b.FirstStep && a.LastStep == b.LastStep &&
		a.MinStep == b.MinStep && a.MaxStep == b.MaxStep && sameFloat(a.First, b.First) &&
		sameFloat(a.Last, b.Last) && sameFloat(a.Min, b.Min) && sameFloat(a.Max, b.Max) &&
		a.FirstTime == b.FirstTime && a.LastTime == b.LastTime
}

func randomPoints(r *rand.Rand, n int) []Point {
	ps := make([]Point, n)
	step, tm := int64(0), int64(1_700_000_000_000)
	for i := range ps {
		step += r.Int64N(5) - 1 // sometimes backwards or repeated
		tm += r.Int64N(30)
		v := r.NormFloat64()
		switch r.IntN(50) {
		case 0:
			v = math.NaN()
		case 1:
			v = math.Inf(1 - 2*r.IntN(2))
		case 2:
			v = math.Copysign(0, float64(1-2*r.IntN(2)))
		}
		ps[i] = Point{Step: step, Value: v, Time: tm}
	}
	return ps
}

// checkDownsample compares d, built from ps, against brute force.
func checkDownsample(t *testing.T, d *Downsample, ps []Point) {
	t.Helper()
	w := d.Width()
	if w <= 0 || bits.OnesCount64(uint64(w)) != 1 {
		t.Fatalf("width %d", w)
	}
	bs := d.Buckets()
	T := d.Target()
	if len(bs) > 2*T || (w > 1 && len(bs) <= T) {
		t.Fatalf("%d buckets, target %d, width %d", len(bs), T, w)
	}
	if d.Len() != int64(len(ps)) {
		t.Fatalf("Len %d, want %d", d.Len(), len(ps))
	}
	var total int64
	for i, b := range bs {
		lo := int64(i) * w
		hi := min(lo+w, int64(len(ps)))
		if want := bruteBucket(ps[lo:hi]); !sameBucket(b, want) {
			t.Fatalf("bucket %d of %d (width %d):\n got %+v\nwant %+v", i, len(bs), w, b, want)
		}
		total += b.Count
	}
	if total != int64(len(ps)) {
		t.Fatalf("counts sum to %d, want %d", total, len(ps))
	}
	for _, n := range []int{1, 2, 3, 7, 10, T, 2 * T, 5 * T} {
		got := d.Points(n)
		if len(got) > n || (len(ps) > 0 && len(got) == 0) {
			t.Fatalf("Points(%d) returned %d buckets", n, len(got))
		}
		if len(bs) > n && len(got) <= n/2 && n > 1 {
			t.Fatalf("Points(%d) returned only %d of %d buckets", n, len(got), len(bs))
		}
		var off int64
		for _, b := range got {
			if want := bruteBucket(ps[off : off+b.Count]); !sameBucket(b, want) {
				t.Fatalf("Points(%d): bucket at %d:\n got %+v\nwant %+v", n, off, b, want)
			}
			off += b.Count
		}
		if off != int64(len(ps)) {
			t.Fatalf("Points(%d) covers %d of %d points", n, off, len(ps))
		}
	}
}

func TestDownsampleBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, target := range []int{1, 2, 3, 8, 13} {
		for _, n := range []int{0, 1, 2, 5, 16, 17, 100, 1000, 12345, 100_000} {
			ps := randomPoints(r, n)
			d := NewDownsample(target)
			for i, p := range ps {
				d.Add(p)
				if i < 300 || i%9973 == 0 {
					checkDownsample(t, d, ps[:i+1])
				}
			}
			checkDownsample(t, d, ps)
		}
	}
}

func TestDownsampleTenMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	var d Downsample
	const n = 10_000_000
	for i := range n {
		d.Add(Point{Step: int64(i), Value: float64(i % 1000), Time: int64(i) * 10})
	}
	bs := d.Buckets()
	if len(bs) <= Target || len(bs) > 2*Target {
		t.Fatalf("%d buckets", len(bs))
	}
	var total int64
	for i, b := range bs {
		total += b.Count
		if i < len(bs)-1 && b.Count != d.Width() {
			t.Fatalf("bucket %d holds %d, width %d", i, b.Count, d.Width())
		}
		if b.FirstStep != int64(i)*d.Width() || b.MinStep != b.FirstStep || b.MaxStep != b.LastStep {
			t.Fatalf("bucket %d: %+v", i, b)
		}
	}
	if total != n || d.Len() != n {
		t.Fatalf("total %d, Len %d", total, d.Len())
	}
	if got := d.Points(1000); len(got) > 1000 || len(got) < 500 {
		t.Fatalf("Points(1000) gave %d", len(got))
	}
	if bs[0].Min != 0 || bs[0].Max != 999 {
		t.Fatalf("first bucket %+v", bs[0])
	}
}

func TestDownsampleAddDoesNotAllocate(t *testing.T) {
	d := NewDownsample(16)
	i := 0
	for ; i < 100; i++ {
		d.Add(Point{Step: int64(i)})
	}
	allocs := testing.AllocsPerRun(10000, func() {
		d.Add(Point{Step: int64(i), Value: float64(i)})
		i++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Add", allocs)
	}
}

func marshal(t *testing.T, d *Downsample) []byte {
	t.Helper()
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDownsampleMarshalEquivalence checks that any history of marshal and
// unmarshal in between adds gives the same downsample as none.
func TestDownsampleMarshalEquivalence(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, target := range []int{1, 4, 8, 1024} {
		ps := randomPoints(r, 20000)
		ref := NewDownsample(target)
		d := NewDownsample(target)
		for _, p := range ps {
			ref.Add(p)
			d.Add(p)
			if r.IntN(50) == 0 {
				var e Downsample
				if err := e.UnmarshalBinary(marshal(t, d)); err != nil {
					t.Fatal(err)
				}
				d = &e
			}
		}
		if !bytes.Equal(marshal(t, ref), marshal(t, d)) {
			t.Fatalf("target %d: encodings differ", target)
		}
		rb, db := ref.Buckets(), d.Buckets()
		if len(rb) != len(db) || ref.Width() != d.Width() || ref.Len() != d.Len() || ref.Target() != d.Target() {
			t.Fatalf("target %d: shapes differ", target)
		}
		for i := range rb {
			if !sameBucket(rb[i], db[i]) {
				t.Fatalf("target %d: bucket %d differs", target, i)
			}
		}
	}
}

func TestDownsampleMarshalRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, target := range []int{1, 3, 8} {
		d := NewDownsample(target)
		for _, p := range randomPoints(r, 5000) {
			d.Add(p)
			b := marshal(t, d)
			var e Downsample
			if err := e.UnmarshalBinary(b); err != nil {
				t.Fatalf("after %d points: %v", d.Len(), err)
			}
			if b2 := marshal(t, &e); !bytes.Equal(b, b2) {
				t.Fatalf("after %d points: re-marshal differs", d.Len())
			}
		}
	}
	// Extremes of steps and times.
	d := NewDownsample(2)
	for _, p := range []Point{{math.MinInt64, 1, math.MaxInt64}, {math.MaxInt64, -1, math.MinInt64}, {0, math.NaN(), 0},
		{math.MaxInt64, math.Inf(1), math.MaxInt64}, {math.MinInt64, math.Inf(-1), math.MinInt64}, {-1, 0, 1}} {
		d.Add(p)
		b := marshal(t, d)
		var e Downsample
		if err := e.UnmarshalBinary(b); err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		if !bytes.Equal(b, marshal(t, &e)) {
			t.Fatalf("%+v: re-marshal differs", p)
		}
	}
}

func TestDownsampleReset(t *testing.T) {
	d := NewDownsample(4)
	for i := range 1000 {
		d.Add(Point{Step: int64(i), Value: 1})
	}
	d.Reset()
	if d.Len() != 0 || d.Width() != 1 || len(d.Buckets()) != 0 || d.Target() != 4 {
		t.Fatalf("after Reset: len %d width %d target %d", d.Len(), d.Width(), d.Target())
	}
	e := NewDownsample(4)
	ps := randomPoints(rand.New(rand.NewPCG(1, 1)), 500)
	for _, p := range ps {
		d.Add(p)
		e.Add(p)
	}
	if !bytes.Equal(marshal(t, d), marshal(t, e)) {
		t.Fatal("a reset downsample differs from a new one")
	}
}

func TestDownsampleZeroValue(t *testing.T) {
	var d Downsample
	if d.Target() != Target || d.Width() != 1 || d.Len() != 0 || d.Points(10) != nil || d.Buckets() != nil {
		t.Fatal("zero value is not empty")
	}
	var e Downsample
	if err := e.UnmarshalBinary(marshal(t, &d)); err != nil || e.Target() != Target {
		t.Fatalf("%v, target %d", err, e.Target())
	}
	if d.Points(0) != nil {
		t.Fatal("Points(0) not nil")
	}
}

func TestDownsampleUnmarshalMalformed(t *testing.T) {
	d := NewDownsample(2)
	for i := range 11 {
		d.Add(Point{Step: int64(i), Value: float64(i), Time: int64(i)})
	}
	good := marshal(t, d) // target 2, shift 2: buckets of 4, 4, 3
	if good[2] != 2 || good[3] != 3 || good[4] != 3 {
		t.Fatalf("unexpected layout %x", good)
	}
	with := func(i int, v byte) []byte {
		b := append([]byte(nil), good...)
		b[i] = v
		return b
	}
	// One general bucket after a header, for value checks.
	bucket := func(first, last, lo, hi float64) []byte {
		b := []byte{1, 1, 1, 2, 1}      // target 1, shift 1, buckets of 2 and 1
		b = append(b, 0, 2, 0, 0, 0, 0) // steps 0..1, times 0..0
		b = appendXOR(b, math.Float64bits(first))
		b = appendXOR(b, math.Float64bits(last)^math.Float64bits(first))
		b = appendXOR(b, math.Float64bits(lo))
		b = appendXOR(b, math.Float64bits(hi))
		return append(b, 0, 0, 0) // a bucket of 1 repeating the last point
	}
	steps := func(first, last int64, dlo, dhi uint64) []byte {
		b := []byte{1, 1, 1, 2, 1}
		b = appendVarint(b, first)
		b = appendVarint(b, last-first)
		b = appendUvarint(b, dlo)
		b = appendUvarint(b, dhi)
		b = append(b, 0, 0, 0, 0, 0, 0) // times, values
		return append(b, 0, 0, 0)
	}
	if err := new(Downsample).UnmarshalBinary(steps(math.MinInt64+1, math.MaxInt64-1, 1, 1)); err != nil {
		t.Fatalf("hand-made steps: %v", err)
	}
	if err := new(Downsample).UnmarshalBinary(bucket(1, 2, 1, 2)); err != nil {
		t.Fatalf("hand-made bucket: %v", err)
	}
	nan := math.NaN()
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad version", with(0, 9)},
		{"target 0", []byte{1, 0, 0, 0}},
		{"target > MaxTarget", append(append([]byte{1}, appendUvarint(nil, MaxTarget+1)...), 0, 0)},
		{"shift 63", []byte{1, 1, 63, 0}},
		{"too many buckets", []byte{1, 1, 0, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"too few buckets for width", []byte{1, 2, 1, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"width with no buckets", []byte{1, 2, 1, 0}},
		{"buckets beyond input", []byte{1, 8, 0, 16, 1}},
		{"last count 0", with(4, 0)},
		{"last count > width", with(4, 5)},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(append([]byte(nil), good...), 0)},
		{"min > max", bucket(1, 2, 2, 1)},
		{"first below min", bucket(0, 2, 1, 2)},
		{"last above max", bucket(1, 3, 1, 2)},
		{"NaN min only", bucket(nan, nan, nan, 2)},
		{"odd NaN range", bucket(nan, nan, math.Float64frombits(0x7FF0000000000001), math.Float64frombits(0x7FF0000000000001))},
		{"values without a range", bucket(1, nan, nan, nan)},
		{"min step below MinInt64", steps(math.MinInt64+1, math.MaxInt64-1, 2, 0)},
		{"max step above MaxInt64", steps(math.MinInt64+1, math.MaxInt64-1, 0, 2)},
		{"min step far below", steps(0, 1, 1<<63+1, 0)},
		{"total overflows", append([]byte{1, 1, 62, 2}, append(appendUvarint(nil, 1<<62), make([]byte, 20)...)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewDownsample(5)
			e.Add(Point{Step: 77})
			err := e.UnmarshalBinary(tt.b)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if e.Target() != 5 || e.Len() != 1 || e.Buckets()[0].FirstStep != 77 {
				t.Fatal("downsample changed")
			}
		})
	}
}

// TestDownsampleSaturates checks Add at the largest count an encoding can
// hold.
func TestDownsampleSaturates(t *testing.T) {
	// target 1, shift 62, buckets of 2^62 and 2^62-1 points: one below the
	// maximum.
	b := []byte{1, 1, 62, 2}
	b = appendUvarint(b, 1<<62-2)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) // a general bucket, all zero
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	var d Downsample
	if err := d.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if d.Len() != math.MaxInt64-1 {
		t.Fatalf("Len %d", d.Len())
	}
	d.Add(Point{Step: 1})
	d.Add(Point{Step: 2})
	d.Add(Point{Step: 3})
	if d.Len() != math.MaxInt64 || len(d.Buckets()) != 2 || d.Buckets()[1].LastStep != 1 {
		t.Fatalf("Len %d, %d buckets", d.Len(), len(d.Buckets()))
	}
	if err := new(Downsample).UnmarshalBinary(marshal(t, &d)); err != nil {
		t.Fatal(err)
	}
}
