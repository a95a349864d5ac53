package series

import (
	"math"
	"math/bits"
)

// Bucket summarizes Count consecutive points (in arrival order). First,
// Last, FirstStep, LastStep, FirstTime and LastTime are those of its first
// and last point; MinStep and MaxStep the extreme steps. Min and Max
// ignore NaN and are NaN if every value is; First and Last may be NaN.
type Bucket struct {
	Count     int64
	FirstStep int64
	LastStep  int64
	MinStep   int64
	MaxStep   int64
	First     float64
	Last      float64
	Min       float64
	Max       float64
	FirstTime int64
	LastTime  int64
}

func newBucket(p Point) Bucket {
	b := Bucket{Count: 1, FirstStep: p.Step, LastStep: p.Step, MinStep: p.Step, MaxStep: p.Step,
		First: p.Value, Last: p.Value, Min: canonicalNaN, Max: canonicalNaN,
		FirstTime: p.Time, LastTime: p.Time}
	if p.Value == p.Value {
		b.Min, b.Max = p.Value, p.Value
	}
	return b
}

func (b *Bucket) add(p Point) {
	b.Count++
	b.LastStep = p.Step
	b.MinStep = min(b.MinStep, p.Step)
	b.MaxStep = max(b.MaxStep, p.Step)
	b.Last = p.Value
	b.LastTime = p.Time
	widen(&b.Min, &b.Max, p.Value)
}

// merge returns the bucket covering the points of a followed by those of c.
func merge(a, c Bucket) Bucket {
	a.Count += c.Count
	a.LastStep = c.LastStep
	a.MinStep = min(a.MinStep, c.MinStep)
	a.MaxStep = max(a.MaxStep, c.MaxStep)
	a.Last = c.Last
	a.LastTime = c.LastTime
	if c.Min == c.Min {
		widen(&a.Min, &a.Max, c.Min)
		widen(&a.Min, &a.Max, c.Max)
	}
	return a
}

// Downsample is a bounded min/max summary of a whole series, for plots.
// Bucket i covers points [i*w, (i+1)*w) in arrival order, w = Width(); all
// buckets but the last are full. When a point needs a new bucket and there
// are already 2*target, adjacent pairs merge and w doubles. The zero value
// is an empty Downsample with target Target.
//
// Add never allocates once the bucket slice has grown to 2*target. A
// Downsample holds at most math.MaxInt64 points; Add ignores more. A copy
// of a Downsample value shares its buckets with the original: copy
// through MarshalBinary and UnmarshalBinary instead. A Downsample is not
// safe for concurrent use.
type Downsample struct {
	target  int // 0 means Target
	shift   uint8
	total   int64
	buckets []Bucket
}

// NewDownsample returns an empty Downsample with the given target; target
// <= 0 means Target. It panics if target > MaxTarget.
func NewDownsample(target int) *Downsample {
	if target > MaxTarget {
		panic("series: downsample target exceeds MaxTarget")
	}
	return &Downsample{target: max(target, 0)}
}

// Target returns the target: between Target()+1 and 2*Target() buckets
// are kept once the width exceeds 1.
func (d *Downsample) Target() int {
	if d.target == 0 {
		return Target
	}
	return d.target
}

// Width returns the number of points a full bucket covers, a power of two.
func (d *Downsample) Width() int64 { return 1 << d.shift }

// Len returns the number of points added.
func (d *Downsample) Len() int64 { return d.total }

// Add adds the next point.
func (d *Downsample) Add(p Point) {
	if d.total == math.MaxInt64 {
		return
	}
	d.total++
	n := len(d.buckets)
	if n > 0 {
		if b := &d.buckets[n-1]; b.Count < 1<<d.shift {
			b.add(p)
			return
		}
		if n >= 2*d.Target() {
			d.compact()
		}
	}
	d.buckets = append(d.buckets, newBucket(p))
}

// compact merges adjacent pairs of the (full, even in number) buckets.
func (d *Downsample) compact() {
	bs := d.buckets
	h := len(bs) / 2
	for i := range h {
		bs[i] = merge(bs[2*i], bs[2*i+1])
	}
	d.buckets = bs[:h]
	d.shift++
}

// Reset empties d, keeping its target and memory.
func (d *Downsample) Reset() {
	d.shift, d.total, d.buckets = 0, 0, d.buckets[:0]
}

// Buckets returns a copy of the buckets, in arrival order.
func (d *Downsample) Buckets() []Bucket {
	if len(d.buckets) == 0 {
		return nil
	}
	return append([]Bucket(nil), d.buckets...)
}

// Points returns at most n buckets covering every point, for drawing at a
// resolution of n: consecutive buckets merged in aligned groups of g, the
// least power of two that gives at most n. The groups' point ranges are
// then [k*g*w, (k+1)*g*w) and do not move as points arrive, at the price
// of returning as few as about n/2 buckets. n < 1 returns nil.
func (d *Downsample) Points(n int) []Bucket {
	m := len(d.buckets)
	if n < 1 || m == 0 {
		return nil
	}
	g := 1
	for (m+g-1)/g > n {
		g *= 2
	}
	if g == 1 {
		return d.Buckets()
	}
	out := make([]Bucket, 0, (m+g-1)/g)
	for i := 0; i < m; i += g {
		b := d.buckets[i]
		for _, c := range d.buckets[i+1 : min(i+g, m)] {
			b = merge(b, c)
		}
		out = append(out, b)
	}
	return out
}

const downsampleVersion = 1

// AppendBinary appends the encoding of d (see the package documentation).
// It never fails.
func (d *Downsample) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, downsampleVersion)
	b = appendUvarint(b, uint64(d.Target()))
	b = append(b, d.shift)
	b = appendUvarint(b, uint64(len(d.buckets)))
	if len(d.buckets) == 0 {
		return b, nil
	}
	b = appendUvarint(b, uint64(d.buckets[len(d.buckets)-1].Count))
	var p Bucket
	for i := range d.buckets {
		c := &d.buckets[i]
		b = appendVarint(b, c.FirstStep-p.LastStep)
		if c.Count == 1 {
			b = appendVarint(b, c.FirstTime-p.LastTime)
			b = appendXOR(b, math.Float64bits(c.First)^math.Float64bits(p.Last))
		} else {
			b = appendVarint(b, c.LastStep-c.FirstStep)
			b = appendUvarint(b, uint64(min(c.FirstStep, c.LastStep))-uint64(c.MinStep))
			b = appendUvarint(b, uint64(c.MaxStep)-uint64(max(c.FirstStep, c.LastStep)))
			b = appendVarint(b, c.FirstTime-p.LastTime)
			b = appendVarint(b, c.LastTime-c.FirstTime)
			b = appendXOR(b, math.Float64bits(c.First)^math.Float64bits(p.Last))
			b = appendXOR(b, math.Float64bits(c.Last)^math.Float64bits(c.First))
			b = appendXOR(b, math.Float64bits(c.Min)^math.Float64bits(p.Min))
			b = appendXOR(b, math.Float64bits(c.Max)^math.Float64bits(p.Max))
		}
		p = *c
	}
	return b, nil
}

// MarshalBinary returns the encoding of d. It never fails.
func (d *Downsample) MarshalBinary() ([]byte, error) { return d.AppendBinary(nil) }

// UnmarshalBinary replaces d by the Downsample encoded in b. It rejects,
// with an error wrapping ErrMalformed, bytes that are not the encoding of
// a Downsample that Add can reach, and then leaves d unchanged. Adding
// points to the result gives exactly what adding them to the original
// would.
func (d *Downsample) UnmarshalBinary(b []byte) error {
	r := reader{b: b, what: "downsample"}
	var e Downsample
	if err := e.read(&r); err != nil {
		return err
	}
	if r.left() != 0 {
		return malformed("downsample: %d trailing bytes", r.left())
	}
	*d = e
	return nil
}

// minBucketBytes is the least one bucket's encoding can take.
const minBucketBytes = 3

// read decodes a Downsample from r into d, leaving d unchanged on error.
func (d *Downsample) read(r *reader) error {
	if ver := r.u8("version"); r.err == nil && ver != downsampleVersion {
		r.fail("version", "unknown")
	}
	target := r.uvarint("target")
	shift := r.u8("width")
	n := r.uvarint("buckets")
	if r.err != nil {
		return r.err
	}
	switch {
	case target < 1 || target > MaxTarget:
		r.fail("target", "out of range")
	case shift > 62:
		r.fail("width", "too large")
	case n > 2*target:
		r.fail("buckets", "more than twice the target")
	case shift > 0 && n <= target:
		r.fail("buckets", "too few for the width")
	case n*minBucketBytes > uint64(r.left()):
		r.fail("buckets", "more than the input holds")
	}
	if r.err != nil {
		return r.err
	}
	width := uint64(1) << shift
	var last uint64
	if n > 0 {
		last = r.uvarint("last count")
		if r.err == nil && (last < 1 || last > width) {
			r.fail("last count", "out of range")
		}
		if r.err == nil {
			hi, lo := bits.Mul64(n-1, width)
			if hi != 0 || lo > math.MaxInt64-last {
				r.fail("last count", "total overflows")
			}
		}
		if r.err != nil {
			return r.err
		}
	}
	bs := make([]Bucket, 0, n)
	var p Bucket
	for i := uint64(0); i < n; i++ {
		c := Bucket{Count: int64(width)}
		if i == n-1 {
			c.Count = int64(last)
		}
		c.FirstStep = p.LastStep + r.varint("first step")
		if c.Count == 1 {
			c.LastStep, c.MinStep, c.MaxStep = c.FirstStep, c.FirstStep, c.FirstStep
			c.FirstTime = p.LastTime + r.varint("first time")
			c.LastTime = c.FirstTime
			c.First = math.Float64frombits(r.xor("first") ^ math.Float64bits(p.Last))
			c.Last = c.First
			c.Min, c.Max = canonicalNaN, canonicalNaN
			widen(&c.Min, &c.Max, c.First)
		} else {
			c.LastStep = c.FirstStep + r.varint("last step")
			lo, hi := min(c.FirstStep, c.LastStep), max(c.FirstStep, c.LastStep)
			dl := r.uvarint("min step")
			dh := r.uvarint("max step")
			if r.err == nil && (dl > uint64(lo)^(1<<63) || dh > ^(uint64(hi)^(1<<63))) {
				r.fail("min/max step", "out of range")
			}
			c.MinStep = int64(uint64(lo) - dl)
			c.MaxStep = int64(uint64(hi) + dh)
			c.FirstTime = p.LastTime + r.varint("first time")
			c.LastTime = c.FirstTime + r.varint("last time")
			c.First = math.Float64frombits(r.xor("first") ^ math.Float64bits(p.Last))
			c.Last = math.Float64frombits(r.xor("last") ^ math.Float64bits(c.First))
			c.Min = math.Float64frombits(r.xor("min") ^ math.Float64bits(p.Min))
			c.Max = math.Float64frombits(r.xor("max") ^ math.Float64bits(p.Max))
			if r.err == nil && (!validRange(c.Min, c.Max) ||
				!inRange(c.First, c.Min, c.Max) || !inRange(c.Last, c.Min, c.Max)) {
				r.fail("min/max", "inconsistent with first/last")
			}
		}
		if r.err != nil {
			return r.err
		}
		bs = append(bs, c)
		p = c
	}
	if n > 0 {
		d.total = int64((n-1)*width + last)
	} else {
		d.total = 0
	}
	d.target, d.shift, d.buckets = int(target), shift, bs
	return nil
}
