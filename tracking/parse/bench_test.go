package parse

import (
	"fmt"
	"testing"
)

// benchFeed feeds data in 64 KiB pieces b.N times and reports points/s.
func benchFeed(b *testing.B, f Format, data []byte) {
	points := 0
	emit := func(Point) { points++ }
	report := func(e Error) { b.Fatal(e) }
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := New(f, "train/loss")
		for j := 0; j < len(data); j += 64 << 10 {
			p.Feed(data[j:min(j+64<<10, len(data))], emit, report)
		}
		p.End(emit, report)
	}
	b.ReportMetric(float64(points)/b.Elapsed().Seconds(), "points/s")
}

func BenchmarkMetricLines(b *testing.B) {
	var data []byte
	for i := 0; i < 100000; i++ {
		data = fmt.Appendf(data, "%d %g %d.%03d\n", i, 1/float64(i+1), 1733300000+i/10, i%1000)
	}
	benchFeed(b, MetricLines, data)
}

func BenchmarkJSONL(b *testing.B) {
	var data []byte
	for i := 0; i < 25000; i++ {
		data = fmt.Appendf(data, `{"step": %d, "loss": %g, "acc": %g, "lr": 0.001, "train": {"grad_norm": %g}}`+"\n",
			i, 1/float64(i+1), float64(i)/25000, float64(i%97)/7)
	}
	benchFeed(b, JSONL, data)
}

func BenchmarkCSV(b *testing.B) {
	data := []byte("epoch,step,train_loss,val_loss,val_acc\n")
	for i := 0; i < 25000; i++ {
		data = fmt.Appendf(data, "%d,%d,%g,%g,%g\n", i/1000, i, 1/float64(i+1), 2/float64(i+1), float64(i)/25000)
	}
	benchFeed(b, CSV, data)
}
