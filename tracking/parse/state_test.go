package parse

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"
)

// sealed adds the checksum to a state body.
func sealed(body ...byte) []byte {
	return binary.LittleEndian.AppendUint32(body, crc32.ChecksumIEEE(body))
}

func sampleState(t *testing.T) []byte {
	p := New(CSV, "")
	p.Feed([]byte("step,\"a b\",c\n1,2,3\n4,5"), nil, nil)
	st := p.State()
	if _, err := Restore(st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStateRoundTrip(t *testing.T) {
	for _, f := range []Format{MetricLines, JSONL, CSV} {
		p := newLimited(f, "train/loss", 4)
		p.Feed([]byte("h\n1\n2\n123456"), nil, nil)
		q, err := Restore(p.State())
		if err != nil {
			t.Fatalf("%v: %v", f, err)
		}
		if q.Format() != f || q.Line() != p.Line() || q.Consumed() != p.Consumed() || q.skipping != p.skipping ||
			q.prev != p.prev || q.started != p.started || q.key != p.key || q.limit != MaxLine {
			t.Errorf("%v: restored %+v from %+v", f, q, p)
		}
		if f == CSV && strings.Join(q.csv.names, ",") != "h" {
			t.Errorf("header %q", q.csv.names)
		}
	}
}

func TestRestoreRejects(t *testing.T) {
	good := sampleState(t)
	for i := range good {
		if _, err := Restore(good[:i]); err == nil {
			t.Errorf("accepted a state cut to %d bytes", i)
		}
		bad := bytes.Clone(good)
		bad[i] ^= 0x10
		if _, err := Restore(bad); err == nil {
			t.Errorf("accepted a state with byte %d changed", i)
		}
	}
	body := good[:len(good)-4]
	cases := map[string][]byte{
		"not a state":           sealed(append([]byte{'X'}, body[1:]...)...),
		"unknown version":       sealed(append([]byte{'P', 2}, body[2:]...)...),
		"unknown format":        sealed('P', 1, 9, 0, 0, 0, 0, 0),
		"format zero":           sealed('P', 1, 0, 0, 0, 0, 0, 0),
		"unknown flags":         sealed('P', 1, 1, 0, 0, 0x80, 0, 0),
		"step without start":    sealed('P', 1, 1, 0, 0, 0, 2, 0),
		"more lines than bytes": sealed('P', 1, 1, 3, 2, 0, 0, 0),
		"key for JSONL":         sealed('P', 1, 2, 0, 0, 0, 0, 1, 'k'),
		"header for JSONL":      sealed('P', 1, 2, 0, 0, flagHeader, 0, 0, 0),
		"trailing bytes":        sealed('P', 1, 1, 0, 0, 0, 0, 0, 0),
		"non-minimal varint":    sealed('P', 1, 1, 0x80, 0, 0, 0, 0, 0),
		"key past the end":      sealed('P', 1, 1, 0, 0, 0, 0, 5, 'k'),
		"huge column count":     sealed('P', 1, 3, 0, 0, flagHeader, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f),
		"name with a newline":   sealed('P', 1, 3, 0, 0, flagHeader, 0, 0, 1, 1, '\n'),
		"line past int64":       sealed(append([]byte{'P', 1, 1}, binary.AppendUvarint(nil, 1<<63)...)...),
	}
	for name, st := range cases {
		if _, err := Restore(st); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Restore(sealed('P', 1, 3, 0, 0, flagHeader, 0, 0, 1, 1, 'a')); err != nil {
		t.Errorf("rejected a minimal CSV state: %v", err)
	}
}
