package parse

import (
	"fmt"
	"testing"
)

func TestErrorText(t *testing.T) {
	if s := (Error{Line: 3, Reason: "x"}).Error(); s != "line 3: x" {
		t.Errorf("got %q", s)
	}
	if s := (Error{Reason: "x"}).Error(); s != "x" {
		t.Errorf("got %q", s)
	}
	var err error = Error{Line: 1, Reason: "y"}
	if err.Error() != "line 1: y" {
		t.Errorf("got %q", err)
	}
}

func TestFormat(t *testing.T) {
	for f, want := range map[Format]string{MetricLines: "metric lines", JSONL: "JSONL", CSV: "CSV", 9: "Format(9)"} {
		if f.String() != want {
			t.Errorf("%d: %q", f, f.String())
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("New accepted format 0")
		}
	}()
	New(0, "")
}

func TestNoAllocPerLine(t *testing.T) {
	cases := map[Format]string{
		MetricLines: "%d 0.25 1733300000.5\n",
		JSONL:       `{"step": %d, "loss": 0.25, "train": {"acc": 0.5}}` + "\n",
		CSV:         "%d,0.25,\"0.5\"\n",
	}
	for f, format := range cases {
		var data []byte
		for i := 0; i < 1000; i++ {
			data = fmt.Appendf(data, format, i)
		}
		p := New(f, "loss")
		if f == CSV {
			p.Feed([]byte("step,loss,acc\n"), nil, nil)
		}
		n := 0
		emit := func(Point) { n++ }
		report := func(e Error) { t.Fatal(e) }
		p.Feed(data, emit, report) // warm up scratch space and keys
		allocs := testing.AllocsPerRun(10, func() {
			for i := 0; i < len(data); i += 4096 {
				p.Feed(data[i:min(i+4096, len(data))], emit, report)
			}
		})
		if allocs > 0 {
			t.Errorf("%v: %.0f allocations per 1000 lines", f, allocs)
		}
	}
}
