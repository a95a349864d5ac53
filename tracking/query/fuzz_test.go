package query

import (
	"errors"
	"math"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

var fuzzRec = rec{
	{Metric, "acc"}:      NumValue(0.9),
	{Metric, "nan"}:      NumValue(math.NaN()),
	{Param, "lr"}:        StrValue("0.01"),
	{Param, "model"}:     StrValue("svm"),
	{Tag, "experiment"}:  StrValue("iris-v2"),
	{Attr, "status"}:     StrValue("FINISHED"),
	{Attr, "start_time"}: NumValue(1.7e12),
}

func checkSyntaxError(t *testing.T, s string, err error) {
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("%q: error %v is not a *SyntaxError", s, err)
	}
	if se.Pos < 1 || se.Pos > utf8.RuneCountInString(s)+1 {
		t.Fatalf("%q: error position %d out of range: %v", s, se.Pos, err)
	}
}

func sameLiteral(a, b literal) bool {
	num := func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) }
	return a.text == b.text && a.isNum == b.isNum && a.numOK == b.numOK &&
		a.hasDate == b.hasDate && num(a.num, b.num) && num(a.date, b.date)
}

func sameFilter(a, b *Filter) bool {
	if len(a.clauses) != len(b.clauses) {
		return false
	}
	for i, x := range a.clauses {
		y := b.clauses[i]
		if x.field != y.field || x.op != y.op || len(x.lits) != len(y.lits) || !reflect.DeepEqual(x.like, y.like) {
			return false
		}
		for j := range x.lits {
			if !sameLiteral(x.lits[j], y.lits[j]) {
				return false
			}
		}
	}
	return true
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		"metrics.accuracy > 0.9 and params.model = 'svm' and tags.experiment LIKE 'iris%'",
		"metrics.`train loss` <= -1e-3 AND attr.status IN ('FINISHED', \"FAILED\")",
		`params."a.b" != 'it''s' and run.start_time > '2026-12-01T10:00:00Z'`,
		"tags.x NOT ILIKE '_%\\\\' and params.y IS NOT NULL and z is null",
		"metrics.acc > 1 or metrics.b < 2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err != nil {
			checkSyntaxError(t, s, err)
			return
		}
		c := flt.String()
		again, err := ParseFilter(c)
		if err != nil {
			t.Fatalf("%q: canonical form %q does not parse: %v", s, c, err)
		}
		if again.String() != c {
			t.Fatalf("%q: canonical form %q prints as %q", s, c, again.String())
		}
		if !sameFilter(flt, again) {
			t.Fatalf("%q: canonical form %q parses to a different filter", s, c)
		}
		if flt.Match(fuzzRec) != again.Match(fuzzRec) {
			t.Fatalf("%q and %q disagree", s, c)
		}
		flt.Fields()
	})
}

func FuzzParseOrder(f *testing.F) {
	for _, s := range []string{
		"metrics.acc desc, start_time",
		"metrics.`train loss` ASC,params.\"a b\" DESC",
		"tags.t",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		orders, err := ParseOrder(s)
		if err != nil {
			checkSyntaxError(t, s, err)
			return
		}
		var parts []string
		for _, o := range orders {
			parts = append(parts, o.String())
		}
		c := strings.Join(parts, ", ")
		again, err := ParseOrder(c)
		if err != nil {
			t.Fatalf("%q: canonical form %q does not parse: %v", s, c, err)
		}
		if !reflect.DeepEqual(orders, again) {
			t.Fatalf("%q: canonical form %q parses to %v, want %v", s, c, again, orders)
		}
		rs := []rec{fuzzRec, {}, fuzzRec}
		Sort(rs, orders)
	})
}

// likeRegexp is the reference LIKE: the pattern as a regular expression.
func likeRegexp(pat string, fold bool) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("(?s)")
	if fold {
		b.WriteString("(?i)")
	}
	b.WriteString("^")
	for _, r := range pat { // invalid bytes come out as U+FFFD, as in matching
		switch r {
		case '%':
			b.WriteString(".*")
		case '_':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func FuzzLike(f *testing.F) {
	for _, s := range [][2]string{
		{"iris%", "iris-v2"},
		{"%v_", "iris-v2"},
		{"%a%b%", "xaxbx"},
		{"_", "é"},
		{"%ß%", "STRASSE"},
		{"k%", "\u212a"},
		{"%", ""},
		{"a%a", "a"},
	} {
		f.Add(s[0], s[1], false)
		f.Add(s[0], s[1], true)
	}
	f.Fuzz(func(t *testing.T, pat, text string, fold bool) {
		got := compileLike(pat, fold).match(text)
		want := likeRegexp(pat, fold).MatchString(text)
		if got != want {
			t.Fatalf("LIKE %q (fold %v) on %q = %v, want %v", pat, fold, text, got, want)
		}
	})
}

// TestLikeReference checks the matcher against the reference on a grid
// of short patterns and texts.
func TestLikeReference(t *testing.T) {
	alpha := []string{"a", "b", "%", "_", "A", "é", "É", "\xff", "\ufffd", "€"}
	var pats []string
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		pats = append(pats, prefix)
		if n == 0 {
			return
		}
		for _, c := range alpha {
			gen(prefix+c, n-1)
		}
	}
	gen("", 3)
	texts := []string{"", "a", "ab", "ba", "aab", "abab", "A", "é", "É", "aé", "\xff", "a\xffb", "\ufffd", "%", "_", "a%b", "€", "\xe2\x82", "a\xe2\x82", "\xe2\x82\xac\xac", "\xac€"}
	for _, fold := range []bool{false, true} {
		for _, p := range pats {
			m := compileLike(p, fold)
			re := likeRegexp(p, fold)
			for _, s := range texts {
				if got, want := m.match(s), re.MatchString(s); got != want {
					t.Errorf("LIKE %q (fold %v) on %q = %v, want %v", p, fold, s, got, want)
				}
			}
		}
	}
}
