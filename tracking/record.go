package tracking

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"unicode/utf8"
)

// ErrMalformed is wrapped by errors decoding a stored run record.
var ErrMalformed = errors.New("malformed run record")

// A run's record is stored in a compact binary form, not JSON: the daemon
// loads every record when it starts and mlfs runs without a daemon reads
// them all, and JSON with NaN-aware floats decodes ten times slower.
//
//	version (1)
//	id, experiment, status, host, user: strings (uvarint length, bytes)
//	start, end, last write, errors: zig-zag varints
//	params, tags: uvarint count, then sorted (key, value) strings
//	metrics: uvarint count, then sorted key, last, min, max (8 bytes each,
//	    IEEE 754 bits, little-endian), count, last step, last time (varints)
//	datasets: uvarint count, then ref, id strings and time varint
const recordVersion = 1

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendFloat(b []byte, f Float) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(f)))
}

func appendMap(b []byte, m map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b = appendString(b, k)
		b = appendString(b, m[k])
	}
	return b
}

func encodeInfo(in *Info) []byte {
	b := make([]byte, 0, 256+64*len(in.Metrics))
	b = append(b, recordVersion)
	for _, s := range []string{in.ID, in.Experiment, in.Status, in.Host, in.User} {
		b = appendString(b, s)
	}
	for _, v := range []int64{in.Start, in.End, in.LastWrite, in.Errors} {
		b = binary.AppendVarint(b, v)
	}
	b = appendMap(b, in.Params)
	b = appendMap(b, in.Tags)
	b = binary.AppendUvarint(b, uint64(len(in.Metrics)))
	for _, k := range slices.Sorted(maps.Keys(in.Metrics)) {
		m := in.Metrics[k]
		b = appendString(b, k)
		b = appendFloat(b, m.Last)
		b = appendFloat(b, m.Min)
		b = appendFloat(b, m.Max)
		b = binary.AppendVarint(b, m.Count)
		b = binary.AppendVarint(b, m.LastStep)
		b = binary.AppendVarint(b, m.LastTime)
	}
	b = binary.AppendUvarint(b, uint64(len(in.Datasets)))
	for _, d := range in.Datasets {
		b = appendString(b, d.Ref)
		b = appendString(b, d.ID)
		b = binary.AppendVarint(b, d.Time)
	}
	return b
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str(what string) string {
	n := d.uvarint(what)
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail(what + " longer than the record")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	if !utf8.ValidString(s) {
		d.fail(what + " is not UTF-8")
	}
	return s
}

func (d *decoder) float(what string) Float {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail(what)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return Float(v)
}

// count reads a count of items that take at least min bytes each.
func (d *decoder) count(what string, min int) int {
	n := d.uvarint(what)
	if d.err == nil && n > uint64(len(d.b)/min) {
		d.fail(what + " larger than the record can hold")
		return 0
	}
	return int(n)
}

func (d *decoder) strMap(what string) map[string]string {
	n := d.count(what, 2)
	m := make(map[string]string, n)
	prev := ""
	for i := 0; i < n && d.err == nil; i++ {
		k, v := d.str(what+" key"), d.str(what+" value")
		if i > 0 && k <= prev {
			d.fail(what + " keys not sorted")
		}
		m[k], prev = v, k
	}
	return m
}

func decodeInfo(b []byte) (*Info, error) {
	if len(b) == 0 || b[0] != recordVersion {
		return nil, fmt.Errorf("%w: unknown version", ErrMalformed)
	}
	d := &decoder{b: b[1:]}
	in := &Info{ID: d.str("id"), Experiment: d.str("experiment"), Status: d.str("status"), Host: d.str("host"), User: d.str("user")}
	in.Start, in.End, in.LastWrite, in.Errors = d.varint("start"), d.varint("end"), d.varint("last write"), d.varint("errors")
	in.Params = d.strMap("params")
	in.Tags = d.strMap("tags")
	n := d.count("metrics", 1+24+3)
	in.Metrics = make(map[string]Metric, n)
	prev := ""
	for i := 0; i < n && d.err == nil; i++ {
		k := d.str("metric key")
		m := Metric{Last: d.float("last"), Min: d.float("min"), Max: d.float("max"),
			Count: d.varint("count"), LastStep: d.varint("last step"), LastTime: d.varint("last time")}
		if i > 0 && k <= prev {
			d.fail("metric keys not sorted")
		}
		in.Metrics[k], prev = m, k
	}
	n = d.count("datasets", 3)
	in.Datasets = make([]Lineage, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		in.Datasets = append(in.Datasets, Lineage{Ref: d.str("dataset ref"), ID: d.str("dataset id"), Time: d.varint("dataset time")})
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return in, nil
}
