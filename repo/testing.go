package repo

import (
	"context"
	"testing"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/local"
	"github.com/mlfs/mlfs/cas/pack"
	"github.com/mlfs/mlfs/index/memkv"
)

// TestStore opens the production stack (packs over a local folder) on dir,
// with small packs so that tests see several of them.
func TestStore(t testing.TB, dir string) *pack.Store {
	t.Helper()
	be, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := pack.New(context.Background(), be, pack.Options{PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestRepo returns a Repo on a fresh store in a temp dir, with an
// in-memory index, closed when the test ends. Tests of higher layers use it.
func TestRepo(t testing.TB) *Repo {
	t.Helper()
	dir := t.TempDir()
	return New(TestStore(t, dir), memkv.New(), dir+"/lock", nil)
}

var _ cas.Store = (*pack.Store)(nil)
