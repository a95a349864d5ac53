package tracking

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
)

func sampleInfo() *Info {
	return &Info{ID: "r1", Experiment: "iris", Status: Finished, Start: 1700000000000, End: 1700000001234, Host: "h", User: "u",
		Params: map[string]string{"lr": "0.01", "model.C": "1.5"}, Tags: map[string]string{"experiment": "iris"},
		Metrics: map[string]Metric{
			"loss": {Last: 0.25, Min: 0.1, Max: 2, Count: 10, LastStep: 9, LastTime: 1700000001000},
			"odd":  {Last: Float(math.NaN()), Min: Float(math.Inf(-1)), Max: Float(math.Inf(1)), Count: 3, LastStep: -1},
		},
		Datasets: []Lineage{{Ref: "iris@v1", ID: "ab", Time: 1700000000500}}, Errors: 2, LastWrite: 1700000001000}
}

func TestInfoRecordRoundTrip(t *testing.T) {
	in := sampleInfo()
	out, err := decodeInfo(encodeInfo(in))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encodeInfo(out), encodeInfo(in)) {
		t.Fatal("re-encoding differs")
	}
	if !math.IsNaN(float64(out.Metrics["odd"].Last)) || !math.IsInf(float64(out.Metrics["odd"].Min), -1) {
		t.Fatalf("non-finite values: %+v", out.Metrics["odd"])
	}
	in.Metrics["odd"], out.Metrics["odd"] = Metric{}, Metric{}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n%+v\n%+v", in, out)
	}
	enc := encodeInfo(sampleInfo())
	for i := 0; i < len(enc); i++ {
		if _, err := decodeInfo(enc[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
	if _, err := decodeInfo(append(enc, 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
}

// NaN and infinities survive JSON, as strings.
func TestInfoJSON(t *testing.T) {
	b, err := json.Marshal(sampleInfo())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"last":"nan","min":"-inf","max":"inf"`)) {
		t.Fatalf("JSON: %s", b)
	}
	var back Info
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(float64(back.Metrics["odd"].Max), 1) || back.Metrics["loss"].Last != 0.25 {
		t.Fatalf("back: %+v", back.Metrics)
	}
}

func FuzzDecodeInfo(f *testing.F) {
	f.Add(encodeInfo(sampleInfo()))
	f.Add(encodeInfo(&Info{ID: "x"}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decodeInfo(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		again, err := decodeInfo(encodeInfo(in))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !bytes.Equal(encodeInfo(again), encodeInfo(in)) {
			t.Fatal("encoding is not stable")
		}
	})
}
