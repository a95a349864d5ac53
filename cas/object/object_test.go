package object

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/mlfs/mlfs/cas"
)

func sampleTree() *Tree {
	return &Tree{Entries: []Entry{
		{Name: "a.csv", Type: TypeFile, Perm: 0o644, MTime: 1700000000123456789, Size: 10, ID: cas.Sum([]byte("f"))},
		{Name: "bin", Type: TypeDir, Perm: 0o755, MTime: -5, ID: cas.Sum([]byte("t"))},
		{Name: "latest", Type: TypeSymlink, Perm: 0o777, MTime: 0, Target: "a.csv"},
		{Name: "run.sh", Type: TypeFile, Perm: 0o4755, Size: 0, ID: cas.Sum(nil)},
		{Name: "ünïcode", Type: TypeFile, Perm: 0o600, Size: 1 << 40, ID: cas.Sum([]byte("u"))},
	}}
}

func sampleFile() *File {
	return &File{Size: 70000, Chunks: []ChunkRef{{cas.Sum([]byte("1")), 65536}, {cas.Sum([]byte("2")), 4464}}}
}

func sampleVersion() *Version {
	return &Version{Dataset: "iris", Tree: cas.Sum([]byte("t")), Parent: cas.Sum([]byte("p")),
		Time: 1764800000000000000, Host: "gpu-1", User: "ada", Message: "drop bad rows", Files: 3, Bytes: 4096}
}

func TestRoundTrip(t *testing.T) {
	tr := sampleTree()
	got, err := DecodeTree(tr.Encode())
	if err != nil || !reflect.DeepEqual(got, tr) {
		t.Fatalf("tree: %v\n%+v", err, got)
	}
	f := sampleFile()
	gf, err := DecodeFile(f.Encode())
	if err != nil || !reflect.DeepEqual(gf, f) {
		t.Fatalf("file: %v", err)
	}
	v := sampleVersion()
	gv, err := DecodeVersion(v.Encode())
	if err != nil || !reflect.DeepEqual(gv, v) {
		t.Fatalf("version: %v", err)
	}
	v.Parent = cas.ID{}
	gv, err = DecodeVersion(v.Encode())
	if err != nil || !reflect.DeepEqual(gv, v) {
		t.Fatalf("version without parent: %v", err)
	}
	empty := &File{}
	if _, err := DecodeFile(empty.Encode()); err != nil {
		t.Fatalf("empty file: %v", err)
	}
	if _, err := DecodeTree((&Tree{}).Encode()); err != nil {
		t.Fatalf("empty tree: %v", err)
	}
}

func TestRejectsMalformed(t *testing.T) {
	tree := func(mod func(*Tree)) []byte { tr := sampleTree(); mod(tr); return tr.Encode() }
	file := func(mod func(*File)) []byte { f := sampleFile(); mod(f); return f.Encode() }
	good := sampleTree().Encode()
	cases := map[string]struct {
		b      []byte
		decode func([]byte) error
	}{
		"empty":              {nil, decTree},
		"bad magic":          {append([]byte("mlfx"), good[4:]...), decTree},
		"wrong kind":         {sampleFile().Encode(), decTree},
		"future version":     {append(append([]byte("mlfsT"), 2), good[6:]...), decTree},
		"truncated":          {good[:len(good)-1], decTree},
		"trailing":           {append(bytes.Clone(good), 0), decTree},
		"unsorted":           {tree(func(t *Tree) { t.Entries[0], t.Entries[1] = t.Entries[1], t.Entries[0] }), decTree},
		"duplicate":          {tree(func(t *Tree) { t.Entries[1].Name = t.Entries[0].Name }), decTree},
		"slash in name":      {tree(func(t *Tree) { t.Entries[0].Name = "a/b" }), decTree},
		"dotdot":             {tree(func(t *Tree) { t.Entries[0].Name = ".." }), decTree},
		"non-utf8 name":      {tree(func(t *Tree) { t.Entries[0].Name = "\xff" }), decTree},
		"unknown type":       {tree(func(t *Tree) { t.Entries[0].Type = 9 }), decTree},
		"empty target":       {tree(func(t *Tree) { t.Entries[2].Target = "" }), decTree},
		"mode bits":          {tree(func(t *Tree) { t.Entries[0].Perm = 0o17777 }), decTree},
		"huge count":         {append([]byte("mlfsT\x01"), 0xff, 0xff, 0xff, 0x7f), decTree},
		"sizes disagree":     {file(func(f *File) { f.Size++ }), decFile},
		"zero chunk":         {file(func(f *File) { f.Chunks[1].Size = 0; f.Size = 65536 }), decFile},
		"chunk count lies":   {append([]byte("mlfsF\x01"), 10, 200, 1), decFile},
		"non-minimal varint": {append([]byte("mlfsF\x01"), 0x80, 0x00, 0x00), decFile},
		"zero parent": {func() []byte {
			b := sampleVersion().Encode()
			i := 6 + 1 + len("iris") + 32
			for j := 1; j <= 32; j++ {
				b[i+j] = 0
			}
			return b
		}(), decVersion},
	}
	for name, c := range cases {
		err := c.decode(c.b)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func decTree(b []byte) error    { _, err := DecodeTree(b); return err }
func decFile(b []byte) error    { _, err := DecodeFile(b); return err }
func decVersion(b []byte) error { _, err := DecodeVersion(b); return err }

func TestKindOf(t *testing.T) {
	if k, ok := KindOf(sampleTree().Encode()); !ok || k != KindTree {
		t.Fatal("tree kind")
	}
	if _, ok := KindOf([]byte("a,b,c\n1,2,3\n")); ok {
		t.Fatal("csv chunk taken for an object")
	}
}

// The fuzz targets check that decoding never panics and that whatever
// decodes re-encodes to the same bytes (canonical form).
func FuzzDecodeTree(f *testing.F) {
	f.Add(sampleTree().Encode())
	f.Add((&Tree{}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := DecodeTree(b)
		if err != nil {
			return
		}
		if !bytes.Equal(tr.Encode(), b) {
			t.Fatal("decoded tree does not re-encode to its input")
		}
	})
}

func FuzzDecodeFile(f *testing.F) {
	f.Add(sampleFile().Encode())
	f.Add((&File{}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeFile(b)
		if err != nil {
			return
		}
		if !bytes.Equal(v.Encode(), b) {
			t.Fatal("decoded file does not re-encode to its input")
		}
	})
}

func FuzzDecodeVersion(f *testing.F) {
	f.Add(sampleVersion().Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeVersion(b)
		if err != nil {
			return
		}
		if !bytes.Equal(v.Encode(), b) {
			t.Fatal("decoded version does not re-encode to its input")
		}
	})
}
