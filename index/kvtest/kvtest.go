// Package kvtest is a conformance suite for [index.KV] implementations.
//
// An implementation's tests call Run, and RunPersistent if it stores data
// durably:
//
//	func TestKV(t *testing.T) {
//		kvtest.Run(t, func(t *testing.T) index.KV { return memkv.New() })
//	}
//
// Run the suite with -race: it includes concurrent access.
package kvtest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/mlfs/mlfs/index"
)

// Run runs the conformance suite. open must return a new, empty KV for each
// call; the suite closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) index.KV) {
	fresh := func(t *testing.T) index.KV {
		t.Helper()
		kv := open(t)
		t.Cleanup(func() { kv.Close() })
		return kv
	}
	tests := []struct {
		name string
		fn   func(*testing.T, index.KV)
	}{
		{"GetMissing", testGetMissing},
		{"SetGet", testSetGet},
		{"EmptyKey", testEmptyKey},
		{"Delete", testDelete},
		{"NoAliasing", testNoAliasing},
		{"ScanPrefix", testScanPrefix},
		{"ScanStop", testScanStop},
		{"ScanSnapshot", testScanSnapshot},
		{"Batch", testBatch},
		{"BatchCancel", testBatchCancel},
		{"BatchLarge", testBatchLarge},
		{"Concurrent", testConcurrent},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, fresh(t)) })
	}
}

// RunPersistent checks that data survives Close and reopening. open must
// open (creating if needed) the KV stored in dir.
func RunPersistent(t *testing.T, open func(t *testing.T, dir string) index.KV) {
	t.Run("Reopen", func(t *testing.T) {
		dir := t.TempDir()
		kv := open(t, dir)
		mustSet(t, kv, "p/set", "v1")
		mustSet(t, kv, "p/overwritten", "old")
		mustSet(t, kv, "p/overwritten", "new")
		mustSet(t, kv, "p/deleted", "x")
		if err := kv.Delete([]byte("p/deleted")); err != nil {
			t.Fatal(err)
		}
		b := kv.NewBatch()
		for i := range 1000 {
			if err := b.Set(fmt.Appendf(nil, "p/batch/%04d", i), fmt.Appendf(nil, "%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := kv.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		kv = open(t, dir)
		defer kv.Close()
		wantGet(t, kv, "p/set", "v1")
		wantGet(t, kv, "p/overwritten", "new")
		wantMissing(t, kv, "p/deleted")
		wantGet(t, kv, "p/batch/0999", "999")
		if n := count(t, kv, "p/batch/"); n != 1000 {
			t.Errorf("after reopen, %d batch keys, want 1000", n)
		}
	})
}

func testGetMissing(t *testing.T, kv index.KV) {
	wantMissing(t, kv, "nope")
	mustSet(t, kv, "nope2", "x")
	wantMissing(t, kv, "nope")
	wantMissing(t, kv, "nope22")
	wantMissing(t, kv, "nop")
}

func testSetGet(t *testing.T, kv index.KV) {
	mustSet(t, kv, "k", "v1")
	wantGet(t, kv, "k", "v1")
	mustSet(t, kv, "k", "v2")
	wantGet(t, kv, "k", "v2")
	mustSet(t, kv, "empty", "")
	wantGet(t, kv, "empty", "")
	bin := "\x00\xff\x01\xfe"
	mustSet(t, kv, bin, bin)
	wantGet(t, kv, bin, bin)
	big := string(bytes.Repeat([]byte("0123456789abcdef"), 1<<17)) // 2 MiB
	mustSet(t, kv, "big", big)
	wantGet(t, kv, "big", big)
}

func testEmptyKey(t *testing.T, kv index.KV) {
	if err := kv.Set(nil, []byte("v")); !errors.Is(err, index.ErrEmptyKey) {
		t.Errorf("Set(empty) = %v, want ErrEmptyKey", err)
	}
	if err := kv.Delete([]byte{}); !errors.Is(err, index.ErrEmptyKey) {
		t.Errorf("Delete(empty) = %v, want ErrEmptyKey", err)
	}
	wantMissing(t, kv, "")
	b := kv.NewBatch()
	defer b.Cancel()
	if err := b.Set(nil, []byte("v")); !errors.Is(err, index.ErrEmptyKey) {
		t.Errorf("Batch.Set(empty) = %v, want ErrEmptyKey", err)
	}
	if err := b.Delete(nil); !errors.Is(err, index.ErrEmptyKey) {
		t.Errorf("Batch.Delete(empty) = %v, want ErrEmptyKey", err)
	}
}

func testDelete(t *testing.T, kv index.KV) {
	if err := kv.Delete([]byte("absent")); err != nil {
		t.Errorf("Delete(absent) = %v, want nil", err)
	}
	mustSet(t, kv, "a", "1")
	mustSet(t, kv, "ab", "2")
	if err := kv.Delete([]byte("a")); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, kv, "a")
	wantGet(t, kv, "ab", "2")
	if err := kv.Delete([]byte("a")); err != nil {
		t.Errorf("second Delete = %v, want nil", err)
	}
	wantScan(t, kv, "", "ab")
	mustSet(t, kv, "a", "3")
	wantGet(t, kv, "a", "3")
}

func testNoAliasing(t *testing.T, kv index.KV) {
	key, val := []byte("key"), []byte("value")
	if err := kv.Set(key, val); err != nil {
		t.Fatal(err)
	}
	key[0], val[0] = 'X', 'X'
	wantGet(t, kv, "key", "value")
	wantMissing(t, kv, "Xey")

	got, err := kv.Get([]byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	got[0] = 'Y'
	wantGet(t, kv, "key", "value")

	key, val = []byte("bkey"), []byte("bvalue")
	b := kv.NewBatch()
	if err := b.Set(key, val); err != nil {
		t.Fatal(err)
	}
	key[0], val[0] = 'X', 'X'
	dkey := []byte("key")
	if err := b.Delete(dkey); err != nil {
		t.Fatal(err)
	}
	dkey[0] = 'Z'
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	wantGet(t, kv, "bkey", "bvalue")
	wantMissing(t, kv, "key")
}

func testScanPrefix(t *testing.T, kv index.KV) {
	// Listed in ascending bytewise order.
	keys := []string{
		"\x00",
		"a", "a/1", "a/2", "ab", "a\xff", "a\xff\x00", "a\xff\xff",
		"b", "b\x00",
		"\xff", "\xff\xff\x00",
	}
	// Insert in a scrambled order.
	for i := range keys {
		k := keys[(i*7)%len(keys)]
		mustSet(t, kv, k, "v:"+k)
	}
	wantScan(t, kv, "", keys...)
	wantScan(t, kv, "a", "a", "a/1", "a/2", "ab", "a\xff", "a\xff\x00", "a\xff\xff")
	wantScan(t, kv, "a/", "a/1", "a/2")
	wantScan(t, kv, "a\xff", "a\xff", "a\xff\x00", "a\xff\xff")
	wantScan(t, kv, "a\xff\xff", "a\xff\xff")
	wantScan(t, kv, "b", "b", "b\x00")
	wantScan(t, kv, "\xff", "\xff", "\xff\xff\x00")
	wantScan(t, kv, "\xff\xff", "\xff\xff\x00")
	wantScan(t, kv, "\x00", "\x00")
	wantScan(t, kv, "c")
	wantScan(t, kv, "a/3")
	wantScan(t, kv, "ab/")

	// Values belong to their keys.
	err := kv.Scan(nil, func(k, v []byte) error {
		if want := "v:" + string(k); string(v) != want {
			t.Errorf("Scan: key %q has value %q, want %q", k, v, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testScanStop(t *testing.T, kv index.KV) {
	for i := range 10 {
		mustSet(t, kv, fmt.Sprintf("s/%d", i), "v")
	}
	stop := errors.New("stop")
	var seen []string
	err := kv.Scan([]byte("s/"), func(k, v []byte) error {
		seen = append(seen, string(k))
		if len(seen) == 3 {
			return fmt.Errorf("wrapped: %w", stop)
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("Scan = %v, want fn's error", err)
	}
	if fmt.Sprint(seen) != "[s/0 s/1 s/2]" {
		t.Errorf("Scan visited %q, want [s/0 s/1 s/2]", seen)
	}
}

func testScanSnapshot(t *testing.T, kv index.KV) {
	mustSet(t, kv, "s/1", "v")
	mustSet(t, kv, "s/2", "v")
	// fn may use the KV; its writes are not seen by the running scan.
	var seen []string
	err := kv.Scan([]byte("s/"), func(k, v []byte) error {
		seen = append(seen, string(k))
		if string(k) == "s/1" {
			if err := kv.Set([]byte("s/3"), []byte("new")); err != nil {
				return err
			}
			if err := kv.Delete([]byte("s/2")); err != nil {
				return err
			}
			if _, err := kv.Get([]byte("s/3")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[s/1 s/2]" {
		t.Errorf("Scan with concurrent writes visited %q, want [s/1 s/2]", seen)
	}
	wantScan(t, kv, "s/", "s/1", "s/3")
}

func testBatch(t *testing.T, kv index.KV) {
	mustSet(t, kv, "old", "v")
	mustSet(t, kv, "keep", "v")

	b := kv.NewBatch()
	defer b.Cancel()
	must(t, b.Set([]byte("new"), []byte("1")))
	must(t, b.Delete([]byte("old")))
	must(t, b.Set([]byte("dup"), []byte("first")))
	must(t, b.Set([]byte("dup"), []byte("second")))
	must(t, b.Set([]byte("gone"), []byte("x")))
	must(t, b.Delete([]byte("gone")))
	must(t, b.Delete([]byte("absent")))

	// Nothing is visible before Commit.
	wantMissing(t, kv, "new")
	wantGet(t, kv, "old", "v")
	wantScan(t, kv, "", "keep", "old")

	if err := b.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	wantScan(t, kv, "", "dup", "keep", "new")
	wantGet(t, kv, "dup", "second")
	wantGet(t, kv, "new", "1")

	// A finished batch rejects further use; Cancel is then a no-op.
	if err := b.Set([]byte("late"), []byte("x")); err == nil {
		t.Error("Set after Commit succeeded")
	}
	if err := b.Commit(); err == nil {
		t.Error("second Commit succeeded")
	}
	b.Cancel()
	wantGet(t, kv, "new", "1")
	wantMissing(t, kv, "late")

	if err := kv.NewBatch().Commit(); err != nil {
		t.Errorf("empty Commit: %v", err)
	}
}

func testBatchCancel(t *testing.T, kv index.KV) {
	mustSet(t, kv, "old", "v")
	b := kv.NewBatch()
	must(t, b.Set([]byte("new"), []byte("1")))
	must(t, b.Delete([]byte("old")))
	b.Cancel()
	if err := b.Commit(); err == nil {
		t.Error("Commit after Cancel succeeded")
	}
	wantMissing(t, kv, "new")
	wantGet(t, kv, "old", "v")
}

func testBatchLarge(t *testing.T, kv index.KV) {
	const n = 200_000
	if testing.Short() {
		t.Skip("skipping large batch in -short mode")
	}
	mustSet(t, kv, "big/deleted-late", "x")
	b := kv.NewBatch()
	defer b.Cancel()
	must(t, b.Set([]byte("big/dup"), []byte("first")))
	val := bytes.Repeat([]byte("v"), 100)
	for i := range n {
		must(t, b.Set(fmt.Appendf(nil, "big/%07d", i), val))
	}
	// Writes at the end must override earlier ones even if the engine
	// splits the batch.
	must(t, b.Set([]byte("big/dup"), []byte("last")))
	must(t, b.Delete([]byte("big/0000000")))
	must(t, b.Delete([]byte("big/deleted-late")))
	if err := b.Commit(); err != nil {
		t.Fatalf("Commit of %d writes: %v", n, err)
	}
	wantGet(t, kv, "big/dup", "last")
	wantMissing(t, kv, "big/0000000")
	wantMissing(t, kv, "big/deleted-late")
	wantGet(t, kv, fmt.Sprintf("big/%07d", n-1), string(val))
	if got, want := count(t, kv, "big/"), n; got != want { // n-1 numbered keys + dup
		t.Errorf("Scan found %d keys, want %d", got, want)
	}
}

func testConcurrent(t *testing.T, kv index.KV) {
	const workers, ops = 8, 300
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range ops {
				k := fmt.Appendf(nil, "c/%d/%04d", w, i)
				v := fmt.Appendf(nil, "%d-%d", w, i)
				if err := kv.Set(k, v); err != nil {
					t.Errorf("Set: %v", err)
					return
				}
				if got, err := kv.Get(k); err != nil || !bytes.Equal(got, v) {
					t.Errorf("Get(%q) = %q, %v; want %q", k, got, err, v)
					return
				}
				// Contended key, read by everyone.
				if err := kv.Set([]byte("c/shared"), v); err != nil {
					t.Errorf("Set shared: %v", err)
					return
				}
				if _, err := kv.Get([]byte("c/shared")); err != nil {
					t.Errorf("Get shared: %v", err)
					return
				}
				switch i % 50 {
				case 0:
					err := kv.Scan(fmt.Appendf(nil, "c/%d/", w), func(k, v []byte) error { return nil })
					if err != nil {
						t.Errorf("Scan: %v", err)
						return
					}
				case 25:
					b := kv.NewBatch()
					err := errors.Join(
						b.Set(fmt.Appendf(nil, "c/b/%d/%d", w, i), v),
						b.Delete(fmt.Appendf(nil, "c/%d/%04d", w, i-1)),
						b.Commit())
					if err != nil {
						t.Errorf("Batch: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// Each batch deleted one key and added another; plus "c/shared".
	if got, want := count(t, kv, "c/"), workers*ops+1; got != want {
		t.Errorf("after concurrent writes: %d keys, want %d", got, want)
	}
}

func testClosed(t *testing.T, kv index.KV) {
	mustSet(t, kv, "k", "v")
	if err := kv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := kv.Get([]byte("k")); err == nil {
		t.Error("Get after Close succeeded")
	}
	if err := kv.Set([]byte("k"), []byte("v")); err == nil {
		t.Error("Set after Close succeeded")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustSet(t *testing.T, kv index.KV, k, v string) {
	t.Helper()
	if err := kv.Set([]byte(k), []byte(v)); err != nil {
		t.Fatalf("Set(%q): %v", k, err)
	}
}

func wantGet(t *testing.T, kv index.KV, k, want string) {
	t.Helper()
	got, err := kv.Get([]byte(k))
	if err != nil {
		t.Errorf("Get(%q): %v", k, err)
	} else if string(got) != want {
		t.Errorf("Get(%q) = %.40q (len %d), want %.40q (len %d)", k, got, len(got), want, len(want))
	}
}

func wantMissing(t *testing.T, kv index.KV, k string) {
	t.Helper()
	got, err := kv.Get([]byte(k))
	if !errors.Is(err, index.ErrNotFound) {
		t.Errorf("Get(%q) = %.40q, %v; want ErrNotFound", k, got, err)
	}
}

func wantScan(t *testing.T, kv index.KV, prefix string, want ...string) {
	t.Helper()
	var got []string
	err := kv.Scan([]byte(prefix), func(k, v []byte) error {
		got = append(got, string(k))
		return nil
	})
	if err != nil {
		t.Errorf("Scan(%q): %v", prefix, err)
		return
	}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Errorf("Scan(%q) = %q, want %q", prefix, got, want)
	}
}

func count(t *testing.T, kv index.KV, prefix string) int {
	t.Helper()
	n := 0
	if err := kv.Scan([]byte(prefix), func(k, v []byte) error { n++; return nil }); err != nil {
		t.Errorf("Scan(%q): %v", prefix, err)
	}
	return n
}
