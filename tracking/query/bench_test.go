package query

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchRun is a map-backed Record, shaped like the caller's.
type benchRun struct {
	metrics map[string]float64
	params  map[string]string
	tags    map[string]string
	attrs   map[string]Value
}

func (r *benchRun) Lookup(f Field) (Value, bool) {
	switch f.Kind {
	case Metric:
		x, ok := r.metrics[f.Key]
		return NumValue(x), ok
	case Param:
		s, ok := r.params[f.Key]
		return StrValue(s), ok
	case Tag:
		s, ok := r.tags[f.Key]
		return StrValue(s), ok
	case Attr:
		v, ok := r.attrs[f.Key]
		return v, ok
	}
	return Value{}, false
}

func benchRuns(n int) []*benchRun {
	rnd := rand.New(rand.NewPCG(1, 2))
	models := []string{"svm", "knn", "tree"}
	teams := []string{"vision", "nlp"}
	runs := make([]*benchRun, n)
	for i := range runs {
		r := &benchRun{
			metrics: make(map[string]float64, 20),
			params:  make(map[string]string, 5),
			tags:    make(map[string]string, 2),
			attrs: map[string]Value{
				"status":     StrValue("FINISHED"),
				"start_time": NumValue(float64(1.7e12 + i*60000)),
				"run_id":     StrValue(fmt.Sprintf("%032x", i)),
			},
		}
		for m := range 20 {
			r.metrics[fmt.Sprintf("m%d", m)] = rnd.Float64()
		}
		r.params["model"] = models[rnd.IntN(len(models))]
		r.params["lr"] = fmt.Sprint(rnd.Float64() / 10)
		r.params["epochs"] = fmt.Sprint(rnd.IntN(100))
		r.params["batch"] = fmt.Sprint(1 << rnd.IntN(8))
		r.params["opt"] = "adam"
		r.tags["team"] = teams[rnd.IntN(len(teams))]
		r.tags["git"] = fmt.Sprintf("%07x", rnd.Uint32())
		runs[i] = r
	}
	return runs
}

// BenchmarkFilterSort filters and sorts 10,000 runs, as `mlfs runs` does.
func BenchmarkFilterSort(b *testing.B) {
	runs := benchRuns(10000)
	for _, bc := range []struct{ name, filter, order string }{
		{"selective", "metrics.m3 > 0.5 and params.model = 'svm' and tags.team LIKE 'vis%'", "metrics.m7 desc"},
		{"all", "metrics.m3 >= 0 and params.lr < 0.2 and status = 'FINISHED'", "metrics.m7 desc, start_time"},
		{"params", "params.epochs >= 10 and tags.team ILIKE '%ISI%'", "params.lr, params.batch desc"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			flt, err := ParseFilter(bc.filter)
			if err != nil {
				b.Fatal(err)
			}
			orders, err := ParseOrder(bc.order)
			if err != nil {
				b.Fatal(err)
			}
			out := make([]*benchRun, 0, len(runs))
			n := 0
			for b.Loop() {
				out = out[:0]
				for _, r := range runs {
					if flt.Match(r) {
						out = append(out, r)
					}
				}
				Sort(out, orders)
				n = len(out)
			}
			b.ReportMetric(float64(n), "matches")
		})
	}
}
