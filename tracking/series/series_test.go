package series

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// store is a stand-in for the daemon's KV: block number -> encoding, plus
// the state.
type store struct {
	blocks map[int64][]byte
	state  []byte
	n      int64 // Len of the last checkpoint written
}

func (st *store) write(cp Checkpoint) {
	for _, b := range cp.Blocks {
		st.blocks[b.Number] = append([]byte(nil), b.Data...)
	}
	if cp.State != nil {
		st.state = append([]byte(nil), cp.State...)
	}
	st.n = cp.Len
}

func (st *store) read(n int64) ([]byte, error) {
	b, ok := st.blocks[n]
	if !ok {
		return nil, fmt.Errorf("block %d: %w", n, errNotFound)
	}
	return b, nil
}

var errNotFound = errors.New("not found")

func refState(t *testing.T, target int, ps []Point) []byte {
	t.Helper()
	st := State{Downsample: *NewDownsample(target)}
	for _, p := range ps {
		st.Add(p)
	}
	b, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSeriesCrashRecovery plays the daemon: it adds points, checkpoints
// now and then (some batches fail and are not written, some leave the
// state out), crashes at random and restores from what was written,
// re-adding the points after the last checkpoint written. The store must
// end up holding every point in its blocks and the same state as a
// series that never stopped.
func TestSeriesCrashRecovery(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for iter := range 60 {
		target := []int{2, 8, 0}[iter%3]
		n := r.IntN(20 * BlockSize)
		if iter < 3 {
			n = []int{0, BlockSize, 2 * BlockSize}[iter]
		}
		stateEvery := []int{1, 1, 3, 20}[iter%4]
		ps := randomPoints(r, n)
		db := &store{blocks: map[int64][]byte{}}
		s := NewSeries(target)
		var buf, stateAtWrite []byte
		commits := 0
		for i := 0; i < len(ps); {
			s.Add(ps[i])
			i++
			switch r.IntN(300) {
			case 0, 1, 2: // a commit
				var cp Checkpoint
				commits++
				cp, buf = s.Checkpoint(buf[:0], commits%stateEvery == 0)
				if cp.Len != int64(i) {
					t.Fatalf("checkpoint Len %d, want %d", cp.Len, i)
				}
				if r.IntN(4) == 0 {
					break // the batch failed
				}
				db.write(cp)
				s.Committed(cp.Len)
				stateAtWrite = s.AppendState(stateAtWrite[:0])
			case 3: // a crash
				s = NewSeries(target)
				if err := s.Restore(db.state, db.n, db.read); err != nil {
					t.Fatalf("iteration %d, restore at %d: %v", iter, db.n, err)
				}
				if s.Len() != db.n {
					t.Fatalf("restored Len %d, want %d", s.Len(), db.n)
				}
				if db.n > 0 && !bytes.Equal(s.AppendState(nil), stateAtWrite) {
					t.Fatalf("iteration %d: restored state differs", iter)
				}
				i = int(db.n)
			}
		}
		cp, _ := s.Checkpoint(nil, true)
		db.write(cp)
		s.Committed(cp.Len)

		if s.Len() != int64(n) || s.Blocks() != int64((n+BlockSize-1)/BlockSize) {
			t.Fatalf("Len %d, Blocks %d for %d points", s.Len(), s.Blocks(), n)
		}
		if len(s.sealed) != 0 {
			t.Fatalf("%d sealed blocks kept after the last commit", len(s.sealed))
		}
		var all []Point
		for k := int64(0); k < s.Blocks(); k++ {
			b, err := db.read(k)
			if err != nil {
				t.Fatal(err)
			}
			before := len(all)
			all, err = AppendDecodeBlock(all, b)
			if err != nil {
				t.Fatal(err)
			}
			if k < s.Blocks()-1 && len(all)-before != BlockSize {
				t.Fatalf("block %d holds %d points", k, len(all)-before)
			}
		}
		if !samePoints(all, ps) {
			t.Fatalf("iteration %d: blocks do not hold the points", iter)
		}
		if len(db.blocks) != int(s.Blocks()) {
			t.Fatalf("%d blocks stored, want %d", len(db.blocks), s.Blocks())
		}
		if !bytes.Equal(db.state, refState(t, target, ps)) {
			t.Fatalf("iteration %d: state differs from a series that never stopped", iter)
		}
		if !samePoints(s.Pending(), ps[n/BlockSize*BlockSize:]) {
			t.Fatalf("Pending differs")
		}
		// Rebuilding from the blocks alone gives the same state.
		rebuilt := NewSeries(target)
		if err := rebuilt.Restore(nil, db.n, db.read); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rebuilt.AppendState(nil), db.state) {
			t.Fatalf("iteration %d: rebuilt state differs", iter)
		}
	}
}

func TestSeriesCheckpoint(t *testing.T) {
	var s Series
	cp, _ := s.Checkpoint(nil, true)
	if cp.Len != 0 || len(cp.Blocks) != 0 {
		t.Fatalf("empty: %+v", cp)
	}
	for i := range BlockSize + 10 {
		s.Add(Point{Step: int64(i), Value: 1, Time: int64(i)})
	}
	cp, buf := s.Checkpoint(nil, true)
	if len(cp.Blocks) != 2 || cp.Blocks[0].Number != 0 || cp.Blocks[1].Number != 1 {
		t.Fatalf("blocks %+v", cp.Blocks)
	}
	if p, err := DecodeBlock(cp.Blocks[1].Data); err != nil || len(p) != 10 {
		t.Fatalf("partial block: %d points, %v", len(p), err)
	}
	if !bytes.Equal(cp.State, s.AppendState(nil)) {
		t.Fatal("State differs from AppendState")
	}
	s.Committed(cp.Len)
	// Nothing new: no blocks.
	cp2, _ := s.Checkpoint(buf[:0], true)
	if len(cp2.Blocks) != 0 || cp2.Len != cp.Len {
		t.Fatalf("unchanged: %+v", cp2.Blocks)
	}
	// Fill block 1 exactly: it is sealed, the pending block is empty.
	for i := range BlockSize - 10 {
		s.Add(Point{Step: int64(i), Value: 2})
	}
	if len(s.Pending()) != 0 || s.Blocks() != 2 {
		t.Fatalf("pending %d, blocks %d", len(s.Pending()), s.Blocks())
	}
	cp3, _ := s.Checkpoint(nil, true)
	if len(cp3.Blocks) != 1 || cp3.Blocks[0].Number != 1 {
		t.Fatalf("blocks %+v", cp3.Blocks)
	}
	// An older report does not forget newer blocks.
	s.Committed(cp.Len)
	if cp4, _ := s.Checkpoint(nil, true); len(cp4.Blocks) != 1 {
		t.Fatalf("blocks %+v", cp4.Blocks)
	}
	s.Committed(cp3.Len)
	if cp5, _ := s.Checkpoint(nil, true); len(cp5.Blocks) != 0 {
		t.Fatalf("blocks %+v", cp5.Blocks)
	}
	// The sealed block's data outlives Committed.
	if p, err := DecodeBlock(cp3.Blocks[0].Data); err != nil || len(p) != BlockSize || p[0].Value != 1 || p[BlockSize-1].Value != 2 {
		t.Fatalf("sealed block: %v", err)
	}
}

func TestSeriesRestoreErrors(t *testing.T) {
	s := NewSeries(4)
	for i := range BlockSize + 5 {
		s.Add(Point{Step: int64(i), Value: float64(i), Time: int64(i)})
	}
	cp, _ := s.Checkpoint(nil, true)
	db := &store{blocks: map[int64][]byte{}}
	db.write(cp)

	var ok Series
	if err := ok.Restore(db.state, db.n, db.read); err != nil {
		t.Fatal(err)
	}
	if ok.Len() != s.Len() || len(ok.Pending()) != 5 {
		t.Fatalf("restored %d points, %d pending", ok.Len(), len(ok.Pending()))
	}

	other := NewSeries(4)
	for i := range 4 {
		other.Add(Point{Step: int64(i), Value: float64(i), Time: int64(i)})
	}
	otherBlock := AppendBlock(nil, other.Pending())
	shifted := AppendBlock(nil, []Point{{1, 1, 1}, {2, 2, 2}, {3, 3, 3}, {4, 4, 4}, {5, 5, 5}})
	tests := []struct {
		name  string
		state []byte
		n     int64
		block func(int64) ([]byte, error)
		is    error
	}{
		{"bad state", db.state[:len(db.state)-1], db.n, db.read, ErrMalformed},
		{"state ahead of blocks", db.state, db.n - 1, db.read, ErrMalformed},
		{"missing block", db.state, db.n, func(int64) ([]byte, error) { return nil, errNotFound }, errNotFound},
		{"bad block", db.state, db.n, func(int64) ([]byte, error) { return []byte{1, 1}, nil }, ErrMalformed},
		{"short block", db.state, db.n, func(int64) ([]byte, error) { return otherBlock, nil }, ErrMalformed},
		{"wrong last point", db.state, db.n, func(int64) ([]byte, error) { return shifted, nil }, ErrMalformed},
		{"more points than blocks", db.state, db.n + 1, db.read, ErrMalformed},
		{"later block too short", db.state, db.n + BlockSize, db.read, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := NewSeries(4)
			x.Add(Point{Step: 99})
			err := x.Restore(tt.state, tt.n, tt.block)
			if !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want %v", err, tt.is)
			}
			if x.Len() != 1 || x.Summary().LastStep != 99 {
				t.Fatal("series changed")
			}
		})
	}
	if err := new(Series).Restore(nil, -1, db.read); err == nil {
		t.Fatal("negative count restored")
	}
	// A full last block is not read.
	full := NewSeries(4)
	for i := range BlockSize {
		full.Add(Point{Step: int64(i)})
	}
	var y Series
	if err := y.Restore(full.AppendState(nil), BlockSize, func(int64) ([]byte, error) { panic("read") }); err != nil {
		t.Fatal(err)
	}
	if y.Len() != BlockSize || len(y.Pending()) != 0 {
		t.Fatal("full restore")
	}
}

func TestStateUnmarshalMalformed(t *testing.T) {
	var a, b State
	for i := range 10 {
		a.Add(Point{Step: int64(i), Value: float64(i)})
	}
	for i := range 11 {
		b.Add(Point{Step: int64(i), Value: float64(i)})
	}
	sum := func(s Summary) []byte { x, _ := s.MarshalBinary(); return x }
	ds := func(d *Downsample) []byte { x, _ := d.MarshalBinary(); return x }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	wrongMin := a.Summary
	wrongMin.Min = -1
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad version", cat([]byte{2}, sum(a.Summary), ds(&a.Downsample))},
		{"count mismatch", cat([]byte{1}, sum(a.Summary), ds(&b.Downsample))},
		{"min mismatch", cat([]byte{1}, sum(wrongMin), ds(&a.Downsample))},
		{"trailing", cat([]byte{1}, sum(a.Summary), ds(&a.Downsample), []byte{0})},
		{"no downsample", cat([]byte{1}, sum(a.Summary))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := b
			if err := st.UnmarshalBinary(tt.b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v", err)
			}
			if st.Summary.Count != 11 {
				t.Fatal("state changed")
			}
		})
	}
	good := cat([]byte{1}, sum(a.Summary), ds(&a.Downsample))
	var st State
	if err := st.UnmarshalBinary(good); err != nil || st.Summary.Count != 10 {
		t.Fatal(err)
	}
}

func TestSeriesReset(t *testing.T) {
	s := NewSeries(8)
	for i := range 3000 {
		s.Add(Point{Step: int64(i), Value: math.Sin(float64(i))})
	}
	s.Reset()
	if s.Len() != 0 || s.Blocks() != 0 || len(s.Pending()) != 0 || s.Points(10) != nil {
		t.Fatal("not empty after Reset")
	}
	if cp, _ := s.Checkpoint(nil, true); len(cp.Blocks) != 0 {
		t.Fatal("blocks after Reset")
	}
	s.Add(Point{Step: 1, Value: 2})
	if got := s.Summary(); got.Count != 1 || got.Last != 2 {
		t.Fatalf("%+v", got)
	}
}

func TestSeriesAddAllocs(t *testing.T) {
	ps := realistic(4*BlockSize, false)
	var s Series
	for _, p := range ps {
		s.Add(p)
	}
	i := 0
	// One allocation per sealed block, which rounds to zero per Add.
	allocs := testing.AllocsPerRun(8*BlockSize, func() {
		s.Add(ps[i%len(ps)])
		i++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Add", allocs)
	}
}
