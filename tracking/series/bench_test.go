package series

import (
	"math"
	"math/rand/v2"
	"testing"
)

// realistic returns n points of a training loss: steps 0,1,2,..., times
// about 10 ms apart, a noisy decaying value; as float32 values if f32.
func realistic(n int, f32 bool) []Point {
	r := rand.New(rand.NewPCG(42, 43))
	ps := make([]Point, n)
	tm := int64(1_700_000_000_000)
	for i := range ps {
		tm += 8 + r.Int64N(5)
		v := 2.5*math.Exp(-float64(i)/2e5) + 0.05*r.NormFloat64()
		if f32 {
			v = float64(float32(v))
		}
		ps[i] = Point{Step: int64(i), Value: v, Time: tm}
	}
	return ps
}

func BenchmarkSeriesAdd(b *testing.B) {
	ps := realistic(1<<16, false)
	var s Series
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		s.Add(ps[i&(1<<16-1)])
		if i&(1<<16-1) == 0 {
			s.Committed(s.Len()) // as the daemon does, so sealed blocks do not pile up
		}
	}
}

func BenchmarkDownsampleAdd(b *testing.B) {
	ps := realistic(1<<16, false)
	var d Downsample
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		d.Add(ps[i&(1<<16-1)])
	}
}

func BenchmarkSummaryAdd(b *testing.B) {
	ps := realistic(1<<16, false)
	var s Summary
	for i := range b.N {
		s.Add(ps[i&(1<<16-1)])
	}
}

func benchBlocks(b *testing.B, f32 bool, decode bool) {
	const blocks = 64
	ps := realistic(blocks*BlockSize, f32)
	enc := make([][]byte, blocks)
	size := 0
	for k := range enc {
		enc[k] = AppendBlock(nil, ps[k*BlockSize:(k+1)*BlockSize])
		size += len(enc[k])
	}
	var buf []byte
	var out []Point
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k := i % blocks
		if decode {
			var err error
			out, err = AppendDecodeBlock(out[:0], enc[k])
			if err != nil {
				b.Fatal(err)
			}
		} else {
			buf = AppendBlock(buf[:0], ps[k*BlockSize:(k+1)*BlockSize])
		}
	}
	b.ReportMetric(float64(b.N)*BlockSize/b.Elapsed().Seconds(), "points/s")
	b.ReportMetric(float64(size)/float64(len(ps)), "bytes/point")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/BlockSize, "ns/point")
}

func BenchmarkAppendBlock(b *testing.B) {
	b.Run("float64", func(b *testing.B) { benchBlocks(b, false, false) })
	b.Run("float32", func(b *testing.B) { benchBlocks(b, true, false) })
}

func BenchmarkDecodeBlock(b *testing.B) {
	b.Run("float64", func(b *testing.B) { benchBlocks(b, false, true) })
	b.Run("float32", func(b *testing.B) { benchBlocks(b, true, true) })
}

func BenchmarkStateMarshal(b *testing.B) {
	var st State
	for _, p := range realistic(1_000_000, false) {
		st.Add(p)
	}
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		buf, _ = st.AppendBinary(buf[:0])
	}
	b.ReportMetric(float64(len(buf)), "bytes")
	b.ReportMetric(float64(len(st.Downsample.buckets)), "buckets")
}

func BenchmarkStateUnmarshal(b *testing.B) {
	var st State
	for _, p := range realistic(1_000_000, false) {
		st.Add(p)
	}
	enc, _ := st.MarshalBinary()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var x State
		if err := x.UnmarshalBinary(enc); err != nil {
			b.Fatal(err)
		}
	}
}
