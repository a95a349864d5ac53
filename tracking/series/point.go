package series

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Point is one metric observation.
type Point struct {
	Step  int64
	Value float64
	Time  int64 // Unix milliseconds
}

const (
	// BlockSize is the most points one block holds. Point i of a series
	// (counting from 0 in arrival order) is in block i/BlockSize.
	BlockSize = 1024

	// Target is the default downsample target: a Downsample keeps between
	// Target+1 and 2*Target buckets once it has more than 2*Target points.
	Target = 1024

	// MaxTarget is the largest target a Downsample accepts.
	MaxTarget = 1 << 16
)

// ErrMalformed is wrapped by every error returned for bytes that are not a
// valid encoding.
var ErrMalformed = errors.New("series: malformed encoding")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// BlockNumber is the number of the block that holds point i (counting from
// 0 in arrival order).
func BlockNumber(i int64) int64 { return i / BlockSize }

// nanBits is the NaN that Min and Max hold while no non-NaN value has been
// seen; it is math.NaN().
const nanBits = 0x7FF8000000000001

var canonicalNaN = math.Float64frombits(nanBits)

// less orders non-NaN floats, with -0 before +0 so that minima and maxima
// do not depend on arrival order.
func less(a, b float64) bool {
	return a < b || (a == b && a == 0 && math.Signbit(a) && !math.Signbit(b))
}

// widen extends the NaN-ignoring range [*lo, *hi] by v. An empty range is
// lo = hi = canonical NaN.
func widen(lo, hi *float64, v float64) {
	if v != v {
		return
	}
	if *lo != *lo {
		*lo, *hi = v, v
		return
	}
	if less(v, *lo) {
		*lo = v
	}
	if less(*hi, v) {
		*hi = v
	}
}

// validRange reports whether lo, hi can be a NaN-ignoring range: both the
// canonical NaN, or both non-NaN with lo <= hi.
func validRange(lo, hi float64) bool {
	if lo != lo || hi != hi {
		return math.Float64bits(lo) == nanBits && math.Float64bits(hi) == nanBits
	}
	return !less(hi, lo)
}

// inRange reports whether v can be a value summarized by the valid range
// [lo, hi]: NaN always can; another value only if it lies in a non-empty
// range.
func inRange(v, lo, hi float64) bool {
	if v != v {
		return true
	}
	return lo == lo && !less(v, lo) && !less(hi, v)
}

func zig(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzig(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// putUvarint writes x at b[0:] (which must have room for 10 bytes) and
// returns the number of bytes written. The encoding is minimal.
func putUvarint(b []byte, x uint64) int {
	if x < 0x80 {
		b[0] = byte(x)
		return 1
	}
	i := 0
	for x >= 0x80 {
		b[i] = byte(x) | 0x80
		x >>= 7
		i++
	}
	b[i] = byte(x)
	return i + 1
}

// uvarint decodes a minimally encoded uvarint at the start of b. It
// returns the value and the bytes read, or n == 0 if b ends inside it and
// n < 0 if it is longer than 10 bytes, overflows 64 bits or is not
// minimal (ends in a zero byte after the first).
func uvarint(b []byte) (x uint64, n int) {
	for i, c := range b {
		if i == 10 {
			return 0, -1
		}
		if c < 0x80 {
			if (c == 0 && i > 0) || (i == 9 && c > 1) {
				return 0, -1
			}
			return x | uint64(c)<<(7*i), i + 1
		}
		x |= uint64(c&0x7f) << (7 * i)
	}
	return 0, 0
}

// putXOR writes x, the XOR of a value's bits with its predecessor's, at
// b[0:], which must have room for 9 bytes, and returns the bytes written:
// a header byte, 0 for x == 0 and otherwise 1 + 8*lz + tz where lz and tz
// count the leading and trailing zero bytes of x, then the 8-lz-tz bytes
// between them, least significant first.
func putXOR(b []byte, x uint64) int {
	if x == 0 {
		b[0] = 0
		return 1
	}
	lz := bits.LeadingZeros64(x) >> 3
	tz := bits.TrailingZeros64(x) >> 3
	b[0] = byte(1 + lz<<3 + tz)
	binary.LittleEndian.PutUint64(b[1:9], x>>(8*tz))
	return 9 - lz - tz
}

// getXOR decodes what putXOR wrote at the start of b. n == 0 means b ends
// inside it, n < 0 that it is not an encoding putXOR produces.
func getXOR(b []byte) (x uint64, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	h := b[0]
	if h == 0 {
		return 0, 1
	}
	if h > 64 {
		return 0, -1
	}
	lz, tz := int(h-1)>>3, int(h-1)&7
	k := 8 - lz - tz
	if k <= 0 {
		return 0, -1
	}
	if len(b) <= k {
		return 0, 0
	}
	var v uint64
	if len(b) >= 9 {
		v = binary.LittleEndian.Uint64(b[1:9]) & (^uint64(0) >> (64 - 8*k))
	} else {
		for i := k; i >= 1; i-- {
			v = v<<8 | uint64(b[i])
		}
	}
	if v&0xff == 0 || v>>(8*(k-1)) == 0 {
		return 0, -1
	}
	return v << (8 * tz), k + 1
}

// reader decodes a sequence of fields, remembering the first error.
type reader struct {
	b    []byte
	off  int
	err  error
	what string // what is being decoded, for errors
}

func (r *reader) fail(field, why string) {
	if r.err == nil {
		r.err = malformed("%s: %s at offset %d: %s", r.what, field, r.off, why)
	}
}

func (r *reader) u8(field string) byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail(field, "truncated")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) uvarint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	x, n := uvarint(r.b[r.off:])
	if n <= 0 {
		if n == 0 {
			r.fail(field, "truncated varint")
		} else {
			r.fail(field, "bad varint")
		}
		return 0
	}
	r.off += n
	return x
}

func (r *reader) varint(field string) int64 { return unzig(r.uvarint(field)) }

func (r *reader) xor(field string) uint64 {
	if r.err != nil {
		return 0
	}
	x, n := getXOR(r.b[r.off:])
	if n <= 0 {
		if n == 0 {
			r.fail(field, "truncated value")
		} else {
			r.fail(field, "bad value encoding")
		}
		return 0
	}
	r.off += n
	return x
}

func (r *reader) fixed64(field string) uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b)-r.off < 8 {
		r.fail(field, "truncated")
		return 0
	}
	x := binary.LittleEndian.Uint64(r.b[r.off:])
	r.off += 8
	return x
}

func (r *reader) left() int { return len(r.b) - r.off }

// appendUvarint appends the minimal uvarint encoding of x.
func appendUvarint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

func appendVarint(b []byte, v int64) []byte { return appendUvarint(b, zig(v)) }

func appendXOR(b []byte, x uint64) []byte {
	var tmp [9]byte
	n := putXOR(tmp[:], x)
	return append(b, tmp[:n]...)
}

func appendFixed64(b []byte, x uint64) []byte { return binary.LittleEndian.AppendUint64(b, x) }
