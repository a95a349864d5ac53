package repo

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
)

// A version under a ref that is no dataset's (a published run) is kept by
// gc and read by fsck as every version is, and listed as no dataset.
func TestCommitRef(t *testing.T) {
	r := TestRepo(t)
	src := t.TempDir()
	randomFile(t, filepath.Join(src, "model.bin"), 300<<10, 7)
	w, err := r.NewWriter(bg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fid, size, err := w.PutFile(filepath.Join(src, "model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := w.PutTree(&object.Tree{Entries: []object.Entry{{Name: "model.bin", Type: object.TypeFile, Perm: 0o644, ID: fid, Size: size}}})
	if err != nil {
		t.Fatal(err)
	}
	const name = "runs/r1/0000000001"
	vid, err := w.CommitRef(name, "runs", tree, cas.ID{}, `{"id":"r1"}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.CommitRef("iris/v1", "iris", tree, cas.ID{}, ""); err == nil {
		t.Fatal("CommitRef made a dataset's version")
	}
	if _, err := w.CommitRef("runs/a b", "runs", tree, cas.ID{}, ""); err == nil {
		t.Fatal("CommitRef took a bad ref name")
	}
	w.Close()
	if got, err := r.store.GetRef(bg, name); err != nil || got != vid {
		t.Fatalf("ref %s: %v, %v", name, got, err)
	}
	if ds, err := r.Datasets(bg); err != nil || len(ds) != 0 {
		t.Fatalf("datasets: %v, %v", ds, err)
	}

	st, err := r.GC(bg, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.Removed != 0 {
		t.Fatalf("gc removed %d objects of a published run", st.Removed)
	}
	fs, err := r.Fsck(bg, func(p Problem) { t.Errorf("fsck: %s", p) })
	if err != nil {
		t.Fatal(err)
	}
	if fs.Versions != 0 || fs.Runs != 1 || fs.Trees != 1 || fs.Files != 1 || fs.Bytes != size {
		t.Fatalf("fsck read %+v", fs)
	}
	w, err = r.NewWriter(bg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.CommitRef(name, "runs", tree, cas.ID{}, ""); !errors.Is(err, cas.ErrExists) {
		t.Fatalf("a second CommitRef of %s: %v, want ErrExists", name, err)
	}
	w.Close()
	// Gone with its ref.
	if err := r.store.DeleteRef(bg, name); err != nil {
		t.Fatal(err)
	}
	if st, err = r.GC(bg, false); err != nil || st.Removed < 4 {
		t.Fatalf("gc after the ref went: %+v, %v", st, err)
	}
}
