package tiered_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/mem"
	"github.com/mlfs/mlfs/cas/tiered"
)

// names lists the refs of s under prefix.
func names(t *testing.T, list func(context.Context, string, func(string, cas.ID) error) error, prefix string) string {
	t.Helper()
	var out []string
	if err := list(bg, prefix, func(name string, _ cas.ID) error {
		out = append(out, name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(out)
}

// ListRefsFresh sees a ref another machine made after the last listing,
// which ListRefs serves from its cache until RefsMaxAge; the fresh listing
// then serves ListRefs too.
func TestListRefsFresh(t *testing.T) {
	remote := mem.New()
	a := machine(t, remote, tiered.Options{RefsMaxAge: time.Hour})
	b := machine(t, remote, tiered.Options{RefsMaxAge: time.Hour})
	defer a.Close()
	defer b.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.CreateRef(bg, "ds/v1", put(t, a, []byte("one"))))
	if got := names(t, b.ListRefs, "ds/"); got != "[ds/v1]" {
		t.Fatalf("b lists %s, want [ds/v1]", got)
	}
	must(a.CreateRef(bg, "ds/v2", put(t, a, []byte("two"))))
	must(a.CreateRef(bg, "other/v1", put(t, a, []byte("other"))))
	if got := names(t, b.ListRefs, "ds/"); got != "[ds/v1]" {
		t.Fatalf("b's cached listing shows %s; the test wants it to lack ds/v2", got)
	}
	if got := names(t, b.ListRefsFresh, "ds/"); got != "[ds/v1 ds/v2]" {
		t.Fatalf("b lists fresh %s, want [ds/v1 ds/v2]", got)
	}
	if got := names(t, b.ListRefs, ""); got != "[ds/v1 ds/v2 other/v1]" {
		t.Fatalf("after the fresh listing b lists %s, want every ref", got)
	}
}

// A listing under way when ListRefsFresh is called may have listed the
// names before the newest ref was made: ListRefsFresh does not take its
// result, but lists again.
func TestListRefsFreshAfterListingUnderWay(t *testing.T) {
	remote := mem.New()
	var (
		mu      sync.Mutex
		gate    chan struct{} // a listing waits on it once it has the names
		started = make(chan struct{}, 1)
	)
	listNames := func(ctx context.Context, prefix string, fn func(string) error) error {
		var got []string
		if err := remote.ListRefs(ctx, prefix, func(n string, _ cas.ID) error {
			got = append(got, n)
			return nil
		}); err != nil {
			return err
		}
		mu.Lock()
		g := gate
		gate = nil
		mu.Unlock()
		if g != nil {
			started <- struct{}{}
			<-g
		}
		for _, n := range got {
			if err := fn(n); err != nil {
				return err
			}
		}
		return nil
	}
	a := machine(t, remote, tiered.Options{RefsMaxAge: time.Hour})
	b := machine(t, remote, tiered.Options{RefsMaxAge: time.Hour, ListRefNames: listNames})
	defer a.Close()
	defer b.Close()
	if err := a.CreateRef(bg, "ds/v1", put(t, a, []byte("one"))); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	mu.Lock()
	gate = release
	mu.Unlock()
	old := make(chan string, 1)
	go func() {
		var out []string
		b.ListRefs(bg, "ds/", func(name string, _ cas.ID) error { out = append(out, name); return nil })
		old <- fmt.Sprint(out)
	}()
	<-started // the listing has the names, without ds/v2
	if err := a.CreateRef(bg, "ds/v2", put(t, a, []byte("two"))); err != nil {
		t.Fatal(err)
	}
	fresh := make(chan string, 1)
	go func() {
		var out []string
		if err := b.ListRefsFresh(bg, "ds/", func(name string, _ cas.ID) error { out = append(out, name); return nil }); err != nil {
			out = append(out, err.Error())
		}
		fresh <- fmt.Sprint(out)
	}()
	// Most often ListRefsFresh now waits on the listing under way (if
	// not, it lists after it anyway: the test holds either way).
	time.Sleep(10 * time.Millisecond)
	close(release)
	if got := <-old; got != "[ds/v1]" {
		t.Fatalf("the listing under way shows %s; the test wants it to lack ds/v2", got)
	}
	if got := <-fresh; got != "[ds/v1 ds/v2]" {
		t.Fatalf("ListRefsFresh, called while a listing was under way, shows %s, want [ds/v1 ds/v2]", got)
	}
}
