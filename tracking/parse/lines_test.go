package parse

import (
	"runtime"
	"slices"
	"strings"
	"testing"
)

type parseCase struct {
	name string
	in   string
	want []string
}

func runCases(t *testing.T, f Format, cases []parseCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := checkStreaming(t, f, "loss", 0, []byte(c.in))
			if !slices.Equal(got.strings(), c.want) {
				t.Errorf("input %q\n got %s\nwant %q", c.in, show(got), c.want)
			}
		})
	}
}

func TestMetricLines(t *testing.T) {
	runCases(t, MetricLines, []parseCase{
		{"bare values", "0.5\n0.25\n1e-3\n", []string{"loss@0=0.5 t0", "loss@1=0.25 t0", "loss@2=0.001 t0"}},
		{"explicit then implicit", "10 0.5\n0.25\n3 1\n2\n", []string{"loss@10=0.5 t0", "loss@11=0.25 t0", "loss@3=1 t0", "loss@4=2 t0"}},
		{"negative step", "-2 1\n1\n", []string{"loss@-2=1 t0", "loss@-1=1 t0"}},
		{"time in seconds", "3 0.5 1733300000\n4 0.5 1733300000.25\n5 1 1.7333e9\n", []string{
			"loss@3=0.5 t1733300000000", "loss@4=0.5 t1733300000250", "loss@5=1 t1733300000000"}},
		{"separators", "1\t0.5\n2   0.5 \t 1733300000\n3,0.5\n4 , 0.5,1733300000\n5 ,0.5\n", []string{
			"loss@1=0.5 t0", "loss@2=0.5 t1733300000000", "loss@3=0.5 t0", "loss@4=0.5 t1733300000000", "loss@5=0.5 t0"}},
		{"crlf", "1 0.5\r\n2 0.25\r\n0.125\r\n", []string{"loss@1=0.5 t0", "loss@2=0.25 t0", "loss@3=0.125 t0"}},
		{"comments and blank lines", "# step value\n\n   \n\t\n  # indented\n1 x\n", []string{`! line 6: "x": not a number`}},
		{"nan and inf", "nan\nNaN\ninf\n-inf\n+inf\nInfinity\n-INFINITY\n-nan\n", []string{
			"loss@0=NaN t0", "loss@1=NaN t0", "loss@2=+Inf t0", "loss@3=-Inf t0", "loss@4=+Inf t0",
			"loss@5=+Inf t0", "loss@6=-Inf t0", "loss@7=NaN t0"}},
		{"bad lines in the middle", "1 0.5\nabc\n2.5 1\n3 1 2 4\n1,,2\n,1\n1,\n7\n", []string{
			"loss@1=0.5 t0",
			`! line 2: "abc": not a number`,
			`! line 3: step "2.5": not an integer`,
			"! line 4: more than 3 fields",
			"! line 5: empty field",
			"! line 6: empty field",
			"! line 7: empty field",
			"loss@2=7 t0"}},
		{"bad times", "1 1 -5\n2 1 abc\n3 1 nan\n4 1 1e300\n5 1 0\n", []string{
			`! line 1: time "-5": negative`,
			`! line 2: time "abc": not a number`,
			`! line 3: time "nan": not a finite number`,
			`! line 4: time "1e300": out of range`,
			"loss@5=1 t0"}},
		{"bad numbers", "0x10\n1_000\n1e400\n1 2e\n99999999999999999999 1\n", []string{
			`! line 1: "0x10": not a number`,
			`! line 2: "1_000": not a number`,
			`! line 3: "1e400": out of range`,
			`! line 4: "2e": not a number`,
			`! line 5: step "99999999999999999999": out of range`}},
		{"step overflow", "9223372036854775807 1\n2\n-9223372036854775808 3\n", []string{
			"loss@9223372036854775807=1 t0",
			"! line 2: step after 9223372036854775807 is out of range",
			"loss@-9223372036854775808=3 t0"}},
		{"byte order mark", "\xef\xbb\xbf1 2\n\xef\xbb\xbf3 4\n", []string{"loss@1=2 t0", `! line 2: step "\ufeff3": not an integer`}},
		{"unterminated last line is parsed at the end", "1 2\n3 4", []string{"loss@1=2 t0", "loss@3=4 t0"}},
	})
}

func TestUnterminatedLineWaits(t *testing.T) {
	inputs := map[Format]string{MetricLines: "1 2\n3 4", JSONL: "{\"a\":1}\n{\"a\":2}", CSV: "a\n1\n2"}
	for f, in := range inputs {
		var ev events
		p := New(f, "k")
		p.Feed([]byte(in), ev.emit, ev.report)
		n := len(ev)
		if want := int64(strings.LastIndexByte(in, '\n') + 1); p.Consumed() != want {
			t.Errorf("%v: consumed %d, want %d", f, p.Consumed(), want)
		}
		p.Feed(nil, ev.emit, ev.report)
		if len(ev) != n {
			t.Errorf("%v: an empty feed parsed something", f)
		}
		p.End(ev.emit, ev.report)
		if len(ev) != n+1 {
			t.Errorf("%v: End did not parse the last line: %s", f, show(ev))
		}
		if p.Consumed() != int64(len(in)) {
			t.Errorf("%v: consumed %d after End, want %d", f, p.Consumed(), len(in))
		}
		p.End(ev.emit, ev.report)
		if len(ev) != n+1 {
			t.Errorf("%v: a second End parsed again", f)
		}
	}
}

func TestConsumed(t *testing.T) {
	p := New(MetricLines, "k")
	in := "1 2\n# c\n\n3 4\n5"
	for i := 0; i < len(in); i++ {
		p.Feed([]byte(in[i:i+1]), nil, nil)
		last := int64(0)
		for j := 0; j <= i; j++ {
			if in[j] == '\n' {
				last = int64(j + 1)
			}
		}
		if p.Consumed() != last {
			t.Fatalf("after %d bytes: consumed %d, want %d", i+1, p.Consumed(), last)
		}
	}
	if p.Line() != 4 {
		t.Errorf("line %d, want 4", p.Line())
	}
}

func TestLineLimit(t *testing.T) {
	// A line of exactly the limit is parsed; one byte more is skipped.
	cases := []parseCase{
		{"at the limit", "1 2\n      7\n3 4\n", []string{"loss@1=2 t0", "loss@2=7 t0", "loss@3=4 t0"}},
		{"over the limit", "1 2\n       7\n3 4\n", []string{"loss@1=2 t0", "! line 2: line longer than 1 MiB", "loss@3=4 t0"}},
		{"crlf counts", "1 2\n      7\r\n3 4\n", []string{"loss@1=2 t0", "! line 2: line longer than 1 MiB", "loss@3=4 t0"}},
		{"unterminated at the end", "1 2\n         \n\n3 4\n1234567890", []string{
			"loss@1=2 t0", "! line 2: line longer than 1 MiB", "loss@3=4 t0", "! line 5: line longer than 1 MiB"}},
		{"several", "123456789\n123456789\n1\n", []string{
			"! line 1: line longer than 1 MiB", "! line 2: line longer than 1 MiB", "loss@0=1 t0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := checkStreaming(t, MetricLines, "loss", 7, []byte(c.in))
			if !slices.Equal(got.strings(), c.want) {
				t.Errorf("got %s\nwant %q", show(got), c.want)
			}
		})
	}
}

func TestHugeLine(t *testing.T) {
	const size = 5 << 20
	long := make([]byte, 0, size+16)
	for len(long) < size {
		long = append(long, "0123456789 "...)
	}
	cases := []struct {
		f          Format
		head, tail string
		want       []string
	}{
		{MetricLines, "1 0.5\n", "\n2 0.25\n", []string{"loss@1=0.5 t0", "! line 2: line longer than 1 MiB", "loss@2=0.25 t0"}},
		{JSONL, "{\"loss\": 0.5}\n", "\n{\"loss\": 0.25}\n", []string{"loss@0=0.5 t0", "! line 2: line longer than 1 MiB", "loss@1=0.25 t0"}},
		{CSV, "loss\n0.5\n", "\n0.25\n", []string{"loss@0=0.5 t0", "! line 3: line longer than 1 MiB", "loss@1=0.25 t0"}},
		{MetricLines, "1 0.5\n", "", []string{"loss@1=0.5 t0", "! line 2: line longer than 1 MiB"}},
	}
	for _, c := range cases {
		data := append(append([]byte(c.head), long...), c.tail...)
		var ev events
		p := New(c.f, "loss")
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := 0; i < len(data); i += 64 << 10 {
			p.Feed(data[i:min(i+64<<10, len(data))], ev.emit, ev.report)
			if cap(p.buf) > MaxLine {
				t.Fatalf("%v: holds %d bytes of an unfinished line", c.f, cap(p.buf))
			}
		}
		p.End(ev.emit, ev.report)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 3*MaxLine {
			t.Errorf("%v: allocated %d bytes for a %d-byte line", c.f, alloc, size)
		}
		if cap(p.buf) > 64<<10 {
			t.Errorf("%v: keeps a %d-byte buffer", c.f, cap(p.buf))
		}
		if !slices.Equal(ev.strings(), c.want) {
			t.Errorf("%v: got %s\nwant %q", c.f, show(ev), c.want)
		}
		if p.Consumed() != int64(len(data)) {
			t.Errorf("%v: consumed %d of %d", c.f, p.Consumed(), len(data))
		}
	}
}
