package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/mem"
	"github.com/mlfs/mlfs/cas/pack"
	"github.com/mlfs/mlfs/cas/tiered"
)

// switchable is a machine's view of the remote that can be cut off.
type switchable struct {
	cas.Store
	down atomic.Bool
}

func (s *switchable) Close() error { return nil }

func (s *switchable) err() error {
	if s.down.Load() {
		return errUnreachable
	}
	return nil
}

func (s *switchable) GetRef(ctx context.Context, name string) (cas.ID, error) {
	if err := s.err(); err != nil {
		return cas.ID{}, err
	}
	return s.Store.GetRef(ctx, name)
}

func (s *switchable) ListRefs(ctx context.Context, prefix string, fn func(string, cas.ID) error) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.ListRefs(ctx, prefix, fn)
}

// host is one machine: its local disk (kept over a restart) and its view
// of the remote.
type host struct {
	files  cas.Store // local pack files
	remote *switchable
	known  string // the record's folder
}

func newHost(t *testing.T, remote cas.Store) *host {
	return &host{files: mem.New(), remote: &switchable{Store: remote}, known: t.TempDir()}
}

// start opens the machine's tiered store, as a daemon does when it starts;
// changed gets the names OnRefChange reports.
func (h *host) start(t *testing.T, changed *changes) *tiered.Store {
	t.Helper()
	local, err := pack.New(bg, shared{h.files}, pack.Options{PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	rp, err := pack.New(bg, h.remote, pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := tiered.New(tiered.Options{Local: local, LocalFiles: shared{h.files}, Remote: rp, RemoteFiles: h.remote,
		RefsMaxAge: time.Nanosecond, KnownDir: h.known})
	if err != nil {
		t.Fatal(err)
	}
	if changed != nil {
		s.OnRefChange(changed.add)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// changes collects what OnRefChange reports.
type changes struct {
	mu   sync.Mutex
	list []string
}

func (n *changes) add(name string) {
	n.mu.Lock()
	n.list = append(n.list, name)
	n.mu.Unlock()
}

func (n *changes) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return fmt.Sprint(n.list)
}

// refs lists s's refs as "name=id" (short ids).
func refs(t *testing.T, s cas.Refs) string {
	t.Helper()
	var out []string
	if err := s.ListRefs(bg, "", func(name string, id cas.ID) error {
		out = append(out, name+"="+id.Short())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(out)
}

func mustCreate(t *testing.T, s *tiered.Store, name string, data string) cas.ID {
	t.Helper()
	id := put(t, s, []byte(data))
	if err := s.CreateRef(bg, name, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// A ref that b pulled and another machine then removed from the remote is
// gone on b: not listed, not resolvable, and removed from b's local refs;
// made again with other content, b reads the new id everywhere.
func TestRemovedAndRemadeElsewhere(t *testing.T) {
	remote := mem.New()
	a := newHost(t, remote).start(t, nil)
	var changed changes
	b := newHost(t, remote).start(t, &changed)

	v1 := mustCreate(t, a, "nd/v1", "first")
	v2 := mustCreate(t, a, "nd/v2", "second")
	if _, err := b.Pull(bg); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteRef(bg, "nd/v1"); err != nil {
		t.Fatal(err)
	}
	if got, want := refs(t, b), fmt.Sprint([]string{"nd/v2=" + v2.Short()}); got != want {
		t.Fatalf("b lists %s after a removed nd/v1; want %s", got, want)
	}
	if _, err := b.Local().GetRef(bg, "nd/v1"); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("b's local nd/v1 after the listing: %v, want it removed", err)
	}
	if _, err := b.GetRef(bg, "nd/v1"); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("b resolves the removed nd/v1: %v", err)
	}
	if changed.String() != "[nd/v1]" {
		t.Fatalf("b reported changes %s, want [nd/v1]", changed.String())
	}

	remade := mustCreate(t, a, "nd/v1", "remade")
	if remade == v1 {
		t.Fatal("test data: the new content has the old id")
	}
	if id, err := b.GetRef(bg, "nd/v1"); err != nil || id != remade {
		t.Fatalf("b resolves the remade nd/v1 to %s, %v; want %s", id.Short(), err, remade.Short())
	}
}

// A ref removed and made again between two of b's listings keeps its name
// in every listing: b, which has the old id locally, still follows the
// remote's new one (a listing that reads ids shows it; one by names reads
// a few known names again now and then: here, every time).
func TestRemadeBetweenListings(t *testing.T) {
	for _, byNames := range []bool{false, true} {
		t.Run(fmt.Sprintf("byNames=%v", byNames), func(t *testing.T) {
			remote := mem.New()
			a := newHost(t, remote).start(t, nil)
			hb := newHost(t, remote)
			var changed changes
			var b *tiered.Store
			if byNames {
				b = startByNames(t, hb, &changed)
			} else {
				b = hb.start(t, &changed)
			}
			mustCreate(t, a, "nd/v1", "first")
			if _, err := b.Pull(bg); err != nil {
				t.Fatal(err)
			}
			if err := a.DeleteRef(bg, "nd/v1"); err != nil {
				t.Fatal(err)
			}
			remade := mustCreate(t, a, "nd/v1", "remade")
			if got, want := refs(t, b), fmt.Sprint([]string{"nd/v1=" + remade.Short()}); got != want {
				t.Fatalf("b lists %s, want %s", got, want)
			}
			if id, err := b.Local().GetRef(bg, "nd/v1"); err != nil || id != remade {
				t.Fatalf("b's local nd/v1 is %s, %v; want the remote's %s", id.Short(), err, remade.Short())
			}
			if id, err := b.GetRef(bg, "nd/v1"); err != nil || id != remade {
				t.Fatalf("b resolves nd/v1 to %s, %v; want %s", id.Short(), err, remade.Short())
			}
			if changed.String() != "[nd/v1]" {
				t.Fatalf("b reported changes %s, want [nd/v1]", changed.String())
			}
		})
	}
}

// startByNames is h.start with the remote listed by names.
func startByNames(t *testing.T, h *host, changed *changes) *tiered.Store {
	t.Helper()
	local, err := pack.New(bg, shared{h.files}, pack.Options{PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	rp, err := pack.New(bg, h.remote, pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	byNames := func(ctx context.Context, prefix string, fn func(string) error) error {
		return h.remote.ListRefs(ctx, prefix, func(n string, _ cas.ID) error { return fn(n) })
	}
	s, err := tiered.New(tiered.Options{Local: local, LocalFiles: shared{h.files}, Remote: rp, RemoteFiles: h.remote,
		RefsMaxAge: time.Nanosecond, KnownDir: t.TempDir(), ListRefNames: byNames, RecheckEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	s.OnRefChange(changed.add)
	t.Cleanup(func() { s.Close() })
	return s
}

// A ref made before the remote was added (never published) stays, and is
// what Push publishes; one the remote had and another machine removed is
// not published again.
func TestNeverPublishedStaysAndRemovedIsNotPushed(t *testing.T) {
	remote := mem.New()
	a := newHost(t, remote).start(t, nil)
	b := newHost(t, remote).start(t, nil)
	mustCreate(t, a, "nd/v1", "first")
	mustCreate(t, a, "nd/v2", "second")
	if _, err := b.Pull(bg); err != nil {
		t.Fatal(err)
	}
	// Made on b before it had a remote: in the local tier only.
	old := put(t, b, []byte("made offline, long ago"))
	if err := b.Local().CreateRef(bg, "old/v1", old); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteRef(bg, "nd/v1"); err != nil {
		t.Fatal(err)
	}
	pending, err := b.Pending(bg)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(pending) != fmt.Sprint(map[string]cas.ID{"old/v1": old}) {
		t.Fatalf("b would push %v; want old/v1 only (nd/v1 was removed by a)", pending)
	}
	if id, err := b.GetRef(bg, "old/v1"); err != nil || id != old {
		t.Fatalf("b resolves its unpublished old/v1: %s, %v", id.Short(), err)
	}
	if err := b.CreateRef(bg, "old/v1", old); err != nil {
		t.Fatal(err)
	}
	if id, err := a.GetRef(bg, "old/v1"); err != nil || id != old {
		t.Fatalf("a resolves b's pushed old/v1: %s, %v", id.Short(), err)
	}
	if pending, err := b.Pending(bg); err != nil || len(pending) != 0 {
		t.Fatalf("after the push b would push %v, %v; want nothing", pending, err)
	}
}

// With the remote out of reach nothing is removed: b's refs keep working,
// and are settled once the remote answers again.
func TestOfflineRemovesNothing(t *testing.T) {
	remote := mem.New()
	a := newHost(t, remote).start(t, nil)
	hb := newHost(t, remote)
	b := hb.start(t, nil)
	v1 := mustCreate(t, a, "nd/v1", "first")
	v2 := mustCreate(t, a, "nd/v2", "second")
	if _, err := b.Pull(bg); err != nil {
		t.Fatal(err)
	}
	hb.remote.down.Store(true)
	if err := a.DeleteRef(bg, "nd/v1"); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]string{"nd/v1=" + v1.Short(), "nd/v2=" + v2.Short()})
	if got := refs(t, b); got != want {
		t.Fatalf("offline, b lists %s; want %s", got, want)
	}
	if id, err := b.GetRef(bg, "nd/v1"); err != nil || id != v1 {
		t.Fatalf("offline, b resolves nd/v1 to %s, %v", id.Short(), err)
	}
	hb.remote.down.Store(false)
	if got, want := refs(t, b), fmt.Sprint([]string{"nd/v2=" + v2.Short()}); got != want {
		t.Fatalf("back online, b lists %s; want %s", got, want)
	}
}

// The record of which refs the remote had survives a restart: a ref pulled
// before it, and removed elsewhere after, goes.
func TestRecordSurvivesRestart(t *testing.T) {
	remote := mem.New()
	a := newHost(t, remote).start(t, nil)
	hb := newHost(t, remote)
	b := hb.start(t, nil)
	mustCreate(t, a, "nd/v1", "first")
	v2 := mustCreate(t, a, "nd/v2", "second")
	if _, err := b.Pull(bg); err != nil {
		t.Fatal(err)
	}
	b.Close()
	hb.remote.down.Store(true) // a restart while the remote is away
	b = hb.start(t, nil)
	if _, err := b.GetRef(bg, "nd/v1"); err != nil {
		t.Fatalf("offline after the restart, b resolves nd/v1: %v", err)
	}
	if err := a.DeleteRef(bg, "nd/v1"); err != nil {
		t.Fatal(err)
	}
	b.Close()
	hb.remote.down.Store(false)
	b = hb.start(t, nil)
	if _, err := b.GetRef(bg, "nd/v1"); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("after a restart, b resolves nd/v1 (removed by a): %v", err)
	}
	if got, want := refs(t, b.Local()), fmt.Sprint([]string{"nd/v2=" + v2.Short()}); got != want {
		t.Fatalf("b's local refs are %s; want %s", got, want)
	}
}

// A store from before the record was kept adopts the local refs the remote
// has at the same id, so their removal elsewhere is followed too.
func TestAdoptsRefsInSync(t *testing.T) {
	remote := mem.New()
	a := newHost(t, remote).start(t, nil)
	v1 := mustCreate(t, a, "nd/v1", "first")
	v2 := mustCreate(t, a, "nd/v2", "second")
	hb := newHost(t, remote)
	// b's local refs, as an older mlfs left them: no record.
	local, err := pack.New(bg, shared{hb.files}, pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]cas.ID{"nd/v1": v1, "nd/v2": v2} {
		if err := local.CreateRef(bg, name, id); err != nil {
			t.Fatal(err)
		}
	}
	local.Close()
	b := hb.start(t, nil)
	refs(t, b) // the first listing adopts
	if err := a.DeleteRef(bg, "nd/v1"); err != nil {
		t.Fatal(err)
	}
	if got, want := refs(t, b), fmt.Sprint([]string{"nd/v2=" + v2.Short()}); got != want {
		t.Fatalf("b lists %s; want %s", got, want)
	}
}

// A remote whose every name was removed by another machine still holds
// its packs: the names go here too, and are not pushed back. One with
// neither names nor objects (wiped, or another bucket at the same URL)
// removes nothing, and gets every name pushed.
func TestEmptyRemote(t *testing.T) {
	remote := mem.New()
	a := newHost(t, remote).start(t, nil)
	b := newHost(t, remote).start(t, nil)
	v1 := mustCreate(t, a, "nd/v1", "first")
	if _, err := b.Pull(bg); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteRef(bg, "nd/v1"); err != nil {
		t.Fatal(err)
	}
	if got := refs(t, b); got != "[]" {
		t.Fatalf("b lists %s after the last name was removed on the remote; want none", got)
	}
	if pending, err := b.Pending(bg); err != nil || len(pending) != 0 {
		t.Fatalf("b would push %v, %v; want nothing (the name was removed)", pending, err)
	}

	// Another name, then the remote wiped: nothing goes here.
	c := newHost(t, remote).start(t, nil)
	v2 := mustCreate(t, a, "nd/v2", "second")
	if _, err := c.Pull(bg); err != nil {
		t.Fatal(err)
	}
	wipe(t, remote)
	if got, want := refs(t, c), fmt.Sprint([]string{"nd/v2=" + v2.Short()}); got != want {
		t.Fatalf("c lists %s after the remote was wiped; want %s", got, want)
	}
	if pending, err := c.Pending(bg); err != nil || pending["nd/v2"] != v2 {
		t.Fatalf("c would push %v, %v; want nd/v2 (a wiped remote gets every ref)", pending, err)
	}
	_ = v1
}

// wipe deletes every object and ref of st.
func wipe(t *testing.T, st *mem.Store) {
	t.Helper()
	var ids []cas.ID
	if err := st.List(bg, func(id cas.ID, _ int64) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := st.Delete(bg, id); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	if err := st.ListRefs(bg, "", func(name string, _ cas.ID) error { names = append(names, name); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := st.DeleteRef(bg, n); err != nil {
			t.Fatal(err)
		}
	}
}
