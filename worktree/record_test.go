package worktree

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
)

// seedRecords are records of the kinds a tree stores.
func seedRecords() []record {
	id := cas.Sum([]byte("some object"))
	return []record{
		{Type: object.TypeDir, Perm: 0o755, MTime: 1_700_000_000_000_000_000, Flags: flagLoaded},          // a new root
		{Type: object.TypeDir, Perm: 0o750, MTime: 1, Parent: 1, Name: "d", Flags: flagClean, Origin: id}, // a clean folder
		{Type: object.TypeFile, Perm: 0o644, MTime: -5, Size: 1 << 40, Parent: 7, Name: "ünï", Flags: flagClean, Origin: id},
		{Type: object.TypeFile, Perm: 0o4755, Size: 3, Parent: 1 << 50, Name: "local", Flags: flagLocal},
		{Type: object.TypeSymlink, Perm: 0o777, Parent: 2, Name: "l", Target: "../a/b"},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range seedRecords() {
		got, err := decodeRecord(r.encode())
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if *got != r {
			t.Fatalf("decoded %+v, encoded %+v", *got, r)
		}
	}
	for _, b := range [][]byte{
		nil, {2, 1}, {recordVersion, 9},
		append(seedRecords()[0].encode(), 0),                   // trailing
		{recordVersion, 2, 0x80, 0, 0, 0, 0, 0, 0, flagLoaded}, // perm 0 in two bytes
	} {
		if _, err := decodeRecord(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("decode %x: %v, want ErrMalformed", b, err)
		}
	}
}

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []meta{
		{Base: cas.Sum([]byte("v")), Next: 2, Counted: true},
		{Next: 1 << 40, Files: 12, Bytes: 1 << 50, Counted: true},
		{Next: 9}, // a tree from before counts were kept, or whose base's could not be read
		{Base: cas.Sum([]byte("v")), Next: 3, Files: 1, Bytes: 7, Counted: true, Pinned: true},
		{Next: 4, Pinned: true},
	} {
		got, err := decodeMeta(m.encode())
		if err != nil || *got != m {
			t.Fatalf("meta %+v decodes as %+v, %v", m, got, err)
		}
	}
	// A tree that is not pinned keeps the first format, which an older
	// mlfs reads; the flags byte admits no unknown bit.
	if b := (&meta{Next: 2}).encode(); b[0] != recordVersion {
		t.Fatalf("an unpinned meta is written in format %d", b[0])
	}
	bad := (&meta{Next: 4, Pinned: true}).encode()
	bad[len(bad)-1] |= 0x80
	if _, err := decodeMeta(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a meta with an unknown flag: %v, want ErrMalformed", err)
	}
}

// Whatever decodes is a record, and encodes to the very same bytes.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range seedRecords() {
		f.Add(r.encode())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if enc := r.encode(); !bytes.Equal(enc, b) {
			t.Fatalf("%x decodes to %+v, which encodes as %x", b, r, enc)
		}
	})
}
