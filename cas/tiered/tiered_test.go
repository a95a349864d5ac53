package tiered_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/castest"
	"github.com/mlfs/mlfs/cas/mem"
	"github.com/mlfs/mlfs/cas/pack"
	"github.com/mlfs/mlfs/cas/tiered"
)

var bg = context.Background()

// shared is a remote bucket: closing one machine's view leaves it open.
type shared struct{ cas.Store }

func (shared) Close() error { return nil }

// counting counts the requests that reach a backend.
type counting struct {
	cas.Store
	puts, gets atomic.Int64
	failPuts   atomic.Int64 // fail this many more Puts
}

func (c *counting) Put(ctx context.Context, id cas.ID, data []byte) error {
	if c.failPuts.Add(-1) >= 0 {
		return errors.New("injected: connection reset")
	}
	c.puts.Add(1)
	return c.Store.Put(ctx, id, data)
}

func (c *counting) GetRange(ctx context.Context, id cas.ID, off, n int64) ([]byte, error) {
	c.gets.Add(1)
	return c.Store.GetRange(ctx, id, off, n)
}

// machine is one machine's tiered store over its own local disk (a mem
// store here) and the shared remote.
func machine(t *testing.T, remote cas.Store, opt tiered.Options) *tiered.Store {
	t.Helper()
	localFiles := mem.New()
	local, err := pack.New(bg, localFiles, pack.Options{PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	rp, err := pack.New(bg, shared{remote}, pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opt.Local, opt.LocalFiles, opt.Remote, opt.RemoteFiles = local, localFiles, rp, shared{remote}
	s, err := tiered.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t *testing.T, s cas.Store, data []byte) cas.ID {
	t.Helper()
	id := cas.Sum(data)
	if err := s.Put(bg, id, data); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestConformance(t *testing.T) {
	castest.Run(t, castest.Harness{
		New: func(t *testing.T) cas.Store { return machine(t, mem.New(), tiered.Options{}) },
		Corrupt: func(t *testing.T, s cas.Store, id cas.ID) {
			ps := s.(*tiered.Store).Local().(*pack.Store)
			if err := ps.Flush(bg); err != nil {
				t.Fatal(err)
			}
			p, off, n, ok := ps.Locate(id)
			if !ok {
				t.Fatalf("blob %s not in any local pack", id.Short())
			}
			ps.Backend().(*mem.Store).Tamper(p, func(b []byte) []byte { b[off+n/2] ^= 1; return b })
		},
	})
}

// A version made on one machine reads on the other, through refs and
// objects, and only once its name is committed.
func TestTwoMachines(t *testing.T) {
	remote := mem.New()
	a := machine(t, remote, tiered.Options{RefsMaxAge: time.Millisecond})
	b := machine(t, remote, tiered.Options{RefsMaxAge: time.Millisecond})
	defer a.Close()
	defer b.Close()

	data := bytes.Repeat([]byte("row,1,2,3\n"), 5000)
	id := put(t, a, data)
	if _, err := b.Get(bg, id); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("before the commit, b reads %v; want not found (nothing is published by a Put)", err)
	}
	if err := a.CreateRef(bg, "iris/v1", id); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	var names []string
	if err := b.ListRefs(bg, "iris/", func(name string, got cas.ID) error {
		names = append(names, name)
		if got != id {
			t.Errorf("b sees %s -> %s, want %s", name, got.Short(), id.Short())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(names) != "[iris/v1]" {
		t.Fatalf("b lists %v, want [iris/v1]", names)
	}
	got, err := b.Get(bg, id)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("b reads the object: %v (same bytes: %v)", err, bytes.Equal(got, data))
	}
	if rid, err := b.GetRef(bg, "iris/v1"); err != nil || rid != id {
		t.Fatalf("b GetRef: %v %v", rid, err)
	}
}

// Two machines creating one name at once: exactly one wins, and the loser
// keeps reading the winner's version.
func TestCreateRefRace(t *testing.T) {
	remote := mem.New()
	const n = 8
	var ms []*tiered.Store
	for i := 0; i < n; i++ {
		m := machine(t, remote, tiered.Options{})
		defer m.Close()
		ms = append(ms, m)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	ids := make([]cas.ID, n)
	for i, m := range ms {
		ids[i] = put(t, m, []byte(fmt.Sprintf("version from machine %d", i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := m.CreateRef(bg, "ds/v7", ids[i])
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, cas.ErrExists):
				t.Errorf("machine %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d machines created ds/v7, want exactly 1", wins.Load())
	}
	winner, err := remote.GetRef(bg, "ds/v7")
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if got, err := m.GetRef(bg, "ds/v7"); err != nil || got != winner {
			t.Errorf("machine %d reads ds/v7 = %s, %v; want the winner %s", i, got.Short(), err, winner.Short())
		}
	}
}

// An upload that fails part-way creates no name on the remote, and the
// next commit uploads only what is missing.
func TestInterruptedUpload(t *testing.T) {
	bucket := &counting{Store: mem.New()}
	a := machine(t, bucket, tiered.Options{Uploads: 1})
	defer a.Close()
	var last cas.ID
	for i := 0; i < 40; i++ { // 40 × 100 KiB in 1 MiB packs: several packs
		b := bytes.Repeat([]byte{byte(i)}, 100<<10)
		b[0] = byte(i >> 8)
		last = put(t, a, b)
	}
	bucket.failPuts.Store(1)
	bucket.puts.Store(0)
	if err := a.CreateRef(bg, "ds/v1", last); err == nil {
		t.Fatal("commit succeeded though an upload failed")
	}
	if _, err := bucket.GetRef(bg, "ds/v1"); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("the remote has ds/v1 after a failed upload: %v", err)
	}
	if err := a.CreateRef(bg, "ds/v1", last); err != nil {
		t.Fatal(err)
	}
	packs := 0
	bucket.List(bg, func(cas.ID, int64) error { packs++; return nil })
	if packs < 3 {
		t.Fatalf("%d packs; the test wants several", packs)
	}
	if got := bucket.puts.Load(); int(got) != packs {
		t.Errorf("%d pack uploads for %d packs: a retried push uploaded some twice", got, packs)
	}
	// Everything the name reaches is there.
	b := machine(t, bucket, tiered.Options{})
	defer b.Close()
	if _, err := b.Get(bg, last); err != nil {
		t.Fatal(err)
	}
}

// A ref the remote does not have is looked up there at most once per
// RefsMaxAge: tools that stat names that do not exist cost no requests.
func TestAbsentRefCached(t *testing.T) {
	remote := &refCounter{Store: mem.New()}
	a := machine(t, remote, tiered.Options{RefsMaxAge: time.Hour})
	defer a.Close()
	for i := 0; i < 100; i++ {
		if _, err := a.GetRef(bg, "ds/v9"); !errors.Is(err, cas.ErrNotFound) {
			t.Fatal(err)
		}
	}
	if n := remote.gets.Load(); n != 1 {
		t.Fatalf("%d GetRef requests for 100 lookups of an absent name, want 1", n)
	}
	// Creating it here makes it visible at once.
	id := put(t, a, []byte("x"))
	if err := a.CreateRef(bg, "ds/v9", id); err != nil {
		t.Fatal(err)
	}
	if got, err := a.GetRef(bg, "ds/v9"); err != nil || got != id {
		t.Fatalf("after create: %v %v", got, err)
	}
}

type refCounter struct {
	cas.Store
	gets atomic.Int64
}

func (r *refCounter) GetRef(ctx context.Context, name string) (cas.ID, error) {
	r.gets.Add(1)
	return r.Store.GetRef(ctx, name)
}

// ListRefNames saves reading refs already known.
func TestListRefNames(t *testing.T) {
	remote := &refCounter{Store: mem.New()}
	names := func(ctx context.Context, prefix string, fn func(string) error) error {
		return remote.Store.ListRefs(ctx, prefix, func(n string, _ cas.ID) error { return fn(n) })
	}
	a := machine(t, remote, tiered.Options{RefsMaxAge: time.Nanosecond, ListRefNames: names})
	b := machine(t, remote, tiered.Options{RefsMaxAge: time.Nanosecond, ListRefNames: names})
	defer a.Close()
	defer b.Close()
	for i := 0; i < 20; i++ {
		id := put(t, a, []byte{byte(i)})
		if err := a.CreateRef(bg, fmt.Sprintf("ds/v%d", i), id); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		n := 0
		if err := b.ListRefs(bg, "", func(string, cas.ID) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	remote.gets.Store(0)
	if n := count(); n != 20 {
		t.Fatalf("b lists %d refs, want 20", n)
	}
	first := remote.gets.Load()
	for i := 0; i < 5; i++ {
		count()
	}
	if again := remote.gets.Load() - first; again != 0 {
		t.Fatalf("5 more listings read %d refs again; want 0 (names already known)", again)
	}
	if first != 20 {
		t.Fatalf("the first listing read %d refs, want 20", first)
	}
}

// Fetch makes a version's objects local: they read with the remote gone.
func TestFetch(t *testing.T) {
	remote := &counting{Store: mem.New()}
	a := machine(t, remote, tiered.Options{})
	defer a.Close()
	var ids []cas.ID
	for i := 0; i < 50; i++ {
		ids = append(ids, put(t, a, bytes.Repeat([]byte{byte(i), 1}, 3000)))
	}
	if err := a.CreateRef(bg, "ds/v1", ids[0]); err != nil {
		t.Fatal(err)
	}
	b := machine(t, remote, tiered.Options{})
	defer b.Close()
	st, err := b.Fetch(bg, append(ids, ids[:5]...), nil)
	if err != nil || st.Objects != 50 || st.Present != 5 {
		t.Fatalf("fetch: %+v, %v; want 50 copied and 5 present", st, err)
	}
	gets := remote.gets.Load()
	for _, id := range ids {
		if _, err := b.Get(bg, id); err != nil {
			t.Fatal(err)
		}
	}
	if remote.gets.Load() != gets {
		t.Fatalf("reads after the fetch went to the remote: %d requests", remote.gets.Load()-gets)
	}
}

// What Fetch copied here is on the remote already: the next publish
// uploads none of it, and asks the remote nothing per object, while a
// blob made here is still uploaded.
func TestPublishAfterFetchUploadsOnlyNew(t *testing.T) {
	remote := &counting{Store: mem.New()}
	b := machine(t, remote, tiered.Options{}) // opened before the version exists
	defer b.Close()
	a := machine(t, remote, tiered.Options{})
	defer a.Close()
	var ids []cas.ID
	for i := 0; i < 200; i++ {
		ids = append(ids, put(t, a, bytes.Repeat([]byte{byte(i), 7}, 3000)))
	}
	if err := a.CreateRef(bg, "ds/v1", ids[0]); err != nil {
		t.Fatal(err)
	}
	if st, err := b.Fetch(bg, ids, nil); err != nil || st.Objects != len(ids) {
		t.Fatalf("fetch: %+v, %v", st, err)
	}

	puts, gets := remote.puts.Load(), remote.gets.Load()
	st, err := b.Upload(bg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Packs != 0 || st.Skipped == 0 {
		t.Fatalf("push after a fetch: %+v; want no pack uploaded and the fetched ones skipped", st)
	}
	if err := b.CreateRef(bg, "ds/v1-again", ids[0]); err != nil {
		t.Fatal(err)
	}
	if n := remote.puts.Load() - puts; n != 0 {
		t.Fatalf("publishing after a fetch uploaded %d packs, want 0: the remote has every fetched blob", n)
	}
	if n := remote.gets.Load() - gets; n != 0 {
		t.Fatalf("publishing after a fetch read the remote %d times, want 0: its index says what it has", n)
	}

	// A new blob on top of the fetched ones is published, and reads on a.
	data := []byte("made on b, after the fetch")
	id := put(t, b, data)
	if err := b.CreateRef(bg, "ds/v2", id); err != nil {
		t.Fatal(err)
	}
	if n := remote.puts.Load() - puts; n != 1 {
		t.Fatalf("publishing a new blob uploaded %d packs, want 1", n)
	}
	if got, err := a.Get(bg, id); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a reads b's new blob: %q, %v", got, err)
	}
}
