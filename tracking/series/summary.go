package series

import "math"

// Summary is what listings show of a series. Min and Max ignore NaN and
// are NaN while no other value has been seen. Last, LastStep and LastTime
// are those of the point with the greatest step (among equal steps, the
// one added last); FirstTime is the smallest time of any point. Fields
// other than Count are meaningless while Count is 0.
//
// Min and Max order -0 before +0, so they do not depend on arrival order.
// Count saturates at math.MaxInt64: Add then ignores further points.
type Summary struct {
	Count     int64
	Min       float64
	Max       float64
	Last      float64
	LastStep  int64
	LastTime  int64
	FirstTime int64
}

// Add adds one point.
func (s *Summary) Add(p Point) {
	switch s.Count {
	case 0:
		*s = Summary{Count: 1, Min: canonicalNaN, Max: canonicalNaN,
			Last: p.Value, LastStep: p.Step, LastTime: p.Time, FirstTime: p.Time}
		widen(&s.Min, &s.Max, p.Value)
		return
	case math.MaxInt64:
		return
	}
	s.Count++
	widen(&s.Min, &s.Max, p.Value)
	if p.Step >= s.LastStep {
		s.Last, s.LastStep, s.LastTime = p.Value, p.Step, p.Time
	}
	if p.Time < s.FirstTime {
		s.FirstTime = p.Time
	}
}

// Merge combines o, a summary of other points of the same metric, into s.
// Last comes from the summary with the greater LastStep, then the greater
// LastTime; on a full tie from o.
func (s *Summary) Merge(o Summary) {
	if o.Count <= 0 {
		return
	}
	if s.Count <= 0 {
		*s = o
		return
	}
	if s.Count > math.MaxInt64-o.Count {
		s.Count = math.MaxInt64
	} else {
		s.Count += o.Count
	}
	if o.Min == o.Min {
		widen(&s.Min, &s.Max, o.Min)
		widen(&s.Min, &s.Max, o.Max)
	}
	if o.LastStep > s.LastStep || (o.LastStep == s.LastStep && o.LastTime >= s.LastTime) {
		s.Last, s.LastStep, s.LastTime = o.Last, o.LastStep, o.LastTime
	}
	if o.FirstTime < s.FirstTime {
		s.FirstTime = o.FirstTime
	}
}

const summaryVersion = 1

// AppendBinary appends the encoding of s (see the package documentation).
// A Summary with Count <= 0 encodes as empty whatever its other fields.
func (s Summary) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, summaryVersion)
	if s.Count <= 0 {
		return append(b, 0), nil
	}
	b = appendUvarint(b, uint64(s.Count))
	b = appendFixed64(b, math.Float64bits(s.Min))
	b = appendFixed64(b, math.Float64bits(s.Max))
	b = appendFixed64(b, math.Float64bits(s.Last))
	b = appendVarint(b, s.LastStep)
	b = appendVarint(b, s.LastTime)
	b = appendUvarint(b, uint64(s.LastTime)-uint64(s.FirstTime))
	return b, nil
}

// MarshalBinary returns the encoding of s.
func (s Summary) MarshalBinary() ([]byte, error) { return s.AppendBinary(nil) }

// UnmarshalBinary decodes what MarshalBinary wrote. It rejects, with an
// error wrapping ErrMalformed, any bytes that are not the encoding of a
// summary Add and Merge can produce, and then leaves s unchanged.
func (s *Summary) UnmarshalBinary(b []byte) error {
	r := reader{b: b, what: "summary"}
	v, err := readSummary(&r)
	if err != nil {
		return err
	}
	if r.left() != 0 {
		return malformed("summary: %d trailing bytes", r.left())
	}
	*s = v
	return nil
}

func readSummary(r *reader) (Summary, error) {
	if ver := r.u8("version"); r.err == nil && ver != summaryVersion {
		r.fail("version", "unknown")
	}
	var s Summary
	c := r.uvarint("count")
	if r.err != nil || c == 0 {
		return Summary{}, r.err
	}
	if c > math.MaxInt64 {
		r.fail("count", "too large")
	}
	s.Count = int64(c)
	s.Min = math.Float64frombits(r.fixed64("min"))
	s.Max = math.Float64frombits(r.fixed64("max"))
	s.Last = math.Float64frombits(r.fixed64("last"))
	s.LastStep = r.varint("last step")
	s.LastTime = r.varint("last time")
	d := r.uvarint("first time")
	if r.err != nil {
		return Summary{}, r.err
	}
	// FirstTime = LastTime - d must not go below MinInt64.
	if d > uint64(s.LastTime)^(1<<63) {
		r.fail("first time", "out of range")
		return Summary{}, r.err
	}
	s.FirstTime = int64(uint64(s.LastTime) - d)
	switch {
	case !validRange(s.Min, s.Max):
		r.fail("min/max", "not a range")
	case !inRange(s.Last, s.Min, s.Max):
		r.fail("last", "outside min/max")
	case s.Count == 1 && (s.FirstTime != s.LastTime ||
		(s.Last == s.Last && math.Float64bits(s.Min) != math.Float64bits(s.Last)) ||
		(s.Last != s.Last && s.Min == s.Min)):
		r.fail("fields", "inconsistent with one point")
	case s.Count == 1 && math.Float64bits(s.Min) != math.Float64bits(s.Max):
		r.fail("fields", "inconsistent with one point")
	}
	if r.err != nil {
		return Summary{}, r.err
	}
	return s, nil
}
