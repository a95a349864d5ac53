package worktree_test

import (
	"testing"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/index/memkv"
	"github.com/mlfs/mlfs/repo"
)

// StoreTree stores the tree a snapshot would, and changes nothing: the
// tree stays changed, its files local, and storing it again costs no new
// bytes. skip leaves changed files out.
func TestStoreTree(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	tr := openTree(t, r, memkv.New(), t.TempDir(), "ds", nil)
	h := change(t, tr)
	defer h.Close()
	create(t, tr, lookup(t, tr, "made").Ino, "fresh.txt", "new below the top")
	before := describeTree(t, tr, r.Store())
	store := func(skip func(string) bool) (cas.ID, *repo.Writer) {
		t.Helper()
		w, err := r.NewWriter(ctx)
		must(t, err)
		t.Cleanup(w.Close)
		id, err := tr.StoreTree(ctx, w, skip)
		must(t, err)
		return id, w
	}
	id, _ := store(nil)
	if !tr.Changed() || describeTree(t, tr, r.Store()) != before {
		t.Fatal("StoreTree changed the tree")
	}
	if a := lookup(t, tr, "made/fresh.txt"); !a.ID.IsZero() {
		t.Fatal("a changed file is clean after StoreTree")
	}
	again, w := store(nil)
	if again != id || w.NewBytes() != 0 {
		t.Fatalf("storing an unchanged tree again: same id %v, %d new bytes", again == id, w.NewBytes())
	}
	skipped, _ := store(func(path string) bool { return path == "new.txt" || path == "made/fresh.txt" })
	top := treeOf(t, r, skipped)
	if _, ok := top["new.txt"]; ok {
		t.Fatal("a skipped file is in the tree")
	}
	if _, ok := treeOf(t, r, top["made"])["fresh.txt"]; ok {
		t.Fatal("a skipped file below the top is in the tree")
	}
	if _, ok := top["a.txt"]; !ok {
		t.Fatal("a changed file not skipped is missing")
	}
	if _, ok := treeOf(t, r, top["made"])["b2.txt"]; !ok {
		t.Fatal("a clean file is missing")
	}

	// A version of it records the tree's counts, as a snapshot's does.
	id, w = store(nil)
	vid, err := w.CommitRef("runs/x/1", "runs", id, cas.ID{}, "m")
	must(t, err)
	raw, err := r.Store().Get(ctx, vid)
	must(t, err)
	vi, err := tr.Snapshot(ctx, r, ref("ds@v2"), "")
	must(t, err)
	if vi.Tree != id {
		t.Fatal("the snapshot's tree differs from StoreTree's")
	}
	if got := versionCounts(t, raw); got != [2]int64{vi.Files, vi.Bytes} {
		t.Fatalf("CommitRef's version counts %v, the snapshot's %d files, %d bytes", got, vi.Files, vi.Bytes)
	}
}

func versionCounts(t *testing.T, raw []byte) [2]int64 {
	t.Helper()
	v, err := object.DecodeVersion(raw)
	must(t, err)
	return [2]int64{v.Files, v.Bytes}
}
