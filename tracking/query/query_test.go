package query

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// rec is a map-backed Record.
type rec map[Field]Value

func (r rec) Lookup(f Field) (Value, bool) {
	v, ok := r[f]
	return v, ok
}

// mk builds a rec from field, value pairs; values are float64 or string.
func mk(t testing.TB, kv ...any) rec {
	t.Helper()
	r := rec{}
	for i := 0; i < len(kv); i += 2 {
		f, err := ParseField(kv[i].(string))
		if err != nil {
			t.Fatal(err)
		}
		switch v := kv[i+1].(type) {
		case float64:
			r[f] = NumValue(v)
		case int:
			r[f] = NumValue(float64(v))
		case string:
			r[f] = StrValue(v)
		default:
			t.Fatalf("bad value %T", v)
		}
	}
	return r
}

func TestParseField(t *testing.T) {
	tests := []struct {
		in   string
		want Field
	}{
		{"metrics.acc", Field{Metric, "acc"}},
		{"metric.acc", Field{Metric, "acc"}},
		{"METRICS.acc", Field{Metric, "acc"}},
		{"Metrics.Acc", Field{Metric, "Acc"}},
		{"params.lr", Field{Param, "lr"}},
		{"param.lr", Field{Param, "lr"}},
		{"tags.team", Field{Tag, "team"}},
		{"tag.team", Field{Tag, "team"}},
		{"attributes.status", Field{Attr, "status"}},
		{"attribute.status", Field{Attr, "status"}},
		{"attr.status", Field{Attr, "status"}},
		{"run.status", Field{Attr, "status"}},
		{"status", Field{Attr, "status"}},
		{"start_time", Field{Attr, "start_time"}},
		{"  run_id  ", Field{Attr, "run_id"}},
		{"metrics.train/loss", Field{Metric, "train/loss"}},
		{"metrics.val.acc-top5", Field{Metric, "val.acc-top5"}},
		{"metrics.2", Field{Metric, "2"}},
		{"metrics.точность", Field{Metric, "точность"}},
		{"metrics.`train loss`", Field{Metric, "train loss"}},
		{`metrics."train loss"`, Field{Metric, "train loss"}},
		{`params."a.b"`, Field{Param, "a.b"}},
		{"metrics.`a``b`", Field{Metric, "a`b"}},
		{"metrics.`a\\`b`", Field{Metric, "a`b"}},
		{`params."a""b"`, Field{Param, `a"b`}},
		{`params."a\\b"`, Field{Param, `a\b`}},
		{"attributes.`and`", Field{Attr, "and"}},
		{"attributes.x.y", Field{Attr, "x.y"}},
	}
	for _, tt := range tests {
		got, err := ParseField(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseField(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		// The canonical form reads back.
		again, err := ParseField(got.String())
		if err != nil || again != got {
			t.Errorf("ParseField(%q) = %v, %v; want %v", got.String(), again, err, got)
		}
	}
}

func TestFieldString(t *testing.T) {
	tests := []struct {
		f    Field
		want string
	}{
		{Field{Metric, "acc"}, "metrics.acc"},
		{Field{Metric, "train loss"}, "metrics.`train loss`"},
		{Field{Metric, "a`b\\c"}, "metrics.`a\\`b\\\\c`"},
		{Field{Param, "a.b"}, "params.a.b"},
		{Field{Tag, "x=y"}, "tags.`x=y`"},
		{Field{Attr, "status"}, "status"},
		{Field{Attr, "and"}, "attributes.and"},
		{Field{Attr, "metrics"}, "attributes.metrics"},
		{Field{Attr, "Desc"}, "attributes.Desc"},
		{Field{Attr, "a.b"}, "attributes.a.b"},
		{Field{Attr, "1st"}, "attributes.1st"},
		{Field{Attr, "a b"}, "attributes.`a b`"},
		{Field{Metric, ""}, "metrics.``"},
	}
	for _, tt := range tests {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.f, got, tt.want)
		}
	}
}

func TestParseFields(t *testing.T) {
	got, err := ParseFields(" metrics.acc, params.`a,b` ,status ")
	want := []Field{{Metric, "acc"}, {Param, "a,b"}, {Attr, "status"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParseFields = %v, %v; want %v", got, err, want)
	}
	if got, err := ParseFields("  "); err != nil || got != nil {
		t.Errorf("ParseFields(blank) = %v, %v", got, err)
	}
	for _, in := range []string{"metrics.acc,", "metrics.acc params.x", ",metrics.acc"} {
		if _, err := ParseFields(in); err == nil {
			t.Errorf("ParseFields(%q) succeeded", in)
		}
	}
}

func TestMatch(t *testing.T) {
	nan := math.NaN()
	r := mk(t,
		"metrics.acc", 0.95,
		"metrics.loss", 0.1,
		"metrics.zero", 0,
		"metrics.nan", nan,
		"metrics.`train loss`", 0.5,
		"metrics.train/loss", 0.25,
		"params.model", "svm",
		"params.lr", "0.010",
		"params.lr2", "1e-2",
		"params.n", "10",
		"params.word", "abc",
		"params.empty", "",
		"params.`a.b`", "dotted",
		"params.pct", "50%",
		"params.uni", "Ünïcode",
		"tags.experiment", "iris-v2",
		"tags.Team", "Vision",
		"status", "FINISHED",
		"start_time", float64(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).UnixMilli()),
		"duration", 1500,
		"run_id", "a1b2",
	)
	tests := []struct {
		filter string
		want   bool
	}{
		{"", true},
		{"   ", true},
		// metrics, every comparison operator
		{"metrics.acc > 0.9", true},
		{"metrics.acc > 0.95", false},
		{"metrics.acc >= 0.95", true},
		{"metrics.acc < 1", true},
		{"metrics.acc <= 0.95", true},
		{"metrics.acc < 0.95", false},
		{"metrics.acc = 0.95", true},
		{"metrics.acc == 0.95", true},
		{"metrics.acc != 0.95", false},
		{"metrics.acc <> 0.95", false},
		{"metrics.acc != 0.5", true},
		{"metrics.acc = 9.5e-1", true},
		{"metrics.acc = .95", true},
		{"metrics.acc = +0.95", true},
		{"metrics.zero = -0", true},
		{"metrics.loss > -1e-3", true},
		{"metrics.acc IN (0.5, 0.95)", true},
		{"metrics.acc IN (0.5)", false},
		{"metrics.acc NOT IN (0.5)", true},
		{"metrics.acc NOT IN (0.95, 1)", false},
		{"metrics.acc>0.9", true},
		// aliases and quoting
		{"metric.acc > 0.9", true},
		{"METRICS.acc > 0.9", true},
		{"metrics.ACC > 0.9", false}, // keys are case-sensitive
		{"metrics.`train loss` = 0.5", true},
		{`metrics."train loss" = 0.5`, true},
		{"metrics.train/loss = 0.25", true},
		{`params."a.b" = 'dotted'`, true},
		{"params.`a.b` = \"dotted\"", true},
		{"param.model = 'svm'", true},
		{"tag.experiment = 'iris-v2'", true},
		{"attributes.status = 'FINISHED'", true},
		{"attribute.status = 'FINISHED'", true},
		{"attr.status = 'FINISHED'", true},
		{"run.status = 'FINISHED'", true},
		{"status = 'FINISHED'", true},
		// keywords in any case
		{"metrics.acc > 0.9 and params.model = 'svm'", true},
		{"metrics.acc > 0.9 AND params.model = 'svm'", true},
		{"metrics.acc > 0.9 And params.model = 'knn'", false},
		{"params.model like 's%'", true},
		{"params.model Like 's%'", true},
		{"params.model not like 's%'", false},
		{"params.model in ('svm')", true},
		{"params.model not in ('svm')", false},
		{"params.model is null", false},
		{"params.model is not null", true},
		{"params.model Is Not Null", true},
		{"params.model\tIN\n('svm')", true},
		// strings
		{"params.model = 'svm'", true},
		{`params.model = "svm"`, true},
		{"params.model = 'SVM'", false},
		{"params.model != 'svm'", false},
		{"params.model != 'knn'", true},
		{"params.empty = ''", true},
		{"params.pct = '50%'", true},
		{`params.pct = '50\%'`, true},
		{"tags.experiment = 'iris-v2' and status = 'FINISHED'", true},
		// params: numbers
		{"params.lr = 0.01", true},    // numerically equal
		{"params.lr = '0.01'", false}, // a quoted string compares as a string
		{"params.lr = '0.010'", true},
		{"params.lr2 = 0.01", true},
		{"params.lr != 0.01", false},
		{"params.lr IN (0.1, 0.01)", true},
		{"params.lr IN ('0.01')", false},
		{"params.word = 0.01", false}, // not a number: compared with "0.01"
		{"params.word != 0.01", true},
		{"params.lr < 0.1", true},
		{"params.lr < '0.1'", true}, // both parse: numeric
		{"params.n > 9", true},      // numeric, not "10" < "9"
		{"params.n > '9'", true},
		{"params.n < 9", false},
		{"params.word > 'abb'", true}, // byte-wise
		{"params.word > 'abd'", false},
		{"params.word > 1", true}, // "abc" > "1" byte-wise
		{"params.word < 'B'", false},
		{"params.model >= 'svm'", true},
		// LIKE and ILIKE
		{"tags.experiment LIKE 'iris%'", true},
		{"tags.experiment LIKE 'Iris%'", false},
		{"tags.experiment ILIKE 'IRIS%'", true},
		{"tags.experiment NOT ILIKE 'IRIS%'", false},
		{"tags.experiment LIKE '%'", true},
		{"params.empty LIKE '%'", true},
		{"params.empty LIKE ''", true},
		{"params.empty LIKE '_'", false},
		{"tags.experiment LIKE 'iris-v_'", true},
		{"tags.experiment LIKE '____-__'", true},
		{"tags.experiment LIKE '___'", false},
		{"tags.experiment LIKE '%v2'", true},
		{"tags.experiment LIKE '%s-%'", true},
		{"tags.experiment LIKE 'i%s%2'", true},
		{"tags.experiment LIKE 'i%x%2'", false},
		{"tags.experiment NOT LIKE 'x%'", true},
		{"params.pct LIKE '50_'", true},
		{"params.pct LIKE '%\\%'", true}, // no escape: \% is %
		{"params.uni LIKE '_nïcode'", true},
		{"params.uni ILIKE 'üNÏCODE'", true},
		{"tags.Team ILIKE 'vision'", true},
		{"tags.Team LIKE 'vision'", false},
		// attributes
		{"status IN ('FINISHED', 'FAILED')", true},
		{"status NOT IN ('FINISHED', 'FAILED')", false},
		{"duration > 1000", true},
		{"duration = '1500'", true}, // a numeric string against a number
		{"duration = 'long'", false},
		{"duration != 'long'", true},
		{"duration > 'long'", false},
		{"duration LIKE '1%'", false}, // numbers never match LIKE
		{"duration NOT LIKE '1%'", true},
		{"run_id LIKE 'a1%'", true},
		{"start_time > '2026-11-30'", true},
		{"start_time < '2026-12-02'", true},
		{"start_time >= '2026-12-01T10:00:00Z'", true},
		{"start_time > '2026-12-01T10:00:00Z'", false},
		{"start_time = '2026-12-01T11:00:00+01:00'", true},
		{"start_time = '2026-12-01 10:00'", true},
		{"start_time = '2026-12-01T10:00'", true},
		{"start_time = '2026-12-01 10:00:00'", true},
		{"start_time > '2026-12-01T10:00:00.5Z'", false},
		{"start_time < \"2026-12-01T10:00:00.5Z\"", true},
		// missing fields match only IS NULL
		{"metrics.missing > 0", false},
		{"metrics.missing < 0", false},
		{"metrics.missing = 0", false},
		{"metrics.missing != 0", false},
		{"metrics.missing IN (0)", false},
		{"metrics.missing NOT IN (0)", false},
		{"params.missing LIKE '%'", false},
		{"params.missing NOT LIKE 'x'", false},
		{"params.missing IS NULL", true},
		{"params.missing IS NOT NULL", false},
		{"nosuch = 'x'", false},
		{"nosuch IS NULL", true},
		// NaN compares false, except != and NOT IN
		{"metrics.nan > 0", false},
		{"metrics.nan < 0", false},
		{"metrics.nan >= 0", false},
		{"metrics.nan <= 0", false},
		{"metrics.nan = 0", false},
		{"metrics.nan != 0", true},
		{"metrics.nan IN (0)", false},
		{"metrics.nan NOT IN (0)", true},
		{"metrics.nan IS NOT NULL", true},
	}
	for _, tt := range tests {
		f, err := ParseFilter(tt.filter)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", tt.filter, err)
			continue
		}
		if got := f.Match(r); got != tt.want {
			t.Errorf("%q matched %v, want %v", tt.filter, got, tt.want)
		}
		// The canonical form behaves the same.
		g, err := ParseFilter(f.String())
		if err != nil {
			t.Errorf("ParseFilter(%q) (canonical of %q): %v", f.String(), tt.filter, err)
			continue
		}
		if got := g.Match(r); got != tt.want {
			t.Errorf("%q (canonical of %q) matched %v, want %v", f.String(), tt.filter, got, tt.want)
		}
	}
}

func TestParamNaN(t *testing.T) {
	r := mk(t, "params.x", "nan", "params.y", "NaN")
	for filter, want := range map[string]bool{
		"params.x = 1":     false,
		"params.x != 1":    true,
		"params.x > 1":     false,
		"params.x < 1":     false,
		"params.x = 'nan'": true, // the string
		"params.y < 'z'":   true, // 'z' is no number: "NaN" < "z" byte-wise
	} {
		f, err := ParseFilter(filter)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Match(r); got != want {
			t.Errorf("%q matched %v, want %v", filter, got, want)
		}
	}
}

func TestNilFilter(t *testing.T) {
	var f *Filter
	if !f.Match(rec{}) || f.String() != "" || f.Fields() != nil {
		t.Error("nil Filter does not match everything")
	}
	var z Filter
	if !z.Match(rec{}) || z.String() != "" || z.Fields() != nil {
		t.Error("zero Filter does not match everything")
	}
}

func TestDateLocation(t *testing.T) {
	loc := time.FixedZone("X", -8*3600)
	ms := float64(time.Date(2026, 12, 1, 0, 0, 0, 0, loc).UnixMilli())
	r := rec{{Attr, "start_time"}: NumValue(ms)}
	p := Parser{Location: loc}
	for filter, want := range map[string]bool{
		"start_time = '2026-12-01'":           true,
		"start_time = '2026-12-01T08:00:00Z'": true,
		"start_time = '2026-12-01T00:00:00'":  true,
	} {
		f, err := p.ParseFilter(filter)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Match(r); got != want {
			t.Errorf("%q matched %v, want %v", filter, got, want)
		}
	}
	f, _ := ParseFilter("start_time = '2026-12-01'") // UTC
	if f.Match(r) {
		t.Error("date without zone not read as UTC by the zero Parser")
	}
	// A date against a string attribute compares as a string.
	f, _ = ParseFilter("created = '2026-12-01'")
	if !f.Match(rec{{Attr, "created"}: StrValue("2026-12-01")}) {
		t.Error("date literal against a string attribute")
	}
	// Dates are for attributes only.
	f, _ = ParseFilter("params.d > '2026-12-01'")
	if !f.Match(rec{{Param, "d"}: StrValue("2026-12-02")}) {
		t.Error("date literal against a string param")
	}
}

func TestFilterString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"metrics.acc>0.9 and params.model='svm'", "metrics.acc > 0.9 AND params.model = 'svm'"},
		{"metric.`train loss` == 1e-3", "metrics.`train loss` = 1e-3"},
		{`params.x <> "it's"`, `params.x != 'it\'s'`},
		{`tags.t like 'a\\b%'`, `tags.t LIKE 'a\\b%'`},
		{"attr.status in ( 'A' ,\"B\", 1 )", "status IN ('A', 'B', 1)"},
		{"run.and is not null", "attributes.and IS NOT NULL"},
		{"tags.x not ilike '%A%' AND tags.y IS NULL", "tags.x NOT ILIKE '%A%' AND tags.y IS NULL"},
		{"params.x = +01.50", "params.x = +01.50"},
	}
	for _, tt := range tests {
		f, err := ParseFilter(tt.in)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", tt.in, err)
			continue
		}
		if got := f.String(); got != tt.want {
			t.Errorf("ParseFilter(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFields(t *testing.T) {
	f, err := ParseFilter("metrics.acc > 0.9 and params.model = 'svm' and metrics.acc < 1 and status IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{{Metric, "acc"}, {Param, "model"}, {Attr, "status"}}
	if got := f.Fields(); !reflect.DeepEqual(got, want) {
		t.Errorf("Fields() = %v, want %v", got, want)
	}
}

func TestParserAttrs(t *testing.T) {
	p := Parser{Attrs: []string{"status", "start_time", "run_id"}}
	f, err := p.ParseFilter("STATUS = 'FINISHED' and attr.Run_ID = 'x'")
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{{Attr, "status"}, {Attr, "run_id"}}
	if got := f.Fields(); !reflect.DeepEqual(got, want) {
		t.Errorf("Fields() = %v, want %v", got, want)
	}
	const msg = `filter: unknown field "metric_acc" (use metrics.<key>, params.<key>, tags.<key> or one of the attributes status, start_time, run_id)`
	if _, err := p.ParseFilter("metric_acc > 1"); err == nil || err.Error() != msg {
		t.Errorf("got %v, want %s", err, msg)
	}
	if _, err := p.ParseFilter("attributes.nope = 1"); err == nil || !strings.Contains(err.Error(), `unknown field "attributes.nope"`) {
		t.Errorf("got %v", err)
	}
	if _, err := p.ParseOrder("nope desc"); err == nil || !strings.HasPrefix(err.Error(), `sort: unknown field "nope"`) {
		t.Errorf("got %v", err)
	}
	if f, err := p.ParseField("Start_Time"); err != nil || f != (Field{Attr, "start_time"}) {
		t.Errorf("ParseField = %v, %v", f, err)
	}
	// Metrics, params and tags are never checked.
	if _, err := p.ParseFilter("metrics.anything > 1"); err != nil {
		t.Error(err)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"metrics.accuracy > 0.9 and metrics.acc foo", `filter: at 40: expected an operator after "metrics.acc", found "foo"`},
		{"metrics.acc", `filter: at 12: expected an operator after "metrics.acc", found end of input`},
		{"metrics.acc ! 1", `filter: at 13: expected an operator after "metrics.acc", found "!"`},
		{"metrics.acc => 1", `filter: at 14: expected a value after "metrics.acc =", found ">"`},
		{"params.model = 'svm' and tags.x = 'abc", `filter: unterminated string starting at 35`},
		{`params.model = "svm`, `filter: unterminated string starting at 16`},
		{`params.model = 'svm\'`, `filter: unterminated string starting at 16`},
		{`params.model = 'svm\`, `filter: unterminated string starting at 16`},
		{"metrics.`train loss = 1", "filter: unterminated quoted key starting at 9"},
		{"metric_acc.x > 1", `filter: unknown field "metric_acc.x" (use metrics.<key>, params.<key>, tags.<key> or an attribute)`},
		{"metrics.acc > 0.9 or params.x = 'a'", "filter: at 19: OR is not supported; run two searches"},
		{"metrics.acc > 0.9 OR params.x = 'a'", "filter: at 19: OR is not supported; run two searches"},
		{"metrics.acc = 'x'", "filter: at 15: metrics.acc: compare with a number, found 'x'"},
		{"metrics.acc IN (1, 'x')", "filter: at 20: metrics.acc: compare with a number, found 'x'"},
		{"metrics.acc LIKE '1%'", "filter: at 13: metrics.acc: LIKE compares strings, and metrics are numbers"},
		{"metrics.acc not ilike '1%'", "filter: at 13: metrics.acc: NOT ILIKE compares strings, and metrics are numbers"},
		{"params.x LIKE 1", `filter: at 15: expected a quoted pattern after "params.x LIKE", found "1"`},
		{"metrics.acc > ", `filter: at 15: expected a value after "metrics.acc >", found end of input`},
		{"params.x = svm", `filter: at 12: expected a value after "params.x =", found "svm" (strings need quotes: 'text')`},
		{"metrics.acc > nan", `filter: at 15: expected a value after "metrics.acc >", found "nan" (strings need quotes: 'text')`},
		{"metrics.acc > 1.2.3", `filter: at 15: malformed number "1.2.3"`},
		{"metrics.acc > 1e", `filter: at 15: malformed number "1e"`},
		{"metrics.acc > -", `filter: at 15: malformed number "-"`},
		{"metrics.acc > 0x10", `filter: at 15: malformed number "0x10"`},
		{"metrics.acc > 1e999", `filter: at 15: number "1e999" is out of range`},
		{"metrics.acc > 0.9and x = 1", `filter: at 15: malformed number "0.9and"`},
		{"metrics.acc > 1 metrics.b > 2", `filter: at 17: expected AND after "metrics.acc > 1", found "metrics.b"`},
		{"metrics.acc > 1 and", "filter: at 20: expected a clause after AND, found end of input"},
		{"metrics.acc > 1 and and x = 1", `filter: at 21: expected a field, found "and"`},
		{"and x = 1", `filter: at 1: expected a field, found "and"`},
		{"1 = 1", `filter: at 1: expected a field, found "1"`},
		{"= 1", `filter: at 1: expected a field, found "="`},
		{"(metrics.a > 1)", `filter: at 1: expected a field, found "(" (parentheses are only for IN lists; clauses are joined by AND)`},
		{"metrics > 1", `filter: at 1: "metrics" needs a key: metrics.<key>`},
		{"metrics. > 1", `filter: at 9: expected a key after "metrics.", found ">"`},
		{"metrics.`` > 1", "filter: at 1: empty key in \"metrics.``\""},
		{"params.x IN 'a'", `filter: at 13: expected "(" after "params.x IN", found "'a'"`},
		{"params.x IN ()", `filter: at 14: empty list after "params.x IN"`},
		{"params.x IN ('a' 'b')", `filter: at 18: expected "," or ")" in the list after "params.x IN", found "'b'"`},
		{"params.x IN ('a',)", `filter: at 18: expected a value after "params.x IN", found ")"`},
		{"params.x IN ('a'", `filter: at 17: expected "," or ")" in the list after "params.x IN", found end of input`},
		{"params.x NOT = 'a'", `filter: at 14: expected LIKE, ILIKE or IN after NOT, found "="`},
		{"params.x IS 'a'", `filter: at 13: expected NULL or NOT NULL after IS, found "'a'"`},
		{"params.x IS NOT 'a'", `filter: at 17: expected NULL after IS NOT, found "'a'"`},
		{"params.x = 'a' # comment", `filter: at 16: expected AND after "params.x = 'a'", found "#"`},
		{"métrics.a > 1", `filter: unknown field "métrics.a" (use metrics.<key>, params.<key>, tags.<key> or an attribute)`},
		{"params.ü = 'a' and x ? 1", `filter: at 22: expected an operator after "x", found "?"`},
	}
	for _, tt := range tests {
		_, err := ParseFilter(tt.in)
		if err == nil {
			t.Errorf("ParseFilter(%q) succeeded, want %s", tt.in, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("ParseFilter(%q):\n got %s\nwant %s", tt.in, err, tt.want)
		}
		var se *SyntaxError
		if !errors.As(err, &se) || se.Pos < 1 || se.What != "filter" {
			t.Errorf("ParseFilter(%q): error %#v is not a positioned *SyntaxError", tt.in, err)
		}
	}
}

func TestOrderErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"metrics.acc up", `sort: at 13: expected ASC, DESC or "," after "metrics.acc", found "up"`},
		{"metrics.acc desc desc", `sort: at 18: expected "," after "metrics.acc desc", found "desc"`},
		{"metrics.acc,", `sort: at 13: expected a field after ",", found end of input`},
		{",metrics.acc", `sort: at 1: expected a field, found ","`},
		{"metrics.acc desc,, x", `sort: at 18: expected a field, found ","`},
		{"-metrics.acc", `sort: at 1: expected a field, found "-metrics.acc"`},
	}
	for _, tt := range tests {
		_, err := ParseOrder(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseOrder(%q):\n got %v\nwant %s", tt.in, err, tt.want)
		}
	}
	if _, err := ParseField("metrics.a b"); err == nil || err.Error() != `field: at 11: unexpected "b" after "metrics.a"` {
		t.Errorf("ParseField: %v", err)
	}
}

func TestParseOrder(t *testing.T) {
	tests := []struct {
		in   string
		want []Order
	}{
		{"", nil},
		{"metrics.acc", []Order{{Field{Metric, "acc"}, false}}},
		{"metrics.acc desc", []Order{{Field{Metric, "acc"}, true}}},
		{"metrics.acc DESC, start_time", []Order{{Field{Metric, "acc"}, true}, {Field{Attr, "start_time"}, false}}},
		{" metrics.`a b` Asc ,params.x desc ", []Order{{Field{Metric, "a b"}, false}, {Field{Param, "x"}, true}}},
		{"metrics.acc desc,start_time", []Order{{Field{Metric, "acc"}, true}, {Field{Attr, "start_time"}, false}}},
	}
	for _, tt := range tests {
		got, err := ParseOrder(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseOrder(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if got := (Order{Field{Metric, "a b"}, true}).String(); got != "metrics.`a b` DESC" {
		t.Errorf("Order.String() = %q", got)
	}
}

func TestSort(t *testing.T) {
	nan := math.NaN()
	type row struct {
		name string
		rec
	}
	mkrow := func(name string, kv ...any) row { return row{name, mk(t, kv...)} }
	rows := []row{
		mkrow("a", "metrics.acc", 0.5, "params.p", "10", "tags.t", "x"),
		mkrow("b", "metrics.acc", nan, "params.p", "9", "tags.t", "y"),
		mkrow("c", "params.p", "abc", "tags.t", "x"),
		mkrow("d", "metrics.acc", 0.9, "params.p", "nan", "tags.t", "y"),
		mkrow("e", "metrics.acc", 0.5, "params.p", "1e1", "tags.t", "x"),
		mkrow("f", "metrics.acc", -1, "params.p", "B"),
		mkrow("g", "metrics.acc", 0.9, "tags.t", "y"),
	}
	tests := []struct{ order, want string }{
		{"", "abcdefg"},
		{"metrics.acc", "faedgbc"},
		{"metrics.acc desc", "dgaefbc"},
		// numbers (numerically) before strings, then NaN, then missing
		{"params.p", "baefcdg"},
		{"params.p desc", "cfaebdg"},
		{"tags.t, metrics.acc desc", "aecdgbf"},
		{"tags.t desc, metrics.acc", "dgbaecf"},
		{"tags.t desc, metrics.acc, params.p", "dgbaecf"},
		{"metrics.nosuch desc", "abcdefg"}, // all missing: input order
	}
	for _, tt := range tests {
		orders, err := ParseOrder(tt.order)
		if err != nil {
			t.Fatal(err)
		}
		rs := append([]row(nil), rows...)
		Sort(rs, orders)
		var got strings.Builder
		for _, r := range rs {
			got.WriteString(r.name)
		}
		if got.String() != tt.want {
			t.Errorf("Sort(%q) = %s, want %s", tt.order, got.String(), tt.want)
		}
	}
}

// TestSortStable sorts many ties and checks that each keeps input order.
func TestSortStable(t *testing.T) {
	type item struct {
		rec
		i int
	}
	var items []item
	for i := range 1000 {
		r := rec{{Metric, "m"}: NumValue(float64(i % 7))}
		if i%11 == 0 {
			r = rec{}
		}
		items = append(items, item{r, i})
	}
	for _, desc := range []bool{false, true} {
		rs := append([]item(nil), items...)
		Sort(rs, []Order{{Field{Metric, "m"}, desc}})
		for k := 1; k < len(rs); k++ {
			a, aok := rs[k-1].Lookup(Field{Metric, "m"})
			b, bok := rs[k].Lookup(Field{Metric, "m"})
			switch {
			case aok && !bok:
			case !aok && bok:
				t.Fatalf("missing before present at %d", k)
			case aok && a.Num != b.Num:
				if (a.Num > b.Num) != desc {
					t.Fatalf("out of order at %d", k)
				}
			default:
				if rs[k-1].i > rs[k].i {
					t.Fatalf("tie out of input order at %d", k)
				}
			}
		}
	}
}

// countRec counts its lookups.
type countRec struct {
	rec
	n *int
}

func (r countRec) Lookup(f Field) (Value, bool) {
	*r.n++
	return r.rec.Lookup(f)
}

func TestSortLookups(t *testing.T) {
	var n int
	var rs []countRec
	for i := range 1000 {
		rs = append(rs, countRec{rec{{Metric, "a"}: NumValue(float64(i % 3)), {Metric, "b"}: NumValue(float64(i % 5))}, &n})
	}
	orders, _ := ParseOrder("metrics.a, metrics.b desc, metrics.c")
	Sort(rs, orders)
	if n > len(rs)*len(orders) {
		t.Errorf("Sort made %d lookups for %d records and %d orders", n, len(rs), len(orders))
	}
	for k := 1; k < len(rs); k++ {
		a, b := rs[k-1].rec, rs[k].rec
		ka, kb := a[Field{Metric, "a"}].Num, b[Field{Metric, "a"}].Num
		if ka > kb || ka == kb && a[Field{Metric, "b"}].Num < b[Field{Metric, "b"}].Num {
			t.Fatalf("out of order at %d", k)
		}
	}
}
