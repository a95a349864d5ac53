package tiered_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/mem"
	"github.com/mlfs/mlfs/cas/pack"
	"github.com/mlfs/mlfs/cas/tiered"
)

// listing counts the listings of a backend: each is a reload of the
// index of the pack store over it.
type listing struct {
	cas.Store
	lists atomic.Int64
}

func (l *listing) List(ctx context.Context, fn func(cas.ID, int64) error) error {
	l.lists.Add(1)
	return l.Store.List(ctx, fn)
}

// Reading a version from the remote does not reload the local index for
// every object the local tier lacks (a listing of every local pack file
// each), and an object another process put in the local store since is
// still found.
func TestRemoteReadsKeepLocalIndex(t *testing.T) {
	remote := mem.New()
	a := machine(t, remote, tiered.Options{})
	defer a.Close()
	var ids []cas.ID
	for i := range 40 {
		ids = append(ids, put(t, a, bytes.Repeat([]byte{byte(i), 2}, 2000)))
	}
	if err := a.CreateRef(bg, "ds/v1", ids[0]); err != nil {
		t.Fatal(err)
	}

	localFiles := &listing{Store: mem.New()}
	local, err := pack.New(bg, shared{localFiles}, pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rp, err := pack.New(bg, shared{remote}, pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tiered.New(tiered.Options{Local: local, LocalFiles: shared{localFiles}, Remote: rp, RemoteFiles: shared{remote}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	before := localFiles.lists.Load()
	for _, id := range ids {
		if _, err := b.Get(bg, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := localFiles.lists.Load() - before; n != 0 {
		t.Fatalf("reading %d remote objects listed the local store %d times, want 0", len(ids), n)
	}

	// Another process on this machine writes to the same local store.
	other, err := pack.New(bg, shared{localFiles}, pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("written by another process")
	id := put(t, other, data)
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(bg, id)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("an object another process stored locally: %q, %v", got, err)
	}
}

// unreachable is a remote that cannot be reached.
type unreachable struct{ cas.Store }

var errUnreachable = errors.New("injected: connection refused")

func (unreachable) Get(context.Context, cas.ID) ([]byte, error) { return nil, errUnreachable }
func (unreachable) GetRange(context.Context, cas.ID, int64, int64) ([]byte, error) {
	return nil, errUnreachable
}

// With the remote out of reach, an object that another process put in the
// local store since reads all the same; one that is nowhere fails with the
// remote's error.
func TestLocalWhenRemoteFails(t *testing.T) {
	localFiles := mem.New()
	local, err := pack.New(bg, shared{localFiles}, pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	remote := unreachable{mem.New()}
	s, err := tiered.New(tiered.Options{Local: local, LocalFiles: shared{localFiles}, Remote: remote, RemoteFiles: remote})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := pack.New(bg, shared{localFiles}, pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("written by another process")
	id := put(t, other, data)
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(bg, id); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("an object another process stored locally: %q, %v", got, err)
	}
	if _, err := s.Get(bg, cas.Sum([]byte("nowhere"))); !errors.Is(err, errUnreachable) {
		t.Fatalf("an object that is nowhere: %v, want the remote's error", err)
	}
}

// Prefetch reads the remote's objects ahead (what the local tier has is
// left out), so that the Gets that follow make no request.
func TestPrefetch(t *testing.T) {
	remote := &counting{Store: mem.New()}
	a := machine(t, remote, tiered.Options{})
	defer a.Close()
	var ids []cas.ID
	for i := range 30 {
		ids = append(ids, put(t, a, bytes.Repeat([]byte{byte(i), 3}, 5000)))
	}
	if err := a.CreateRef(bg, "ds/v1", ids[0]); err != nil {
		t.Fatal(err)
	}
	b := machine(t, remote, tiered.Options{})
	defer b.Close()
	mine := put(t, b, []byte("only on b"))
	if err := b.Prefetch(bg, append(ids, mine)); err != nil {
		t.Fatal(err)
	}
	gets := remote.gets.Load()
	for _, id := range append(ids, mine) {
		if _, err := b.Get(bg, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := remote.gets.Load() - gets; n != 0 {
		t.Fatalf("%d requests to the remote after the prefetch, want 0", n)
	}
}
