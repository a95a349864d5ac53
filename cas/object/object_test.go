package object

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
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
		"non-utf8 target":    {tree(func(t *Tree) { t.Entries[2].Target = "\xff" }), decTree},
		"huge size":          {tree(func(t *Tree) { t.Entries[0].Size = MaxSize + 1 }), decTree},
		"long name":          {tree(func(t *Tree) { t.Entries[4].Name = "z" + strings.Repeat("x", MaxNameLen) }), decTree},
		"long target":        {tree(func(t *Tree) { t.Entries[2].Target = strings.Repeat("x", MaxTargetLen+1) }), decTree},
		"non-utf8 message":   {func() []byte { v := sampleVersion(); v.Message = "\xff"; return v.Encode() }(), decVersion},
		"long dataset":       {func() []byte { v := sampleVersion(); v.Dataset = strings.Repeat("d", 129); return v.Encode() }(), decVersion},
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

// TestCheckAgreesWithDecoder: the checks an encoder runs refuse exactly
// what the decoder would refuse, so nothing is stored that cannot be read.
func TestCheckAgreesWithDecoder(t *testing.T) {
	trees := map[string]func(*Tree){
		"non-utf8 target": func(t *Tree) { t.Entries[2].Target = "\xff" },
		"huge size":       func(t *Tree) { t.Entries[0].Size = MaxSize + 1 },
		"nul in target":   func(t *Tree) { t.Entries[2].Target = "a\x00b" },
		"long target":     func(t *Tree) { t.Entries[2].Target = strings.Repeat("x", MaxTargetLen+1) },
	}
	for name, mod := range trees {
		tr := sampleTree()
		mod(tr)
		_, derr := DecodeTree(tr.Encode())
		if cerr := tr.Check(); (cerr == nil) != (derr == nil) {
			t.Errorf("%s: Check says %v, DecodeTree says %v", name, cerr, derr)
		}
	}
	versions := map[string]func(*Version){
		"non-utf8 message": func(v *Version) { v.Message = "\xff" },
		"non-utf8 host":    func(v *Version) { v.Host = "gpu\xff" },
		"long message":     func(v *Version) { v.Message = strings.Repeat("m", MaxStringLen+1) },
		"negative files":   func(v *Version) { v.Files = -1 },
	}
	for name, mod := range versions {
		v := sampleVersion()
		mod(v)
		_, derr := DecodeVersion(v.Encode())
		if cerr := v.Check(); (cerr == nil) != (derr == nil) {
			t.Errorf("%s: Check says %v, DecodeVersion says %v", name, cerr, derr)
		}
	}
	if err := sampleTree().Check(); err != nil {
		t.Errorf("sample tree: %v", err)
	}
	if err := sampleVersion().Check(); err != nil {
		t.Errorf("sample version: %v", err)
	}
}

func TestKindOf(t *testing.T) {
	if k, ok := KindOf(sampleTree().Encode()); !ok || k != KindTree {
		t.Fatal("tree kind")
	}
	if _, ok := KindOf([]byte("a,b,c\n1,2,3\n")); ok {
		t.Fatal("csv chunk taken for an object")
	}
}

// The fuzz targets check that decoding never panics, that whatever decodes
// re-encodes to the same bytes (canonical form) and passes Check, and that
// whatever passes Check encodes to bytes that decode to the same value.
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
		if err := tr.Check(); err != nil {
			t.Fatalf("decoded tree fails Check: %v", err)
		}
	})
}

// encoded clears the fields of e that its type does not encode.
func encoded(e Entry) Entry {
	switch e.Type {
	case TypeFile:
		e.Target = ""
	case TypeDir:
		e.Size, e.Target = 0, ""
	case TypeSymlink:
		e.Size, e.ID = 0, cas.ID{}
	}
	return e
}

// FuzzTreeCheck: a tree that Tree.Check accepts encodes to bytes that
// DecodeTree accepts, and they decode to the same entries.
func FuzzTreeCheck(f *testing.F) {
	f.Add("a.csv", byte(TypeFile), uint32(0o644), int64(1), int64(10), "", "link", "a.csv")
	f.Add("dir", byte(TypeDir), uint32(0o755), int64(-5), int64(0), "", "ü", "../x")
	f.Add("x", byte(TypeSymlink), uint32(0o777), int64(0), int64(0), "\xff", "y", "\xfe\xff")
	f.Add("big", byte(TypeFile), uint32(0o600), int64(0), int64(MaxSize+1), "", "z", "t")
	f.Add("\xff", byte(TypeFile), uint32(0o17777), int64(0), int64(-1), "", "", "")
	f.Fuzz(func(t *testing.T, name string, typ byte, perm uint32, mtime, size int64, target, name2, target2 string) {
		tr := &Tree{Entries: []Entry{
			{Name: name, Type: EntryType(typ), Perm: perm, MTime: mtime, Size: size, ID: cas.Sum([]byte(name)), Target: target},
			{Name: name2, Type: TypeSymlink, Perm: 0o777, MTime: mtime, Target: target2},
		}}
		if tr.Check() != nil {
			return
		}
		got, err := DecodeTree(tr.Encode())
		if err != nil {
			t.Fatalf("Check accepts %+v, DecodeTree rejects its encoding: %v", tr, err)
		}
		for i := range tr.Entries {
			if want := encoded(tr.Entries[i]); !reflect.DeepEqual(got.Entries[i], want) {
				t.Fatalf("entry %d decodes as %+v, want %+v", i, got.Entries[i], want)
			}
		}
	})
}

// FuzzVersionCheck: a version that Version.Check accepts encodes to bytes
// that DecodeVersion accepts, and they decode to the same version.
func FuzzVersionCheck(f *testing.F) {
	v := sampleVersion()
	f.Add(v.Dataset, v.Host, v.User, v.Message, v.Time, v.Files, v.Bytes, true)
	f.Add("iris", "h\xff", "", "", int64(-1), int64(-1), int64(MaxSize+1), false)
	f.Fuzz(func(t *testing.T, dataset, host, user, message string, tm, files, nbytes int64, parent bool) {
		v := &Version{Dataset: dataset, Tree: cas.Sum([]byte("t")), Time: tm, Host: host, User: user, Message: message, Files: files, Bytes: nbytes}
		if parent {
			v.Parent = cas.Sum([]byte("p"))
		}
		if v.Check() != nil {
			return
		}
		got, err := DecodeVersion(v.Encode())
		if err != nil {
			t.Fatalf("Check accepts %+v, DecodeVersion rejects its encoding: %v", v, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("decodes as %+v, want %+v", got, v)
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
		if err := v.Check(); err != nil {
			t.Fatalf("decoded version fails Check: %v", err)
		}
	})
}
