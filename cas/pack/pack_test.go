package pack_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/castest"
	"github.com/mlfs/mlfs/cas/local"
	"github.com/mlfs/mlfs/cas/mem"
	"github.com/mlfs/mlfs/cas/pack"
)

var bg = context.Background()

func newPack(t *testing.T, be cas.Store, size int) *pack.Store {
	t.Helper()
	s, err := pack.New(bg, be, pack.Options{PackSize: size})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// corrupt flips a byte of blob id inside its pack, in the backend.
func corrupt(t *testing.T, s cas.Store, id cas.ID) {
	ps := s.(*pack.Store)
	if err := ps.Flush(bg); err != nil {
		t.Fatal(err)
	}
	p, off, length, ok := ps.Locate(id)
	if !ok {
		t.Fatalf("blob %s not in any pack", id.Short())
	}
	switch be := ps.Backend().(type) {
	case *mem.Store:
		be.Tamper(p, func(b []byte) []byte { b[off+length/2] ^= 1; return b })
	case *local.Store:
		path := be.ObjectPath(p)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[off+length/2] ^= 1
		os.Chmod(path, 0o644)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConformanceOverMem(t *testing.T) {
	castest.Run(t, castest.Harness{
		New:     func(t *testing.T) cas.Store { return newPack(t, mem.New(), 1<<20) },
		Corrupt: corrupt,
	})
}

func TestConformanceOverLocal(t *testing.T) {
	castest.Run(t, castest.Harness{
		New: func(t *testing.T) cas.Store {
			be, err := local.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return newPack(t, be, 1<<20)
		},
		Corrupt: corrupt,
		Reopen: func(t *testing.T, s cas.Store) cas.Store {
			root := s.(*pack.Store).Backend().(*local.Store).Root()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			be, err := local.Open(root)
			if err != nil {
				t.Fatal(err)
			}
			return newPack(t, be, 1<<20)
		},
	})
}

// TestFewBackendObjects: many small objects become a few packs.
func TestFewBackendObjects(t *testing.T) {
	be := mem.New()
	s := newPack(t, be, 1<<20)
	for i := 0; i < 10000; i++ {
		d := []byte(fmt.Sprintf("small object %d %s", i, bytes.Repeat([]byte("x"), 300)))
		if err := s.Put(bg, cas.Sum(d), d); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(bg); err != nil {
		t.Fatal(err)
	}
	n := 0
	be.List(bg, func(cas.ID, int64) error { n++; return nil })
	if n > 5 {
		t.Fatalf("10,000 small objects took %d backend objects", n)
	}
}

// A second Store over the same backend sees the first one's packs.
func TestSecondStoreSeesPacks(t *testing.T) {
	be := mem.New()
	a := newPack(t, be, 1<<20)
	b := newPack(t, be, 1<<20)
	d := []byte("written by a")
	if err := a.Put(bg, cas.Sum(d), d); err != nil {
		t.Fatal(err)
	}
	a.Flush(bg)
	got, err := b.Get(bg, cas.Sum(d))
	if err != nil || !bytes.Equal(got, d) {
		t.Fatalf("second store: %v", err)
	}
}

func TestCompact(t *testing.T) {
	be := mem.New()
	s := newPack(t, be, 64<<10)
	var ids []cas.ID
	for i := 0; i < 400; i++ {
		d := bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 500)
		ids = append(ids, cas.Sum(d))
		s.Put(bg, ids[i], d)
	}
	s.Flush(bg)
	// Drop the first half entirely and every other blob of the rest.
	for i, id := range ids {
		if i < 200 || i%2 == 0 {
			s.Delete(bg, id)
		}
	}
	st, err := s.Compact(bg, 0.6)
	if err != nil {
		t.Fatal(err)
	}
	if st.PacksDeleted == 0 || st.PacksRewritten == 0 || st.BytesFreed < 250*1000 {
		t.Fatalf("compact: %+v", st)
	}
	for i := 201; i < 400; i += 2 {
		if _, err := s.Get(bg, ids[i]); err != nil {
			t.Fatalf("live blob %d lost: %v", i, err)
		}
	}
	// A fresh store over the same backend agrees: no dead blob is back.
	s2 := newPack(t, be, 64<<10)
	live := 0
	s2.List(bg, func(cas.ID, int64) error { live++; return nil })
	if live != 100 {
		t.Fatalf("after compaction a new store lists %d blobs, want 100", live)
	}
}

// realPacks returns the packs a Store writes for a few blobs, to seed the
// fuzzer with valid input.
func realPacks(f *testing.F) [][]byte {
	be := mem.New()
	s, err := pack.New(bg, be, pack.Options{PackSize: 256})
	if err != nil {
		f.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		d := bytes.Repeat([]byte{byte('a' + i)}, 40*i+1)
		s.Put(bg, cas.Sum(d), d)
	}
	s.Flush(bg)
	var packs [][]byte
	be.List(bg, func(id cas.ID, _ int64) error {
		b, err := be.Get(bg, id)
		packs = append(packs, b)
		return err
	})
	return packs
}

// FuzzParsePack: Parse never panics, and what it accepts is a pack whose
// blobs tile the data area exactly.
func FuzzParsePack(f *testing.F) {
	for _, p := range realPacks(f) {
		f.Add(p)
	}
	f.Add([]byte("MLFSPAK1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := pack.Parse(b)
		if err != nil {
			return
		}
		var next uint32
		for _, e := range entries {
			if e.Offset != next {
				t.Fatalf("blob at %d, want %d", e.Offset, next)
			}
			next += e.Length
		}
		if int(next)+len(entries)*40+44 != len(b) {
			t.Fatalf("entries cover %d bytes of a %d-byte pack", next, len(b))
		}
	})
}
