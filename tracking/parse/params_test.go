package parse

import (
	"fmt"
	"maps"
	"strings"
	"testing"
)

func TestValue(t *testing.T) {
	cases := []struct {
		in, want, err string
		max           int
	}{
		{"0.001\n", "0.001", "", MaxParamValue},
		{"adam\r\n", "adam", "", MaxParamValue},
		{"  a b \t\n\n", "a b", "", MaxParamValue},
		{"line one\nline two\n", "line one\nline two", "", MaxParamValue},
		{"", "", "", MaxParamValue},
		{"h\xffllo\n", "", "value is not valid UTF-8", MaxParamValue},
		{strings.Repeat("x", MaxParamValue) + "\n", strings.Repeat("x", MaxParamValue), "", MaxParamValue},
		{strings.Repeat("x", MaxParamValue+1), "", "value is 6001 bytes; at most 6000 allowed", MaxParamValue},
		{strings.Repeat("x", MaxTagValue), strings.Repeat("x", MaxTagValue), "", MaxTagValue},
		{strings.Repeat("x", MaxTagValue+1), "", "value is 8001 bytes; at most 8000 allowed", MaxTagValue},
	}
	for _, c := range cases {
		got, err := Value([]byte(c.in), c.max)
		if fmt.Sprint(err) != fmt.Sprint(errOrNil(c.err)) || got != c.want {
			t.Errorf("Value(%.20q, %d) = %.20q, %v; want %.20q, %v", c.in, c.max, got, err, c.want, c.err)
		}
	}
}

func errOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

type paramsCase struct {
	name  string
	in    string
	want  map[string]string
	probs []string
	err   string
}

func checkParams(t *testing.T, fn func([]byte) (map[string]string, []error, error), cases []paramsCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, probs, err := fn([]byte(c.in))
			if fmt.Sprint(err) != fmt.Sprint(errOrNil(c.err)) {
				t.Fatalf("error %v, want %q", err, c.err)
			}
			if err != nil {
				if got != nil || probs != nil {
					t.Errorf("params or problems with a fatal error")
				}
				return
			}
			if !maps.Equal(got, c.want) {
				t.Errorf("got %q\nwant %q", got, c.want)
			}
			var ps []string
			for _, p := range probs {
				ps = append(ps, p.Error())
			}
			if strings.Join(ps, "\n") != strings.Join(c.probs, "\n") {
				t.Errorf("problems %q\nwant %q", ps, c.probs)
			}
		})
	}
}

func TestParamsJSON(t *testing.T) {
	checkParams(t, ParamsJSON, []paramsCase{
		{name: "flat and nested",
			in: `{"lr": 0.001, "e": 1e-3, "n": -5, "opt": {"name": "adam", "betas": [0.9, 0.999], "x": {"y": true}},
			      "flag": false, "none": null, "list": [ {"a" : 1}, "s p" ], "empty": {}, "ws": " kept "}`,
			want: map[string]string{"lr": "0.001", "e": "1e-3", "n": "-5", "opt.name": "adam", "opt.betas": "[0.9,0.999]",
				"opt.x.y": "true", "flag": "false", "none": "", "list": `[{"a":1},"s p"]`, "empty": "{}", "ws": " kept "}},
		{name: "python non-finite", in: `{"a": NaN, "b": -Infinity}`, want: map[string]string{"a": "NaN", "b": "-Infinity"}},
		{name: "bad keys and values", in: "{\"a..b\": 1, \"ok\": \"\\u00e9\", \"x!\": 2, \"bin\": \"\xff\", \"big\": \"" + strings.Repeat("x", 6001) + "\"}",
			want: map[string]string{"ok": "é"},
			probs: []string{`key "a..b": must not contain ".."`, `key "x!": must not contain '!'`,
				`key "bin": value is not valid UTF-8`, `key "big": value longer than 6000 bytes`}},
		{name: "duplicates", in: `{"a": {"b": 1}, "a.b": 2}`, want: map[string]string{"a.b": "2"},
			probs: []string{`key "a.b": given twice; the last value is kept`}},
		{name: "empty", in: " \n", want: map[string]string{}},
		{name: "empty object", in: "{}", want: map[string]string{}},
		{name: "byte order mark", in: "\xef\xbb\xbf{\"a\": 1}", want: map[string]string{"a": "1"}},
		{name: "array", in: "[1]", err: "not a JSON object"},
		{name: "string", in: `"x"`, err: "not a JSON object"},
		{name: "syntax", in: `{"a": 1,}`, err: "invalid JSON at byte 9: unexpected '}'"},
		{name: "truncated", in: `{"a": [1, 2`, err: "invalid JSON: unexpected end"},
		{name: "trailing", in: `{"a": 1} {}`, err: "invalid JSON at byte 10: data after the object"},
	})
}

func TestParamsYAML(t *testing.T) {
	checkParams(t, ParamsYAML, []paramsCase{
		{name: "flat and nested",
			in: "lr: 0.001\ne: 1e-3\nopt:\n  name: adam\n  betas: [0.9, 0.999]\n  x:\n    y: True\nflag: false\n" +
				"none: ~\nlist:\n  - {a: 1, b: [x, \"y z\"]}\n  - 0x1F\n  - .inf\n  - null\n  - \"q\\\"\"\nempty: {}\nquoted: \"007\"\n",
			want: map[string]string{"lr": "0.001", "e": "1e-3", "opt.name": "adam", "opt.betas": "[0.9,0.999]",
				"opt.x.y": "true", "flag": "false", "none": "",
				"list": `[{"a":1,"b":["x","y z"]},31,".inf",null,"q\""]`, "empty": "{}", "quoted": "007"}},
		{name: "merge keys", in: "base: &b\n  lr: 1\n  bs: 2\nrun:\n  <<: *b\n  lr: 3\nrun2:\n  lr: 4\n  <<: [*b]\n",
			want: map[string]string{"base.lr": "1", "base.bs": "2", "run.lr": "3", "run.bs": "2", "run2.lr": "4", "run2.bs": "2"}},
		{name: "bad keys", in: "a..b: 1\nok: 2\n[x]: 3\n", want: map[string]string{"ok": "2"},
			probs: []string{`key "a..b": must not contain ".."`, "a key in the top mapping is not a scalar"}},
		{name: "empty", in: "# nothing\n", want: map[string]string{}},
		{name: "null document", in: "~\n", want: map[string]string{}},
		{name: "list", in: "- 1\n", err: "yaml: not a mapping"},
		{name: "syntax", in: "a: [1\n", err: "yaml: line 1: did not find expected ',' or ']'"},
		{name: "billion laughs", in: laughs(), err: "yaml: document expands too much (aliases)"},
	})
}

func laughs() string {
	s := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 'b'; i <= 'j'; i++ {
		prev := string(i - 1)
		s += fmt.Sprintf("%c: &%c [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", i, i, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
	}
	return s
}

func TestCheckKey(t *testing.T) {
	cases := map[string]string{
		"loss":                   "",
		"train/loss":             "",
		"val acc-1_2.x":          "",
		"a.b":                    "",
		"":                       "key is empty",
		"a..b":                   `key "a..b": must not contain ".."`,
		"/a":                     `key "/a": must not start with "/"`,
		"a//b":                   `key "a//b": must not contain "//"`,
		"a/":                     `key "a/": must not end with "/"`,
		"a!":                     `key "a!": must not contain '!'`,
		"é":                      `key "é": must not contain 'é'`,
		"a\xff":                  `key "a\xff": must not contain byte 0xff`,
		strings.Repeat("a", 250): "",
		strings.Repeat("a", 251): `key "` + strings.Repeat("a", 64) + `"...: longer than 250 bytes`,
	}
	for in, want := range cases {
		if got := fmt.Sprint(CheckKey(in)); got != fmt.Sprint(errOrNil(want)) {
			t.Errorf("CheckKey(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCheckRunID(t *testing.T) {
	cases := map[string]string{
		"run1":                   "",
		"2024-12-04_a.b":         "",
		"A":                      "",
		strings.Repeat("a", 256): "",
		"":                       "run id is empty",
		"-a":                     `run id "-a": must start with a letter or digit`,
		".a":                     `run id ".a": must start with a letter or digit`,
		"a/b":                    `run id "a/b": must not contain '/'`,
		"a b":                    `run id "a b": must not contain ' '`,
		strings.Repeat("a", 257): `run id "` + strings.Repeat("a", 64) + `"...: longer than 256 bytes`,
	}
	for in, want := range cases {
		if got := fmt.Sprint(CheckRunID(in)); got != fmt.Sprint(errOrNil(want)) {
			t.Errorf("CheckRunID(%q) = %s, want %s", in, got, want)
		}
	}
}
