package tracking

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/mlfs/mlfs/index"
	"github.com/mlfs/mlfs/tracking/series"
)

// summary is Metric as it is built, point by point.
type summary struct {
	Metric
	hasLast bool
}

func (s *summary) add(p series.Point) {
	v := p.Value
	if s.Count == 0 {
		s.Min, s.Max = Float(math.NaN()), Float(math.NaN())
	}
	s.Count++
	if !math.IsNaN(v) {
		if math.IsNaN(float64(s.Min)) || v < float64(s.Min) {
			s.Min = Float(v)
		}
		if math.IsNaN(float64(s.Max)) || v > float64(s.Max) {
			s.Max = Float(v)
		}
	}
	if !s.hasLast || p.Step >= s.LastStep {
		s.Last, s.LastStep, s.LastTime, s.hasLast = Float(v), p.Step, p.Time, true
	}
}

// merge combines the summaries of one metric from two files.
func merge(a, b Metric) Metric {
	if a.Count == 0 {
		return b
	}
	if b.Count == 0 {
		return a
	}
	out := a
	out.Count += b.Count
	if math.IsNaN(float64(out.Min)) || float64(b.Min) < float64(out.Min) {
		out.Min = b.Min
	}
	if math.IsNaN(float64(out.Max)) || float64(b.Max) > float64(out.Max) {
		out.Max = b.Max
	}
	if b.LastStep > a.LastStep || b.LastStep == a.LastStep && b.LastTime > a.LastTime {
		out.Last, out.LastStep, out.LastTime = b.Last, b.LastStep, b.LastTime
	}
	return out
}

// seriesBuf is one metric of one file while its run is active: the
// points not yet in the index and the downsample.
type seriesBuf struct {
	count     int64          // points in all
	committed int64          // points in the index
	tail      []series.Point // the points of block count/BlockSize
	sealed    [][]series.Point
	sealedAt  int64 // block number of sealed[0]
	ds        *series.Downsample
	dsSaved   int64 // points the stored downsample holds
}

func (b *seriesBuf) add(p series.Point) {
	if len(b.tail) == series.BlockSize {
		if len(b.sealed) == 0 {
			b.sealedAt = (b.count - 1) / series.BlockSize
		}
		b.sealed = append(b.sealed, b.tail)
		b.tail = make([]series.Point, 0, series.BlockSize)
	}
	b.tail = append(b.tail, p)
	b.count++
	b.ds.Add(p)
}

// restoreSeries loads a metric's buffer from the index: its last block,
// and the downsample brought up to date from the blocks after it.
func restoreSeries(kv index.KV, id, path, key string, count int64) (*seriesBuf, error) {
	b := &seriesBuf{count: count, committed: count, ds: series.NewDownsample(series.Target)}
	if count == 0 {
		return b, nil
	}
	what := fmt.Sprintf("run %s: %s: metric %s", id, path, key)
	raw, err := kv.Get(downsampleKey(id, path, key))
	switch {
	case err == nil:
		n, k := binary.Uvarint(raw)
		if k <= 0 || int64(n) > count {
			return nil, fmt.Errorf("%s: downsample: %w", what, series.ErrMalformed)
		}
		if err := b.ds.UnmarshalBinary(raw[k:]); err != nil {
			return nil, fmt.Errorf("%s: downsample: %w", what, err)
		}
		b.dsSaved = int64(n)
	case err == index.ErrNotFound:
	default:
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	last := (count - 1) / series.BlockSize
	for n := b.dsSaved / series.BlockSize; n <= last; n++ {
		raw, err := kv.Get(blockKey(id, path, key, n))
		if err != nil {
			return nil, fmt.Errorf("%s: block %d: %w", what, n, err)
		}
		pts, err := series.DecodeBlock(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: block %d: %w", what, n, err)
		}
		for i, p := range pts {
			if n*series.BlockSize+int64(i) >= b.dsSaved {
				b.ds.Add(p)
			}
		}
		if n == last {
			b.tail = append(make([]series.Point, 0, series.BlockSize), pts...)
		}
	}
	if int64(len(b.tail)) != count-last*series.BlockSize {
		return nil, fmt.Errorf("%s: block %d holds %d points, want %d: %w", what, last, len(b.tail), count-last*series.BlockSize, series.ErrMalformed)
	}
	return b, nil
}

// commit records in batch what changed since the last commit; with
// withDS, the downsample too.
func (b *seriesBuf) commit(batch index.Batch, id, path, key string, withDS bool) {
	for i, blk := range b.sealed {
		batch.Set(blockKey(id, path, key, b.sealedAt+int64(i)), series.AppendBlock(nil, blk))
	}
	if b.count > b.committed && len(b.tail) > 0 {
		batch.Set(blockKey(id, path, key, (b.count-1)/series.BlockSize), series.AppendBlock(nil, b.tail))
	}
	b.sealed = nil
	b.committed = b.count
	if withDS && b.dsSaved != b.count {
		enc, _ := b.ds.MarshalBinary()
		batch.Set(downsampleKey(id, path, key), append(binary.AppendUvarint(nil, uint64(b.count)), enc...))
		b.dsSaved = b.count
	}
}
