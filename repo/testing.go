package repo

import (
	"testing"

	"github.com/mlfs/mlfs/cas/local"
	"github.com/mlfs/mlfs/index/memkv"
)

// TestRepo returns a Repo on a fresh local store in a temp dir, with an
// in-memory index, closed when the test ends. Tests of higher layers use it.
func TestRepo(t testing.TB) *Repo {
	t.Helper()
	dir := t.TempDir()
	st, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(st, memkv.New(), dir+"/lock", nil)
}
