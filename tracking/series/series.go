package series

import (
	"fmt"
	"math"
)

// State is what a series keeps besides its blocks: the Summary and the
// Downsample. Its encoding is the value a caller stores next to the
// blocks; readers decode it to list or plot a series without reading
// blocks. Points go in through Add, which keeps the parts in step (the
// decoder checks that they agree). The zero value is an empty state with
// the default target.
type State struct {
	Summary    Summary
	Downsample Downsample
}

// Add adds one point to both parts.
func (st *State) Add(p Point) {
	if st.Summary.Count == math.MaxInt64 {
		return
	}
	st.Summary.Add(p)
	st.Downsample.Add(p)
}

const stateVersion = 1

// AppendBinary appends the encoding of st. It never fails.
func (st *State) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, stateVersion)
	b, _ = st.Summary.AppendBinary(b)
	return st.Downsample.AppendBinary(b)
}

// MarshalBinary returns the encoding of st. It never fails.
func (st *State) MarshalBinary() ([]byte, error) { return st.AppendBinary(nil) }

// UnmarshalBinary replaces st by the state encoded in b. Besides checking
// each part as their own UnmarshalBinary does, it checks that they agree
// on the count and on Min and Max. On error st is unchanged.
func (st *State) UnmarshalBinary(b []byte) error {
	r := reader{b: b, what: "state"}
	if ver := r.u8("version"); r.err == nil && ver != stateVersion {
		r.fail("version", "unknown")
	}
	if r.err != nil {
		return r.err
	}
	r.what = "summary"
	sum, err := readSummary(&r)
	if err != nil {
		return err
	}
	r.what = "downsample"
	var ds Downsample
	if err := ds.read(&r); err != nil {
		return err
	}
	if r.left() != 0 {
		return malformed("state: %d trailing bytes", r.left())
	}
	if sum.Count != ds.total {
		return malformed("state: summary counts %d points, downsample %d", sum.Count, ds.total)
	}
	if sum.Count > 0 {
		lo, hi := canonicalNaN, canonicalNaN
		for i := range ds.buckets {
			if b := &ds.buckets[i]; b.Min == b.Min {
				widen(&lo, &hi, b.Min)
				widen(&lo, &hi, b.Max)
			}
		}
		if math.Float64bits(lo) != math.Float64bits(sum.Min) || math.Float64bits(hi) != math.Float64bits(sum.Max) {
			return malformed("state: summary and downsample disagree on min/max")
		}
	}
	st.Summary, st.Downsample = sum, ds
	return nil
}

// Block is one encoded block to store under its number.
type Block struct {
	Number int64
	Data   []byte // AppendBlock encoding
}

// Checkpoint is what a caller writes, in one atomic batch, to persist a
// Series: every block in Blocks under its number (overwriting), and State
// if present. Once written, the caller reports Len to Committed, and
// keeps Len where Restore can find it (see Series.Restore).
type Checkpoint struct {
	Len    int64   // points the blocks hold once written
	Blocks []Block // ascending numbers; only the last may be partial
	State  []byte  // State encoding, if asked for
}

// Series is one metric series being appended to: its State, plus the
// points of the current block and the full blocks not yet committed.
// Point i goes to block i/BlockSize (see BlockNumber); a block holds
// BlockSize points except the last, which holds 1 to BlockSize. A Series
// is not safe for concurrent use. The zero value is an empty series whose
// downsample has the default target.
type Series struct {
	st      State
	pending []Point // points of block Len()/BlockSize
	sealed  []Block // full blocks not yet committed
	acked   int64   // Len at the last Committed
	scratch []byte
}

// NewSeries returns an empty series whose downsample has the given target
// (<= 0 means Target). It panics if target > MaxTarget.
func NewSeries(target int) *Series {
	return &Series{st: State{Downsample: *NewDownsample(target)}}
}

// Add appends a point. When it fills a block, the block is encoded and
// kept until Committed covers it. Points beyond math.MaxInt64 are ignored.
func (s *Series) Add(p Point) {
	if s.st.Summary.Count == math.MaxInt64 {
		return
	}
	s.st.Summary.Add(p)
	s.st.Downsample.Add(p)
	s.pending = append(s.pending, p)
	if len(s.pending) == BlockSize {
		s.seal()
	}
}

func (s *Series) seal() {
	s.scratch = AppendBlock(s.scratch[:0], s.pending)
	s.sealed = append(s.sealed, Block{
		Number: BlockNumber(s.st.Summary.Count - 1),
		Data:   append([]byte(nil), s.scratch...),
	})
	s.pending = s.pending[:0]
}

// Len returns the number of points.
func (s *Series) Len() int64 { return s.st.Summary.Count }

// Blocks returns the number of blocks holding points: ceil(Len/BlockSize).
func (s *Series) Blocks() int64 { return (s.Len() + BlockSize - 1) / BlockSize }

// Summary returns the summary.
func (s *Series) Summary() Summary { return s.st.Summary }

// Points returns the downsample merged to at most n buckets; see
// Downsample.Points.
func (s *Series) Points(n int) []Bucket { return s.st.Downsample.Points(n) }

// Pending returns a copy of the points of the block being filled, block
// number Len()/BlockSize; it is empty right after a block fills.
func (s *Series) Pending() []Point { return append([]Point(nil), s.pending...) }

// AppendState appends the encoding of the series' State.
func (s *Series) AppendState(b []byte) []byte {
	b, _ = s.st.AppendBinary(b)
	return b
}

// Checkpoint returns what to write to persist every point added so far:
// the full blocks sealed since the last Committed, then the block being
// filled if it changed; and the state if withState. The partial block
// and the state are appended to buf, and the extended buf is returned
// for reuse once the checkpoint is written. Full blocks' Data is never
// modified afterwards.
//
// If nothing was added since the last Committed, Blocks is empty. A
// checkpoint not written (a failed batch) costs nothing: the next one
// covers its points too.
//
// The state of a long series is some 40 bytes per bucket (about 60 KB
// with the default target), so a caller may write it less often than the
// blocks, say every minute and when the series goes idle; Restore then
// re-adds the points written since from the blocks.
func (s *Series) Checkpoint(buf []byte, withState bool) (Checkpoint, []byte) {
	cp := Checkpoint{Len: s.Len()}
	start := len(buf)
	if withState {
		buf = s.AppendState(buf)
	}
	mid := len(buf)
	partial := len(s.pending) > 0 && s.Len() > s.acked
	if partial {
		buf = AppendBlock(buf, s.pending)
	}
	if withState {
		cp.State = buf[start:mid:mid]
	}
	cp.Blocks = make([]Block, 0, len(s.sealed)+1)
	cp.Blocks = append(cp.Blocks, s.sealed...)
	if partial {
		cp.Blocks = append(cp.Blocks, Block{Number: BlockNumber(s.Len()), Data: buf[mid:len(buf):len(buf)]})
	}
	return cp, buf
}

// Committed reports that the checkpoint with Len n has been written, so
// that full blocks it covers are no longer kept. Reporting an older
// checkpoint than one already reported does nothing; n above Len counts
// as Len.
func (s *Series) Committed(n int64) {
	n = min(n, s.Len())
	if n <= s.acked {
		return
	}
	s.acked = n
	k := 0
	for k < len(s.sealed) && s.sealed[k].Number < BlockNumber(n) {
		k++
	}
	clear(s.sealed[:k])
	s.sealed = s.sealed[:copy(s.sealed, s.sealed[k:])]
}

// Reset empties the series, keeping its downsample target. Deleting the
// blocks already written is the caller's business.
func (s *Series) Reset() {
	s.st.Summary = Summary{}
	s.st.Downsample.Reset()
	s.pending = s.pending[:0]
	clear(s.sealed)
	s.sealed = s.sealed[:0]
	s.acked = 0
}

// Restore replaces s by a persisted series: n is the Len of the last
// checkpoint written, state the State written with it or with an earlier
// one (empty to rebuild from the blocks alone, keeping s's target), and
// block reads a stored block by number. Restore reads the blocks holding
// points from the state's count up to n, adds those points to the state,
// and keeps the points of a partial last block so that Add continues in
// it; with a current state it reads only a partial last block. The
// result is exactly the series that never stopped, counted as committed.
//
// n is for the caller to keep, in the same batch as the blocks, or to
// derive from the highest block number k stored and the length of that
// block: k*BlockSize + len. Restore checks that each block holds the
// points n implies and that the state's last point is where the blocks
// say; on error s is unchanged. Errors from block are returned wrapped.
func (s *Series) Restore(state []byte, n int64, block func(number int64) ([]byte, error)) error {
	st := State{Downsample: Downsample{target: s.st.Downsample.target}}
	if len(state) > 0 {
		if err := st.UnmarshalBinary(state); err != nil {
			return err
		}
	}
	c := st.Summary.Count
	if n < 0 {
		return fmt.Errorf("series: restoring %d points", n)
	}
	if n < c {
		return fmt.Errorf("series: the state holds %d points, more than the %d stored: %w", c, n, ErrMalformed)
	}
	var pts []Point
	for k := BlockNumber(c); k*BlockSize < n; k++ {
		data, err := block(k)
		if err != nil {
			return fmt.Errorf("series: reading block %d: %w", k, err)
		}
		pts, err = AppendDecodeBlock(pts[:0], data)
		if err != nil {
			return fmt.Errorf("series: block %d: %w", k, err)
		}
		if want := min(BlockSize, n-k*BlockSize); int64(len(pts)) != want {
			return fmt.Errorf("series: block %d holds %d points, want %d: %w", k, len(pts), want, ErrMalformed)
		}
		from := max(c-k*BlockSize, 0)
		if from > 0 {
			p := pts[from-1]
			b := st.Downsample.buckets[len(st.Downsample.buckets)-1]
			if p.Step != b.LastStep || p.Time != b.LastTime || math.Float64bits(p.Value) != math.Float64bits(b.Last) {
				return fmt.Errorf("series: block %d does not hold the state's last point: %w", k, ErrMalformed)
			}
		}
		for _, p := range pts[from:] {
			st.Add(p)
		}
	}
	s.Reset()
	s.st = st
	if n%BlockSize != 0 {
		s.pending = append(s.pending, pts...)
	}
	s.acked = n
	return nil
}
