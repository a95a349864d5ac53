package tracking

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/mlfs/mlfs/tracking/query"
)

// Run statuses.
const (
	Running  = "running"
	Finished = "finished"
	Failed   = "failed"
	Killed   = "killed"
)

// DefaultExperiment is the experiment of a run without tags/experiment.
const DefaultExperiment = "default"

// Info is what the index holds about a run: everything listings, filters
// and comparisons use. Times are Unix milliseconds.
type Info struct {
	ID         string            `json:"id"`
	Experiment string            `json:"experiment"`
	Status     string            `json:"status"`
	Start      int64             `json:"start_time"`
	End        int64             `json:"end_time,omitempty"`
	Host       string            `json:"host,omitempty"`
	User       string            `json:"user,omitempty"`
	Params     map[string]string `json:"params"`
	Tags       map[string]string `json:"tags"`
	Metrics    map[string]Metric `json:"metrics"`
	Datasets   []Lineage         `json:"datasets"`
	// Errors counts the rejected lines; the run's errors file lists them.
	Errors    int64 `json:"errors"`
	LastWrite int64 `json:"last_write,omitempty"`
}

// Metric summarizes one metric of a run.
type Metric struct {
	Last     Float `json:"last"`
	Min      Float `json:"min"`
	Max      Float `json:"max"`
	Count    int64 `json:"count"`
	LastStep int64 `json:"last_step"`
	LastTime int64 `json:"last_time"`
}

// Lineage is a dataset version a run read.
type Lineage struct {
	Ref string `json:"ref"` // dataset@version, as the program named it
	ID  string `json:"id"`  // the version's id
	// Time is when the run first read it.
	Time int64 `json:"time"`
}

// Float is a float64 that also encodes NaN and ±Inf in JSON, as the
// strings "nan", "inf" and "-inf": metrics may hold them.
type Float float64

func (f Float) MarshalJSON() ([]byte, error) { return f.appendJSON(nil), nil }

func (f *Float) UnmarshalJSON(b []byte) error {
	var s string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else {
		s = string(b)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("metric value %s: not a number", b)
	}
	*f = Float(v)
	return nil
}

// MarshalJSON writes a metric by hand: encoding/json calls a marshaler per
// float otherwise, which made listing 10,000 runs take seconds.
func (m Metric) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 128)
	b = append(b, `{"last":`...)
	b = m.Last.appendJSON(b)
	b = append(b, `,"min":`...)
	b = m.Min.appendJSON(b)
	b = append(b, `,"max":`...)
	b = m.Max.appendJSON(b)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, m.Count, 10)
	b = append(b, `,"last_step":`...)
	b = strconv.AppendInt(b, m.LastStep, 10)
	b = append(b, `,"last_time":`...)
	b = strconv.AppendInt(b, m.LastTime, 10)
	return append(b, '}'), nil
}

func (f Float) appendJSON(b []byte) []byte {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return append(b, `"nan"`...)
	case math.IsInf(v, 1):
		return append(b, `"inf"`...)
	case math.IsInf(v, -1):
		return append(b, `"-inf"`...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// Duration is how long the run ran (until now for a running one), in ms.
func (in *Info) Duration(now int64) int64 {
	end := in.End
	if end == 0 {
		end = now
	}
	return max(end-in.Start, 0)
}

// Lookup gives a field for filters and sorts: a metric's last value, a
// param, a tag, or an attribute.
func (in *Info) Lookup(f query.Field) (query.Value, bool) {
	switch f.Kind {
	case query.Metric:
		m, ok := in.Metrics[f.Key]
		return query.Value{Num: float64(m.Last), IsNum: true}, ok
	case query.Param:
		v, ok := in.Params[f.Key]
		return query.Value{Str: v}, ok
	case query.Tag:
		v, ok := in.Tags[f.Key]
		return query.Value{Str: v}, ok
	}
	switch strings.ToLower(f.Key) {
	case "id", "run_id", "run_name", "name":
		return query.Value{Str: in.ID}, true
	case "experiment", "experiment_id":
		return query.Value{Str: in.Experiment}, true
	case "status":
		return query.Value{Str: in.Status}, true
	case "start_time", "start":
		return query.Value{Num: float64(in.Start), IsNum: true}, true
	case "end_time", "end":
		return query.Value{Num: float64(in.End), IsNum: true}, in.End != 0
	case "duration":
		return query.Value{Num: float64(in.End - in.Start), IsNum: true}, in.End != 0
	case "user", "user_id":
		return query.Value{Str: in.User}, true
	case "host":
		return query.Value{Str: in.Host}, true
	case "dataset", "datasets":
		refs := make([]string, len(in.Datasets))
		for i, d := range in.Datasets {
			refs[i] = d.Ref
		}
		return query.Value{Str: strings.Join(refs, ",")}, len(refs) > 0
	case "errors":
		return query.Value{Num: float64(in.Errors), IsNum: true}, true
	}
	return query.Value{}, false
}

// Attributes are the attribute names Lookup knows.
var Attributes = []string{"id", "run_id", "run_name", "name", "experiment", "experiment_id", "status", "start_time", "start",
	"end_time", "end", "duration", "user", "user_id", "host", "dataset", "datasets", "errors"}

// CheckAttribute reports an unknown attribute name.
func CheckAttribute(name string) error {
	for _, a := range Attributes {
		if strings.EqualFold(a, name) {
			return nil
		}
	}
	return fmt.Errorf("unknown attribute %q (known: id, experiment, status, start_time, end_time, duration, user, host, dataset, errors)", name)
}

// Search returns the runs of infos that match filter, sorted by sort (an
// MLflow-style "KEY [asc|desc], ..."; newest first when empty).
func Search(infos []*Info, filter, sort string) ([]*Info, error) {
	f, err := query.ParseFilter(filter)
	if err != nil {
		return nil, err
	}
	for _, fl := range f.Fields() {
		if fl.Kind == query.Attr {
			if err := CheckAttribute(fl.Key); err != nil {
				return nil, fmt.Errorf("filter: %w", err)
			}
		}
	}
	orders, err := query.ParseOrder(sort)
	if err != nil {
		return nil, err
	}
	for _, o := range orders {
		if o.Field.Kind == query.Attr {
			if err := CheckAttribute(o.Field.Key); err != nil {
				return nil, fmt.Errorf("sort: %w", err)
			}
		}
	}
	out := make([]*Info, 0, len(infos))
	for _, in := range infos {
		if f.Match(in) {
			out = append(out, in)
		}
	}
	newestFirst(out)
	query.Sort(out, orders)
	return out, nil
}

// newestFirst orders runs by start time, newest first, then by id.
func newestFirst(rs []*Info) {
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].Start != rs[j].Start {
			return rs[i].Start > rs[j].Start
		}
		return rs[i].ID < rs[j].ID
	})
}

// clone returns a copy that the caller may keep. It is shallow: the maps
// and the Datasets slice are shared, which is safe because a run's record
// is only ever given new maps (recompute), never changed in place, and
// Datasets only grows past the copy's length.
func (in *Info) clone() *Info {
	c := *in
	return &c
}

func cloneMap(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
