package parse

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

var lineSeeds = []string{
	"0.5\n0.25\n",
	"1 0.5\n2 0.25 1733300000.25\n0.125\n",
	"# step value\n1,0.5\r\n\n3 , 1e-3 , 1733300000\nnan\n-inf\n",
	"1 abc\n2.5 1\n1 2 3 4\n9223372036854775807 1\n2\n",
	"1 2\n3 4",
}

var jsonlSeeds = []string{
	`{"step": 3, "loss": 0.25, "acc": 0.91}` + "\n",
	`{"epoch": 1, "train": {"loss": 1}, "timestamp": 1733300000.5}` + "\n" + `{"loss": NaN}` + "\n",
	`{"a": "inf", "b": "x", "c": null, "d": [1], "e\u0041": 1e400}` + "\r\n[1]\n{bad\n",
	`{"step": 1.5}` + "\n" + `{"a..b": 1, "ok": 2}` + "\n" + `{"loss": 2}`,
}

var csvSeeds = []string{
	"epoch,loss,accuracy,val_loss\n0,0.5,0.8,0.6\n1,0.4,0.85,0.55\n",
	"epoch,step,train_loss,val_acc\n0,49,0.5,\n0,49,,0.8\n",
	"\"step\",\"val acc\",\"a,b\"\r\n\"1\",x,2\n1,2,3,4\n",
	"a,timestamp\n1,1733300000.25\n2\n\"3\n",
}

func FuzzMetricLines(f *testing.F) {
	for i, s := range lineSeeds {
		f.Add([]byte(s), uint64(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		fuzzStreaming(t, MetricLines, data, seed)
	})
}

func FuzzJSONL(f *testing.F) {
	for i, s := range jsonlSeeds {
		f.Add([]byte(s), uint64(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		fuzzStreaming(t, JSONL, data, seed)
		checkScanner(t, data)
	})
}

// checkScanner compares the JSON scanner with encoding/json on input
// without the tokens only the scanner accepts and without deep nesting.
func checkScanner(t *testing.T, data []byte) {
	if bytes.Contains(data, []byte("NaN")) || bytes.Contains(data, []byte("Infinity")) ||
		bytes.Count(data, []byte("{"))+bytes.Count(data, []byte("[")) >= maxDepth {
		return
	}
	s := jscan{b: data}
	ok := s.skip(0)
	if ok {
		s.ws()
		ok = s.i == len(data)
	}
	if ok != json.Valid(data) {
		t.Fatalf("scanner says valid=%v for %q, encoding/json %v (%s)", ok, data, !ok, s.err)
	}
}

func FuzzCSV(f *testing.F) {
	for i, s := range csvSeeds {
		f.Add([]byte(s), uint64(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		fuzzStreaming(t, CSV, data, seed)
	})
}

func FuzzParams(f *testing.F) {
	for _, s := range []string{
		`{"lr": 0.001, "opt": {"name": "adam", "betas": [0.9, 0.999]}, "flag": true, "none": null}`,
		`{"a..b": 1, "x": {}, "n": NaN}`,
		"lr: 0.001\nopt:\n  name: adam\n  betas: [0.9, 0.999]\nflag: yes\n",
		"base: &b {lr: 1}\nrun:\n  <<: *b\n  bs: 2\n",
		"a: &a [*a]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for name, fn := range map[string]func([]byte) (map[string]string, []error, error){"json": ParamsJSON, "yaml": ParamsYAML} {
			params, probs, err := fn(data)
			if err != nil && (params != nil || probs != nil) {
				t.Fatalf("%s: params with a fatal error", name)
			}
			for k, v := range params {
				if CheckKey(k) != nil || !utf8.ValidString(v) || len(v) > MaxParamValue {
					t.Fatalf("%s: returned %q = %q", name, k, v)
				}
			}
			if name == "json" && err == nil && len(bytes.TrimSpace(data)) > 0 &&
				!bytes.Contains(data, []byte("NaN")) && !bytes.Contains(data, []byte("Infinity")) &&
				!json.Valid(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))) {
				t.Fatalf("json: accepted invalid JSON %q", data)
			}
		}
	})
}

func FuzzRestore(f *testing.F) {
	for _, fm := range []Format{MetricLines, JSONL, CSV} {
		for _, s := range [][]string{lineSeeds, jsonlSeeds, csvSeeds}[fm-1] {
			p := New(fm, "loss")
			p.Feed([]byte(s), nil, nil)
			f.Add(p.State())
		}
	}
	f.Add([]byte{})
	f.Add([]byte("P\x01\x03"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Restore(data)
		if err != nil {
			return
		}
		if st := p.State(); !bytes.Equal(st, data) {
			t.Fatalf("restored %x, which encodes as %x", data, st)
		}
		p.Feed([]byte("1,2\n{\"a\": 1}\n3"), nil, nil)
		p.End(nil, nil)
	})
}
