package series

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

// fuzzPoints derives points from b: a mode byte, then 24 bytes per point
// read as raw fields (mode 0) or as small deltas and float32 values, the
// shape real series have (other modes).
func fuzzPoints(b []byte) []Point {
	if len(b) == 0 {
		return nil
	}
	mode, b := b[0], b[1:]
	var ps []Point
	var step, tm int64
	for len(b) >= 24 && len(ps) < BlockSize {
		x, y, z := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:])
		b = b[24:]
		if mode%2 == 0 {
			ps = append(ps, Point{Step: int64(x), Value: math.Float64frombits(y), Time: int64(z)})
			continue
		}
		step += int64(int8(x))
		tm += int64(int16(z))
		ps = append(ps, Point{Step: step, Value: float64(math.Float32frombits(uint32(y))), Time: tm})
	}
	return ps
}

func seedPoints() [][]Point {
	loss := make([]Point, 300)
	for i := range loss {
		loss[i] = Point{Step: int64(i), Value: 2.5 * math.Exp(-float64(i)/100) * (1 + 0.01*math.Sin(float64(i)*7)), Time: 1_700_000_000_000 + int64(i)*10}
	}
	f32 := make([]Point, 64)
	for i := range f32 {
		f32[i] = Point{Step: int64(i) * 100, Value: float64(float32(1 / float64(i+1))), Time: int64(i) * 1000}
	}
	return [][]Point{
		nil,
		{{Step: 0, Value: 1, Time: 0}},
		{{Step: math.MinInt64, Value: math.NaN(), Time: math.MaxInt64}, {Step: math.MaxInt64, Value: math.Inf(-1), Time: math.MinInt64}},
		{{Step: 5, Value: math.Copysign(0, -1)}, {Step: 5, Value: 0}, {Step: 4, Value: math.Float64frombits(0x7FF0000000000001)}},
		loss,
		f32,
	}
}

func FuzzDecodeBlock(f *testing.F) {
	for _, ps := range seedPoints() {
		f.Add(AppendBlock(nil, ps))
	}
	f.Add([]byte{1, 0x80, 0x00})
	f.Add([]byte{1, 1, 0, 0, 1 + 8*6, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := DecodeBlock(b)
		if err != nil {
			if ps != nil {
				t.Fatalf("points with an error")
			}
			return
		}
		if len(ps) > BlockSize || len(ps) > len(b)/3 {
			t.Fatalf("%d points from %d bytes", len(ps), len(b))
		}
		if again := AppendBlock(nil, ps); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}

func FuzzBlockRoundTrip(f *testing.F) {
	f.Add([]byte{})
	f.Add(append([]byte{0}, bytes.Repeat([]byte{0xff}, 48)...))
	f.Add(append([]byte{1}, bytes.Repeat([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0}, 20)...))
	f.Add(append([]byte{0}, bytes.Repeat([]byte{0, 0, 0, 0, 0, 0, 0, 0x80, 1, 0, 0, 0, 0, 0, 0xf8, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 3)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps := fuzzPoints(b)
		enc := AppendBlock([]byte("x"), ps)
		got, err := AppendDecodeBlock(nil, enc[1:])
		if err != nil {
			t.Fatal(err)
		}
		if !samePoints(got, ps) {
			t.Fatalf("round trip differs")
		}
		if len(enc)-1 > 2+len(ps)*maxBlockPointBytes {
			t.Fatalf("%d bytes for %d points", len(enc)-1, len(ps))
		}
	})
}

func seedDownsamples() [][]byte {
	var out [][]byte
	for _, target := range []int{1, 2, 8, 1024} {
		for _, ps := range seedPoints() {
			d := NewDownsample(target)
			for range 3 {
				for _, p := range ps {
					d.Add(p)
				}
			}
			b, _ := d.MarshalBinary()
			out = append(out, b)
		}
	}
	return out
}

func FuzzDownsampleUnmarshal(f *testing.F) {
	for _, b := range seedDownsamples() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Downsample
		if err := d.UnmarshalBinary(b); err != nil {
			return
		}
		again, _ := d.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatalf("re-marshal differs:\n%x\n%x", b, again)
		}
		var total int64
		for _, c := range d.Buckets() {
			total += c.Count
		}
		if total != d.Len() {
			t.Fatalf("counts sum to %d, Len %d", total, d.Len())
		}
		for _, n := range []int{1, 3, 100} {
			if got := d.Points(n); len(got) > n {
				t.Fatalf("Points(%d) gave %d", n, len(got))
			}
		}
		// Adding continues to give valid, equivalent states.
		e := d
		e.buckets = d.Buckets()
		for i := range min(2*d.Target()+3, 1000) {
			p := Point{Step: int64(i), Value: float64(i % 7), Time: int64(i)}
			d.Add(p)
			e.Add(p)
		}
		x, _ := d.MarshalBinary()
		var f Downsample
		if err := f.UnmarshalBinary(x); err != nil {
			t.Fatalf("after adds: %v", err)
		}
		y, _ := e.MarshalBinary()
		if !bytes.Equal(x, y) {
			t.Fatal("copies diverged")
		}
	})
}

func FuzzSummaryUnmarshal(f *testing.F) {
	for _, ps := range seedPoints() {
		b, _ := summarize(ps).MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Summary
		if err := s.UnmarshalBinary(b); err != nil {
			return
		}
		again, _ := s.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatalf("re-marshal differs:\n%x\n%x", b, again)
		}
		s.Add(Point{Step: 1, Value: 2, Time: 3})
		s.Merge(s)
		x, _ := s.MarshalBinary()
		if err := new(Summary).UnmarshalBinary(x); err != nil && s.Count < math.MaxInt64 {
			t.Fatalf("after Add and Merge: %v", err)
		}
	})
}

func FuzzStateUnmarshal(f *testing.F) {
	for _, target := range []int{1, 8} {
		for _, ps := range seedPoints() {
			st := State{Downsample: *NewDownsample(target)}
			for _, p := range ps {
				st.Add(p)
			}
			b, _ := st.MarshalBinary()
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var st State
		if err := st.UnmarshalBinary(b); err != nil {
			return
		}
		again, _ := st.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatalf("re-marshal differs")
		}
		var s Series
		err := s.Restore(b, st.Summary.Count, func(int64) ([]byte, error) {
			return AppendBlock(nil, make([]Point, st.Summary.Count%BlockSize)), nil
		})
		if err == nil && s.Len() != st.Summary.Count {
			t.Fatalf("restored %d points", s.Len())
		}
	})
}

// FuzzDownsampleAdd checks a downsample built from fuzzed points against
// brute force, with a small target.
func FuzzDownsampleAdd(f *testing.F) {
	f.Add(byte(1), []byte{})
	f.Add(byte(3), append([]byte{1}, bytes.Repeat([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0}, 40)...))
	f.Fuzz(func(t *testing.T, target byte, b []byte) {
		ps := fuzzPoints(b)
		d := NewDownsample(int(target%8) + 1)
		for _, p := range ps {
			d.Add(p)
		}
		checkDownsample(t, d, ps)
	})
}
