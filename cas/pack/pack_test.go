package pack_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

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

// A small pack whose blobs are all live is below minLive only because of
// its index and trailer; compaction must keep it (rewritten, it came out
// the same under the same name, and deleting the old one lost the blob).
func TestCompactKeepsSmallLivePack(t *testing.T) {
	be := mem.New()
	s := newPack(t, be, 64<<10)
	d := []byte("a tree object of a working tree")
	s.Put(bg, cas.Sum(d), d)
	s.Flush(bg)
	for round := 0; round < 3; round++ {
		if _, err := s.Compact(bg, 0.5); err != nil {
			t.Fatal(err)
		}
		s2 := newPack(t, be, 64<<10)
		if got, err := s2.Get(bg, cas.Sum(d)); err != nil || !bytes.Equal(got, d) {
			t.Fatalf("round %d: a live blob of a small pack is gone: %v", round, err)
		}
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
	err = be.List(bg, func(id cas.ID, _ int64) error {
		// Packs are named by their trailer's hash, so read them by range.
		b, err := be.GetRange(bg, id, 0, -1)
		if err == nil && pack.Name(b) != id {
			err = fmt.Errorf("pack %s is not named by its trailer", id.Short())
		}
		packs = append(packs, b)
		return err
	})
	if err != nil || len(packs) < 2 {
		f.Fatalf("real packs: %d, %v", len(packs), err)
	}
	return packs
}

// FuzzParsePack: Parse never panics, and what it accepts is a pack whose
// blobs tile the data area exactly.
func FuzzParsePack(f *testing.F) {
	for _, p := range realPacks(f) {
		f.Add(p)
	}
	f.Add([]byte("MLFSPAK2"))
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

// failing fails every Put while full is set, as a full disk does.
type failing struct {
	cas.Store
	full atomic.Bool
}

func (f *failing) Put(ctx context.Context, id cas.ID, data []byte) error {
	if f.full.Load() {
		return fmt.Errorf("put %s: %w", id.Short(), syscall.ENOSPC)
	}
	return f.Store.Put(ctx, id, data)
}

// A pack that cannot be written is kept, stays readable, and is written
// by the first Flush after the disk has room again; meanwhile no ref can
// be created and new data is refused.
func TestFailedPackWriteIsRetried(t *testing.T) {
	be := &failing{Store: mem.New()}
	s := newPack(t, be, 1<<10)
	be.full.Store(true)
	var ids []cas.ID
	var stored []int
	refused := false
	for i := 0; i < 8; i++ {
		d := bytes.Repeat([]byte{byte(i)}, 700)
		ids = append(ids, cas.Sum(d))
		// Fills and seals packs that fail to write; once one has failed,
		// Put refuses more.
		if err := s.Put(bg, ids[i], d); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("put on a full disk: %v", err)
			}
			refused = true
			continue
		}
		stored = append(stored, i)
	}
	if !refused {
		t.Fatal("Put went on accepting data after a pack write failed")
	}
	if err := s.Flush(bg); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("flush on a full disk: %v", err)
	}
	if err := s.CreateRef(bg, "d/v1", ids[0]); err == nil {
		t.Fatal("a ref was created while its objects are not stored")
	}
	for _, i := range stored {
		if b, err := s.Get(bg, ids[i]); err != nil || b[0] != byte(i) {
			t.Fatalf("blob %d of an unwritten pack: %v", i, err)
		}
	}
	be.full.Store(false)
	if err := s.Flush(bg); err != nil {
		t.Fatalf("flush once the disk has room: %v", err)
	}
	if err := s.CreateRef(bg, "d/v1", ids[0]); err != nil {
		t.Fatal(err)
	}
	fresh := newPack(t, be.Store, 1<<10)
	for _, i := range stored {
		if _, err := fresh.Get(bg, ids[i]); err != nil {
			t.Fatalf("blob %d lost: %v", i, err)
		}
	}
}

// blocking holds every Put until release is closed.
type blocking struct {
	cas.Store
	release chan struct{}
}

func (b *blocking) Put(ctx context.Context, id cas.ID, data []byte) error {
	<-b.release
	return b.Store.Put(ctx, id, data)
}

// A Put canceled while waiting for a write slot loses nothing and leaves
// the store usable.
func TestCanceledPutKeepsStoreUsable(t *testing.T) {
	be := &blocking{Store: mem.New(), release: make(chan struct{})}
	s, err := pack.New(bg, be, pack.Options{PackSize: 1 << 10, Uploads: 1})
	if err != nil {
		t.Fatal(err)
	}
	a := bytes.Repeat([]byte("a"), 2000)
	if err := s.Put(bg, cas.Sum(a), a); err != nil { // takes the only slot
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	b := bytes.Repeat([]byte("b"), 2000)
	if err := s.Put(ctx, cas.Sum(b), b); !errors.Is(err, context.Canceled) {
		t.Fatalf("put waiting for a slot: %v, want canceled", err)
	}
	close(be.release)
	if got, err := s.Get(bg, cas.Sum(b)); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("blob of a canceled put: %v", err)
	}
	if err := s.Flush(bg); err != nil {
		t.Fatalf("flush after a canceled put: %v", err)
	}
	e := []byte("later")
	if err := s.Put(bg, cas.Sum(e), e); err != nil {
		t.Fatalf("put after a canceled put: %v", err)
	}
	if err := s.CreateRef(bg, "d/v1", cas.Sum(e)); err != nil {
		t.Fatal(err)
	}
	fresh := newPack(t, be.Store, 1<<10)
	for _, d := range [][]byte{a, b, e} {
		if _, err := fresh.Get(bg, cas.Sum(d)); err != nil {
			t.Fatalf("blob lost: %v", err)
		}
	}
}

// A pack is found only under its own name: bytes stored under another
// name (a swapped or renamed file) are not taken for blobs.
func TestPackNamedByTrailer(t *testing.T) {
	be := mem.New()
	s := newPack(t, be, 1<<10)
	d := bytes.Repeat([]byte("z"), 3000)
	s.Put(bg, cas.Sum(d), d)
	if err := s.Flush(bg); err != nil {
		t.Fatal(err)
	}
	var name cas.ID
	be.List(bg, func(id cas.ID, _ int64) error { name = id; return nil })
	raw, err := be.GetRange(bg, name, 0, -1)
	if err != nil || pack.Name(raw) != name {
		t.Fatalf("pack not named by its trailer: %v", err)
	}
	other := mem.New()
	other.Put(bg, cas.Sum([]byte("elsewhere")), raw)
	fresh := newPack(t, other, 1<<10)
	if _, err := fresh.Get(bg, cas.Sum(d)); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("a pack under a wrong name served its blob: %v", err)
	}
}

// Packs of format 1, named by the hash of all their bytes, are still read.
func TestReadsFormat1Packs(t *testing.T) {
	be := mem.New()
	s := newPack(t, be, 1<<10)
	d := bytes.Repeat([]byte("old"), 1000)
	s.Put(bg, cas.Sum(d), d)
	s.Flush(bg)
	var name cas.ID
	be.List(bg, func(id cas.ID, _ int64) error { name = id; return nil })
	raw, _ := be.GetRange(bg, name, 0, -1)
	v1 := append([]byte(nil), raw...)
	copy(v1[len(v1)-8:], "MLFSPAK1")
	old := mem.New()
	old.Put(bg, cas.Sum(v1), v1)
	fresh := newPack(t, old, 1<<10)
	if got, err := fresh.Get(bg, cas.Sum(d)); err != nil || !bytes.Equal(got, d) {
		t.Fatalf("blob of a format 1 pack: %v", err)
	}
}
