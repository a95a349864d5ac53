package series

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func samePoints(a, b []Point) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Step != b[i].Step || a[i].Time != b[i].Time ||
			math.Float64bits(a[i].Value) != math.Float64bits(b[i].Value) {
			return false
		}
	}
	return true
}

func pts(vs ...float64) []Point {
	out := make([]Point, len(vs))
	for i, v := range vs {
		out[i] = Point{Step: int64(i), Value: v, Time: 1_700_000_000_000 + int64(i)*10}
	}
	return out
}

func TestBlockRoundTrip(t *testing.T) {
	const (
		lo = math.MinInt64
		hi = math.MaxInt64
	)
	nanPayload := math.Float64frombits(0x7FF0_0000_0000_0001)
	negNaN := math.Float64frombits(0xFFF8_0000_0000_0000)
	full := make([]Point, BlockSize)
	for i := range full {
		full[i] = Point{Step: int64(i) * 7, Value: float64(i) / 3, Time: int64(i) << 40}
	}
	tests := []struct {
		name string
		pts  []Point
	}{
		{"empty", nil},
		{"one", []Point{{Step: 0, Value: 1, Time: 0}}},
		{"specials", pts(math.NaN(), nanPayload, negNaN, math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0, math.SmallestNonzeroFloat64, math.MaxFloat64, -math.MaxFloat64)},
		{"constant", pts(2, 2, 2, 2, 2)},
		{"extreme steps", []Point{{Step: lo}, {Step: hi}, {Step: lo}, {Step: 0}, {Step: hi}, {Step: hi}, {Step: -1}, {Step: lo + 1}}},
		{"extreme times", []Point{{Time: hi}, {Time: lo}, {Time: hi}, {Time: 0}, {Time: lo}, {Time: lo}, {Time: 1}}},
		{"negative steps", []Point{{Step: -5}, {Step: -10}, {Step: -3}, {Step: -1 << 50}}},
		{"huge jumps", []Point{{Step: 0}, {Step: 1 << 62}, {Step: 3}, {Step: -(1 << 62)}, {Step: 1<<62 + 1}}},
		{"full", full},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendBlock(nil, tt.pts)
			got, err := DecodeBlock(b)
			if err != nil {
				t.Fatal(err)
			}
			if !samePoints(got, tt.pts) {
				t.Fatalf("got %v, want %v", got, tt.pts)
			}
			if again := AppendBlock(nil, got); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs")
			}
			// Appending to a non-empty buffer leaves its prefix alone.
			pre := []byte("prefix")
			if b2 := AppendBlock(pre, tt.pts); !bytes.Equal(b2[:6], pre) || !bytes.Equal(b2[6:], b) {
				t.Fatalf("AppendBlock with a prefix differs")
			}
			dst := []Point{{Step: 42}}
			got, err = AppendDecodeBlock(dst, b)
			if err != nil || !samePoints(got[1:], tt.pts) || got[0].Step != 42 {
				t.Fatalf("AppendDecodeBlock: %v, %v", got, err)
			}
		})
	}
}

func TestBlockRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 2000 {
		n := r.IntN(BlockSize + 1)
		ps := make([]Point, n)
		for i := range ps {
			switch iter % 3 {
			case 0: // arbitrary bits
				ps[i] = Point{Step: int64(r.Uint64()), Value: math.Float64frombits(r.Uint64()), Time: int64(r.Uint64())}
			case 1: // float32 values, small steps
				ps[i] = Point{Step: int64(i) + r.Int64N(3) - 1, Value: float64(r.Float32()), Time: int64(i) * 10}
			default: // repeats
				ps[i] = Point{Step: int64(r.IntN(4)), Value: float64(r.IntN(3)), Time: int64(r.IntN(4))}
			}
		}
		b := AppendBlock(nil, ps)
		got, err := DecodeBlock(b)
		if err != nil || !samePoints(got, ps) {
			t.Fatalf("iteration %d: %v", iter, err)
		}
	}
}

func TestBlockTooLargePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	AppendBlock(nil, make([]Point, BlockSize+1))
}

func TestDecodeBlockMalformed(t *testing.T) {
	good := AppendBlock(nil, pts(1.5, 2.5, 3.5))
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad version", cat([]byte{2}, good[1:])},
		{"version 0", []byte{0, 0}},
		{"no count", []byte{1}},
		{"truncated count", []byte{1, 0x80}},
		{"non-minimal count", []byte{1, 0x80, 0x00}},
		{"count > BlockSize", cat([]byte{1}, appendUvarint(nil, BlockSize+1), make([]byte, 3*(BlockSize+1)))},
		{"huge count", cat([]byte{1}, appendUvarint(nil, math.MaxUint64))},
		{"count beyond input", []byte{1, 5, 0, 0, 0}},
		{"trailing byte", cat(good, []byte{0})},
		{"truncated", good[:len(good)-1]},
		{"overlong varint", cat([]byte{1, 1}, bytes.Repeat([]byte{0xff}, 10), []byte{1, 0, 0})},
		{"varint overflows", cat([]byte{1, 1}, bytes.Repeat([]byte{0xff}, 9), []byte{2, 0, 0})},
		{"non-minimal step", []byte{1, 1, 0x81, 0x00, 0, 0}},
		{"truncated step", []byte{1, 1, 0x81, 0x81, 0x81}},
		{"value header > 64", []byte{1, 1, 0, 0, 65, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"value lz+tz > 7", []byte{1, 1, 0, 0, 1 + 8*4 + 4}},
		{"value leading zero byte", []byte{1, 1, 0, 0, 1 + 8*6, 0x01, 0x00}},
		{"value trailing zero byte", []byte{1, 1, 0, 0, 1 + 8*6, 0x00, 0x01}},
		{"value truncated", []byte{1, 1, 0, 0, 1, 1, 2, 3}},
		{"value bytes missing", []byte{1, 1, 0, 0, 1 + 8*7}},
		{"count zero with bytes", []byte{1, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []Point{{Step: 9}}
			got, err := AppendDecodeBlock(dst, tt.b)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if len(got) != 1 || got[0].Step != 9 {
				t.Fatalf("dst changed: %v", got)
			}
		})
	}
}

// TestVarint checks the minimal-varint reader against encoding/binary's
// writer at the edges.
func TestVarint(t *testing.T) {
	for _, x := range []uint64{0, 1, 127, 128, 255, 1 << 14, 1<<63 - 1, 1 << 63, math.MaxUint64} {
		b := appendUvarint(nil, x)
		var tmp [10]byte
		if n := putUvarint(tmp[:], x); !bytes.Equal(tmp[:n], b) {
			t.Fatalf("putUvarint(%d) = %x, appendUvarint %x", x, tmp[:n], b)
		}
		got, n := uvarint(b)
		if got != x || n != len(b) {
			t.Fatalf("uvarint(%x) = %d, %d", b, got, n)
		}
		if _, n := uvarint(b[:len(b)-1]); n != 0 {
			t.Fatalf("truncated %x: n = %d", b, n)
		}
	}
	for _, v := range []int64{0, -1, 1, math.MinInt64, math.MaxInt64} {
		if unzig(zig(v)) != v {
			t.Fatalf("zig-zag %d", v)
		}
	}
}

func TestXOR(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 100000 {
		x := r.Uint64()
		switch i % 4 {
		case 1:
			x >>= r.IntN(64)
		case 2:
			x <<= r.IntN(64)
		case 3:
			x = x >> r.IntN(64) << r.IntN(64)
		}
		var b [9]byte
		n := putXOR(b[:], x)
		got, m := getXOR(b[:n])
		if got != x || m != n {
			t.Fatalf("xor %x: got %x, %d (wrote %d)", x, got, m, n)
		}
		long := append(b[:n:n], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		if got, m := getXOR(long); got != x || m != n {
			t.Fatalf("xor %x followed by bytes: got %x, %d", x, got, m)
		}
	}
}
