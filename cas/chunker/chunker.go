// Package chunker cuts a byte stream into content-defined chunks.
//
// The cut points depend only on the bytes near them (a gear hash over the
// last 64 bytes), so inserting or deleting bytes in the middle of a file
// moves only the chunks around the edit; every other chunk keeps its id and
// is stored once. This is the FastCDC scheme (Xia et al., USENIX ATC '16)
// with normalized chunking: below the average size a cut needs more zero
// hash bits than above it, which narrows the spread of chunk sizes.
//
// The boundaries are part of the storage format. The gear table, the masks
// and the sizes below must never change for a given Version: a change would
// make every stored file look new. The golden test pins them.
package chunker

import (
	"errors"
	"io"
	"math/bits"
)

// Version names the chunking parameters below. A store records it.
const Version = 1

// Chunk size limits, in bytes. A 1% edit spread over ten places of a 1 GiB
// file costs about 10 × 2 × Avg of rewritten chunks plus the new bytes, so
// 64 KiB keeps that well under 2% of the file while keeping object counts
// (and per-object costs) moderate.
const (
	MinSize = 16 << 10
	AvgSize = 64 << 10
	MaxSize = 256 << 10
)

var (
	logAvg = uint(bits.Len(AvgSize) - 1)
	// maskS is harder to satisfy (two more bits) than the average asks for;
	// it applies before AvgSize. maskL is easier and applies after.
	maskS = ^uint64(0) << (64 - (logAvg + 2))
	maskL = ^uint64(0) << (64 - (logAvg - 2))
)

// gear is the table of the gear hash, filled from a fixed splitmix64 seed.
var gear = func() (g [256]uint64) {
	x := uint64(0x6d6c66732d636463) // "mlfs-cdc"
	for i := range g {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		g[i] = z ^ z>>31
	}
	return g
}()

// Cut returns the length of the first chunk of data, assuming data holds
// everything up to the end of the stream or at least MaxSize bytes.
func Cut(data []byte) int {
	n := len(data)
	if n <= MinSize {
		return n
	}
	if n > MaxSize {
		n = MaxSize
	}
	normal := AvgSize
	if n < normal {
		normal = n
	}
	h, i, ok := scan(data, 0, MinSize, normal, maskS)
	if ok {
		return i
	}
	if _, i, ok = scan(data, h, normal, n, maskL); ok {
		return i
	}
	return n
}

// scan rolls the gear hash h over data[from:to] and returns the length of
// the chunk ending at the first byte after which h&mask is zero, with ok;
// else the hash at to. It steps two bytes at a time: h<<2 + (g1<<1 + g2)
// is the same hash as two single steps, but its chain of dependent
// operations is half as long, and the hash after the first byte is checked
// too, so the cut points are exactly those of the byte-by-byte loop.
func scan(data []byte, h uint64, from, to int, mask uint64) (uint64, int, bool) {
	d := data[from:to]
	i := 0
	for ; i+1 < len(d); i += 2 {
		g1, g2 := gear[d[i]], gear[d[i+1]]
		h1 := h<<1 + g1
		h = h<<2 + (g1<<1 + g2)
		if h1&mask == 0 {
			return h1, from + i + 1, true
		}
		if h&mask == 0 {
			return h, from + i + 2, true
		}
	}
	if i < len(d) {
		h = h<<1 + gear[d[i]]
		if h&mask == 0 {
			return h, from + i + 1, true
		}
	}
	return h, to, false
}

// Chunker reads a stream and returns its chunks in order.
type Chunker struct {
	r        io.Reader
	buf      []byte
	pos, end int
	eof      bool
}

// bufSize is how much the Chunker reads ahead; large reads keep syscalls
// and the cost of moving the tail down small.
const bufSize = 1 << 20

// New returns a Chunker reading r.
func New(r io.Reader) *Chunker {
	return &Chunker{r: r, buf: make([]byte, bufSize)}
}

// Reset makes c read r from its start, keeping the buffer.
func (c *Chunker) Reset(r io.Reader) {
	c.r, c.pos, c.end, c.eof = r, 0, 0, false
}

// Next returns the next chunk, or io.EOF after the last one. The returned
// slice is valid only until the next call to Next.
func (c *Chunker) Next() ([]byte, error) {
	if c.end-c.pos < MaxSize && !c.eof {
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
	if c.pos == c.end {
		return nil, io.EOF
	}
	n := Cut(c.buf[c.pos:c.end])
	chunk := c.buf[c.pos : c.pos+n]
	c.pos += n
	return chunk, nil
}

func (c *Chunker) fill() error {
	c.end = copy(c.buf, c.buf[c.pos:c.end])
	c.pos = 0
	for c.end < len(c.buf) {
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		if errors.Is(err, io.EOF) {
			c.eof = true
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}
