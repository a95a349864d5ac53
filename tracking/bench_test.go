package tracking

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func syntheticInfos(n, metrics int) []*Info {
	out := make([]*Info, n)
	for i := range out {
		in := &Info{ID: fmt.Sprintf("b%05d", i), Experiment: fmt.Sprintf("exp%d", i%10), Status: Finished,
			Start: time.Now().UnixMilli() - int64(i)*1000, Params: map[string]string{"lr": []string{"0.1", "0.01", "0.001"}[i%3], "layers": fmt.Sprint(2 + i%5)},
			Tags: map[string]string{"experiment": fmt.Sprintf("exp%d", i%10)}, Metrics: map[string]Metric{}}
		for k := 0; k < metrics; k++ {
			v := Float(float64((i*7919+k*104729)%10000) / 10000)
			in.Metrics[fmt.Sprintf("m%02d", k)] = Metric{Last: v, Min: v, Max: v, Count: 1, LastStep: 100}
		}
		out[i] = in
	}
	return out
}

func BenchmarkSearch10k(b *testing.B) {
	infos := syntheticInfos(10000, 20)
	for b.Loop() {
		res, err := search(infos, SearchRequest{Filter: "metrics.m03 > 0.5 and params.lr = '0.01' and tags.experiment != 'exp3'", Sort: "metrics.m07 desc", Limit: 100})
		if err != nil || res.Total == 0 {
			b.Fatal(err, res)
		}
	}
}

func BenchmarkClone10k(b *testing.B) {
	infos := syntheticInfos(10000, 20)
	for b.Loop() {
		for _, in := range infos {
			in.clone()
		}
	}
}

func BenchmarkMarshal10k(b *testing.B) {
	infos := syntheticInfos(10000, 20)
	for b.Loop() {
		if _, err := json.Marshal(infos); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal10k(b *testing.B) {
	raw, _ := json.Marshal(syntheticInfos(10000, 20))
	for b.Loop() {
		var out []*Info
		if err := json.Unmarshal(raw, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeInfos10k(b *testing.B) {
	infos := syntheticInfos(10000, 20)
	raw := make([][]byte, len(infos))
	for i, in := range infos {
		raw[i] = encodeInfo(in)
	}
	for b.Loop() {
		for _, r := range raw {
			if _, err := decodeInfo(r); err != nil {
				b.Fatal(err)
			}
		}
	}
}
