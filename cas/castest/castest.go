// Package castest is the conformance suite every cas.Store backend passes.
// A backend's test calls Run with a way to make a fresh store and a way to
// corrupt a stored object behind the store's back.
package castest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mlfs/mlfs/cas"
)

// Harness tells the suite how to drive one backend.
type Harness struct {
	// New returns an empty store; the suite closes it.
	New func(t *testing.T) cas.Store
	// Corrupt changes the stored bytes of object id without going through
	// the store, so that a later Get must report cas.ErrCorrupt.
	Corrupt func(t *testing.T, s cas.Store, id cas.ID)
	// Reopen, if set, closes s and opens the same store again, to prove
	// that objects and refs survive.
	Reopen func(t *testing.T, s cas.Store) cas.Store
}

func put(t *testing.T, s cas.Store, data []byte) cas.ID {
	t.Helper()
	id := cas.Sum(data)
	if err := s.Put(context.Background(), id, data); err != nil {
		t.Fatalf("put: %v", err)
	}
	return id
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	ctx := context.Background()
	store := func(t *testing.T) cas.Store {
		s := h.New(t)
		t.Cleanup(func() { s.Close() })
		return s
	}

	t.Run("PutGet", func(t *testing.T) {
		s := store(t)
		for _, n := range []int{0, 1, 4096, 1 << 20, 8<<20 + 3} {
			data := pattern(n)
			id := put(t, s, data)
			got, err := s.Get(ctx, id)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("get %d bytes: err %v, equal %v", n, err, bytes.Equal(got, data))
			}
			size, err := s.Stat(ctx, id)
			if err != nil || size != int64(n) {
				t.Fatalf("stat: %d, %v; want %d", size, err, n)
			}
		}
	})

	t.Run("PutDoesNotKeepCallerSlice", func(t *testing.T) {
		s := store(t)
		data := pattern(100)
		id := put(t, s, data)
		data[0] ^= 0xff
		if got, err := s.Get(ctx, id); err != nil || got[0] == data[0] {
			t.Fatalf("store aliases the caller's slice: %v", err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s := store(t)
		id := cas.Sum([]byte("never stored"))
		if _, err := s.Get(ctx, id); !errors.Is(err, cas.ErrNotFound) {
			t.Errorf("Get: %v", err)
		}
		if _, err := s.GetRange(ctx, id, 0, 1); !errors.Is(err, cas.ErrNotFound) {
			t.Errorf("GetRange: %v", err)
		}
		if _, err := s.Stat(ctx, id); !errors.Is(err, cas.ErrNotFound) {
			t.Errorf("Stat: %v", err)
		}
		if _, err := s.GetRef(ctx, "no/such"); !errors.Is(err, cas.ErrNotFound) {
			t.Errorf("GetRef: %v", err)
		}
		if err := s.Delete(ctx, id); err != nil {
			t.Errorf("Delete of absent object: %v", err)
		}
		if err := s.DeleteRef(ctx, "no/such"); err != nil {
			t.Errorf("DeleteRef of absent ref: %v", err)
		}
	})

	t.Run("Ranges", func(t *testing.T) {
		s := store(t)
		data := pattern(1000)
		id := put(t, s, data)
		cases := []struct {
			off, length int64
			want        []byte
		}{
			{0, 0, nil}, {0, 1, data[:1]}, {0, 1000, data}, {0, 5000, data}, {0, -1, data},
			{999, 1, data[999:]}, {999, 10, data[999:]}, {1000, 0, nil}, {1000, 10, nil}, {1000, -1, nil},
			{500, 100, data[500:600]}, {10, -1, data[10:]},
		}
		for _, c := range cases {
			got, err := s.GetRange(ctx, id, c.off, c.length)
			if err != nil || !bytes.Equal(got, c.want) {
				t.Errorf("GetRange(%d, %d): %d bytes, %v; want %d bytes", c.off, c.length, len(got), err, len(c.want))
			}
		}
		if _, err := s.GetRange(ctx, id, 1001, 1); !errors.Is(err, cas.ErrRange) {
			t.Errorf("GetRange past the end: %v, want ErrRange", err)
		}
		if _, err := s.GetRange(ctx, id, -1, 1); err == nil {
			t.Errorf("GetRange at a negative offset succeeded")
		}
		empty := put(t, s, nil)
		if got, err := s.GetRange(ctx, empty, 0, -1); err != nil || len(got) != 0 {
			t.Errorf("range of the empty object: %v", err)
		}
	})

	t.Run("ConcurrentPutsOfOneID", func(t *testing.T) {
		s := store(t)
		data := pattern(300 << 10)
		id := cas.Sum(data)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.Put(ctx, id, data)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent put: %v", err)
			}
		}
		if got, err := s.Get(ctx, id); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get after concurrent puts: %v", err)
		}
		n := 0
		if err := s.List(ctx, func(got cas.ID, size int64) error {
			if got == id {
				n++
				if size != int64(len(data)) {
					t.Errorf("listed size %d", size)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("object listed %d times", n)
		}
	})

	t.Run("ListAndDelete", func(t *testing.T) {
		s := store(t)
		want := map[cas.ID]int64{}
		for i := 0; i < 300; i++ {
			data := []byte(fmt.Sprintf("object %d", i))
			want[put(t, s, data)] = int64(len(data))
		}
		got := map[cas.ID]int64{}
		if err := s.List(ctx, func(id cas.ID, size int64) error { got[id] = size; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("listed %d objects, want %d", len(got), len(want))
		}
		for id, size := range want {
			if got[id] != size {
				t.Fatalf("object %s: listed size %d, want %d", id.Short(), got[id], size)
			}
		}
		victim := cas.Sum([]byte("object 7"))
		if err := s.Delete(ctx, victim); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, victim); !errors.Is(err, cas.ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		stop := errors.New("stop")
		if err := s.List(ctx, func(cas.ID, int64) error { return stop }); !errors.Is(err, stop) {
			t.Fatalf("List did not return the callback's error: %v", err)
		}
	})

	t.Run("Refs", func(t *testing.T) {
		s := store(t)
		a, b := put(t, s, []byte("a")), put(t, s, []byte("b"))
		if err := s.CreateRef(ctx, "iris/v1", a); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRef(ctx, "iris/v1", b); !errors.Is(err, cas.ErrExists) {
			t.Fatalf("second create: %v, want ErrExists", err)
		}
		if id, err := s.GetRef(ctx, "iris/v1"); err != nil || id != a {
			t.Fatalf("ref changed by a losing create: %v", err)
		}
		for _, n := range []string{"iris/v2", "iris/v10", "iris2/v1", "mnist/v1"} {
			if err := s.CreateRef(ctx, n, b); err != nil {
				t.Fatal(err)
			}
		}
		var names []string
		if err := s.ListRefs(ctx, "iris/", func(n string, _ cas.ID) error { names = append(names, n); return nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(names) != "[iris/v1 iris/v10 iris/v2]" {
			t.Fatalf("ListRefs(iris/) = %v", names)
		}
		for _, bad := range []string{"", "/x", "x/", "a//b", "../x", "x/..", "a b", ".hidden", "x/\xff", "ds/-v"} {
			if err := s.CreateRef(ctx, bad, a); err == nil {
				t.Errorf("CreateRef(%q) succeeded", bad)
			}
		}
		if err := s.DeleteRef(ctx, "iris/v2"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetRef(ctx, "iris/v2"); !errors.Is(err, cas.ErrNotFound) {
			t.Fatalf("deleted ref: %v", err)
		}
	})

	t.Run("RefNames", func(t *testing.T) {
		s := store(t)
		id := put(t, s, []byte("named"))
		for _, n := range []string{"a/v1", "a/v2", "b/v1", "runs/x/0000000001"} {
			if err := s.CreateRef(ctx, n, id); err != nil {
				t.Fatal(err)
			}
		}
		// Whatever the store implements, the listing of names agrees with
		// ListRefs.
		for _, prefix := range []string{"", "a/", "runs/", "zzz"} {
			var want, got []string
			if err := s.ListRefs(ctx, prefix, func(n string, _ cas.ID) error { want = append(want, n); return nil }); err != nil {
				t.Fatal(err)
			}
			if err := cas.ListRefNames(ctx, s, prefix, func(n string) error { got = append(got, n); return nil }); err != nil {
				t.Fatal(err)
			}
			sort.Strings(got)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("prefix %q: ListRefNames %v, ListRefs %v", prefix, got, want)
			}
		}
	})

	t.Run("OneWinnerAmongConcurrentCreators", func(t *testing.T) {
		s := store(t)
		const n = 16
		ids := make([]cas.ID, n)
		for i := range ids {
			ids[i] = put(t, s, []byte{byte(i)})
		}
		var wins atomic.Int32
		var winner atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.CreateRef(ctx, "race/v7", ids[i])
				switch {
				case err == nil:
					wins.Add(1)
					winner.Store(int32(i))
				case !errors.Is(err, cas.ErrExists):
					t.Errorf("creator %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d creators won, want exactly 1", wins.Load())
		}
		if id, err := s.GetRef(ctx, "race/v7"); err != nil || id != ids[winner.Load()] {
			t.Fatalf("ref does not point at the winner's id: %v", err)
		}
	})

	t.Run("CorruptionDetected", func(t *testing.T) {
		s := store(t)
		data := pattern(70000)
		id := put(t, s, data)
		if err := s.CreateRef(ctx, "c/v1", id); err != nil { // commits buffered objects
			t.Fatal(err)
		}
		h.Corrupt(t, s, id)
		got, err := s.Get(ctx, id)
		if !errors.Is(err, cas.ErrCorrupt) {
			t.Fatalf("Get of a corrupted object: %d bytes, err %v; want ErrCorrupt", len(got), err)
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		s := store(t)
		id := put(t, s, []byte("x"))
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Get(cctx, id); !errors.Is(err, context.Canceled) {
			t.Errorf("Get with a canceled context: %v", err)
		}
		if err := s.Put(cctx, cas.Sum([]byte("y")), []byte("y")); !errors.Is(err, context.Canceled) {
			t.Errorf("Put with a canceled context: %v", err)
		}
	})

	if h.Reopen != nil {
		t.Run("SurvivesReopen", func(t *testing.T) {
			s := h.New(t)
			data := pattern(123456)
			id := put(t, s, data)
			if err := s.CreateRef(ctx, "keep/v1", id); err != nil {
				t.Fatal(err)
			}
			id2 := put(t, s, []byte("put without a ref, then Close"))
			s = h.Reopen(t, s)
			defer s.Close()
			if got, err := s.Get(ctx, id); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("object after reopen: %v", err)
			}
			if _, err := s.Get(ctx, id2); err != nil {
				t.Fatalf("object put before Close: %v", err)
			}
			if got, err := s.GetRef(ctx, "keep/v1"); err != nil || got != id {
				t.Fatalf("ref after reopen: %v", err)
			}
		})
	}
}
