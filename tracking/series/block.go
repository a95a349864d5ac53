package series

import (
	"math"
	"slices"
)

// blockVersion is the first byte of every block.
const blockVersion = 1

// maxBlockPointBytes bounds the encoding of one point: two 10-byte varints
// and a 9-byte value.
const maxBlockPointBytes = 10 + 10 + 9

// minBlockPointBytes is the least a point can take: one byte per column.
const minBlockPointBytes = 3

// AppendBlock appends the encoding of pts to dst and returns the extended
// buffer. The encoding is canonical: equal point slices (compared bit for
// bit) give equal bytes. It panics if len(pts) > BlockSize, since such a
// block would not decode.
func AppendBlock(dst []byte, pts []Point) []byte {
	if len(pts) > BlockSize {
		panic("series: AppendBlock: more than BlockSize points")
	}
	start := len(dst)
	dst = slices.Grow(dst, 1+10+len(pts)*maxBlockPointBytes)
	b := dst[:cap(dst)]
	off := start
	b[off] = blockVersion
	off++
	off += putUvarint(b[off:], uint64(len(pts)))
	var prev int64
	for i := range pts {
		s := pts[i].Step
		off += putUvarint(b[off:], zig(s-prev))
		prev = s
	}
	prev = 0
	for i := range pts {
		t := pts[i].Time
		off += putUvarint(b[off:], zig(t-prev))
		prev = t
	}
	var pv uint64
	for i := range pts {
		v := math.Float64bits(pts[i].Value)
		off += putXOR(b[off:], v^pv)
		pv = v
	}
	return b[:off]
}

// DecodeBlock decodes a block written by AppendBlock.
func DecodeBlock(b []byte) ([]Point, error) {
	return AppendDecodeBlock(nil, b)
}

// AppendDecodeBlock decodes a block and appends its points to dst. On
// error it returns dst unchanged (though its spare capacity may have been
// written) and an error wrapping ErrMalformed. It allocates at most room
// for min(BlockSize, len(b)/3) points.
func AppendDecodeBlock(dst []Point, b []byte) ([]Point, error) {
	if len(b) == 0 {
		return dst, malformed("block: empty")
	}
	if b[0] != blockVersion {
		return dst, malformed("block: unknown version %d", b[0])
	}
	cnt, n := uvarint(b[1:])
	if n <= 0 {
		return dst, malformed("block: bad count")
	}
	off := 1 + n
	if cnt > BlockSize {
		return dst, malformed("block: count %d exceeds BlockSize", cnt)
	}
	if cnt*minBlockPointBytes > uint64(len(b)-off) {
		return dst, malformed("block: count %d does not fit in %d bytes", cnt, len(b)-off)
	}
	orig, start := dst, len(dst)
	dst = slices.Grow(dst, int(cnt))
	pts := dst[start : start+int(cnt)]

	var prev int64
	for i := range pts {
		var u uint64
		if off < len(b) && b[off] < 0x80 {
			u = uint64(b[off])
			off++
		} else {
			u, n = uvarint(b[off:])
			if n <= 0 {
				return orig, malformed("block: step %d: bad varint", i)
			}
			off += n
		}
		prev += unzig(u)
		pts[i].Step = prev
	}
	prev = 0
	for i := range pts {
		var u uint64
		if off < len(b) && b[off] < 0x80 {
			u = uint64(b[off])
			off++
		} else {
			u, n = uvarint(b[off:])
			if n <= 0 {
				return orig, malformed("block: time %d: bad varint", i)
			}
			off += n
		}
		prev += unzig(u)
		pts[i].Time = prev
	}
	var pv uint64
	for i := range pts {
		x, n := getXOR(b[off:])
		if n <= 0 {
			return orig, malformed("block: value %d: bad encoding", i)
		}
		off += n
		pv ^= x
		pts[i].Value = math.Float64frombits(pv)
	}
	if off != len(b) {
		return orig, malformed("block: %d trailing bytes", len(b)-off)
	}
	return dst[:start+int(cnt)], nil
}
