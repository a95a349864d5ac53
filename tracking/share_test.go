package tracking

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/tracking/parse"
)

// FuzzParseRunRef: a ref name read from the store either names a run
// (an id a run may have, a seq that runRef writes back) or is skipped.
func FuzzParseRunRef(f *testing.F) {
	for _, s := range []string{"runs/r1/0000000001", "runs/a.b-c_d/0000000042", "runs/r1/1", "runs/r1/", "runs//1",
		"runs/r1/x", "runs/r1/1/2", "runs/.x/1", "iris/v1", "runs/r1/99999999999999999999", "runs/r1/-1", "runs/r1/+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		id, seq, ok := parseRunRef(name)
		if !ok {
			return
		}
		if seq < 0 || strings.Contains(id, "/") {
			t.Fatalf("parseRunRef(%q) = %q, %d", name, id, seq)
		}
		id2, seq2, ok := parseRunRef(runRef(id, seq))
		if !ok || id2 != id || seq2 != seq {
			t.Fatalf("runRef(%q, %d) parses as %q, %d, %v", id, seq, id2, seq2, ok)
		}
	})
}

// FuzzDecodeMessage: a run's message from another machine decodes to a
// checked record, or is refused; what decodes encodes back to the same.
func FuzzDecodeMessage(f *testing.F) {
	in := &Info{ID: "r1", Status: Finished, Start: 1, End: 2, Host: "h", User: "u",
		Datasets: []Lineage{{Ref: "iris@v1", ID: cas.Sum([]byte("v")).String(), Time: 3}}}
	good, _ := encodeMessage(in)
	for _, s := range []string{good, `{}`, `{"format":1,"id":"r1","status":"done"}`, `{"format":99}`, `[1]`, ``,
		`{"format":1,"id":"../x","status":"running","datasets":[]}`, `{"format":1,"id":"r","status":"running","datasets":[{"ref":"x","id":"y"}]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := decodeMessage(s)
		if err != nil {
			return
		}
		if parse.CheckRunID(m.ID) != nil {
			t.Fatalf("accepted run id %q", m.ID)
		}
		again, _ := encodeMessage(&Info{ID: m.ID, Status: m.Status, Start: m.Start, End: m.End, LastWrite: m.LastWrite,
			Host: m.Host, User: m.User, Datasets: m.Datasets})
		m2, err := decodeMessage(again)
		if err != nil || m2.ID != m.ID || m2.Status != m.Status || len(m2.Datasets) != len(m.Datasets) {
			t.Fatalf("re-encoded message %q: %v", again, err)
		}
	})
}

// Ref names sort as their seqs do, which lists the newest publish last.
func TestRunRefOrder(t *testing.T) {
	for _, seq := range []int64{1, 9, 10, 99, 1000, 1e9} {
		a, b := runRef("r", seq), runRef("r", seq+1)
		if a >= b || cas.CheckRefName(a) != nil {
			t.Fatalf("%s, %s", a, b)
		}
	}
	if cas.CheckRefName(runRef(strings.Repeat("x", 128), 1)) != nil || cas.CheckRefName(runRef(strings.Repeat("x", 129), 1)) == nil {
		t.Fatal("the longest run id a ref holds is not 128 bytes")
	}
}

// A message carries what the files do not, and fits in a version: a run
// that read too many datasets lists the first ones.
func TestRunMessage(t *testing.T) {
	in := &Info{ID: "r1", Status: Finished, Start: 1, End: 2, LastWrite: 3, Host: "h", User: "u",
		Datasets: []Lineage{{Ref: "iris@v1", ID: strings.Repeat("a", 64), Time: 5}}}
	msg, cut := encodeMessage(in)
	m, err := decodeMessage(msg)
	if err != nil || cut != 0 {
		t.Fatal(err, cut)
	}
	if m.ID != "r1" || m.Status != Finished || m.Start != 1 || m.End != 2 || m.LastWrite != 3 || m.Host != "h" || m.User != "u" ||
		len(m.Datasets) != 1 || m.Datasets[0] != in.Datasets[0] {
		t.Fatalf("message %s decodes as %+v", msg, m)
	}
	for i := 0; i < 1000; i++ {
		in.Datasets = append(in.Datasets, Lineage{Ref: fmt.Sprintf("%0120d@v1", i), ID: strings.Repeat("b", 64), Time: int64(i)})
	}
	msg, cut = encodeMessage(in)
	if len(msg) > object.MaxStringLen || cut == 0 {
		t.Fatalf("a message of %d bytes, %d left out", len(msg), cut)
	}
	if m, err = decodeMessage(msg); err != nil || len(m.Datasets)+cut != len(in.Datasets) || m.Datasets[0].Ref != "iris@v1" {
		t.Fatalf("cut message: %v, %d datasets + %d cut", err, len(m.Datasets), cut)
	}
	if _, err := decodeMessage(`{"format": 2, "id": "r1"}`); err == nil {
		t.Fatal("a message of a newer format was taken")
	}
}
