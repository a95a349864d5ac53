package worktree_test

import (
	"testing"
	"time"

	"github.com/mlfs/mlfs/index/memkv"
	"github.com/mlfs/mlfs/repo"
	"github.com/mlfs/mlfs/worktree"
)

// openWrite opens file path of tr for writing (and truncating, with trunc).
func openWrite(t *testing.T, tr *worktree.Tree, path string, trunc bool) *worktree.Handle {
	t.Helper()
	h, err := tr.Open(ctx, lookup(t, tr, path).Ino, true, trunc)
	must(t, err)
	return h
}

// A handle opened for writing that writes nothing leaves a clean file
// clean once closed, however many there were: the tree is still its base
// version, and follows a newer one. While open it reads the file's bytes,
// and keeps the tree where it is.
func TestOpenForWritingWithoutWriting(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	s := worktree.NewSet(memkv.New(), t.TempDir(), r, r.Store(), nil)
	tr, err := s.Get(ctx, "ds", false)
	must(t, err)
	before := lookup(t, tr, "sub/b.txt")
	h1 := openWrite(t, tr, "a.txt", false)
	h2 := openWrite(t, tr, "sub/b.txt", false)
	h3 := openWrite(t, tr, "sub/b.txt", false)
	if got := readHandle(t, h2, r.Store()); got != "beta" {
		t.Fatalf("a handle open for writing reads %q, want beta", got)
	}
	if tr.Changed() {
		t.Fatal("opening files for writing changed the tree")
	}
	addVersion(t, r, "ds@v2", writeFolder(t, map[string]string{"a.txt": "alpha 2"}))
	if f := follow(t, s, "ds"); f == nil || f.Moved {
		t.Fatalf("Follow with files open for writing: %+v, want it to stay", f)
	}
	for _, h := range []*worktree.Handle{h1, h2, h3} {
		must(t, h.Close())
	}
	if tr.Changed() {
		t.Fatal("handles that wrote nothing left the tree changed once closed")
	}
	if a := lookup(t, tr, "sub/b.txt"); a.ID != before.ID || a.ID.IsZero() || a.MTime != before.MTime || a.Blocks != -1 {
		t.Fatalf("sub/b.txt after an open for writing: %+v, want it as it was: %+v", a, before)
	}
	if f := follow(t, s, "ds"); f == nil || !f.Moved {
		t.Fatalf("Follow once the handles are closed: %+v, want a move to ds@v2", f)
	}
	sameAsVersion(t, tr, r, "ds@v2")
	if _, err := s.Checkout(ctx, ref("ds@v1"), false); err != nil {
		t.Fatalf("checkout after handles that wrote nothing: %v", err)
	}
}

// The first write through a handle opened on a clean file changes the
// file, whatever happened since the open: a snapshot, a write through
// another handle, a removal of the file.
func TestFirstWriteAfterOpenForWriting(t *testing.T) {
	r, tr := sampleTree(t)
	ino := lookup(t, tr, "a.txt").Ino
	rd, err := tr.Open(ctx, ino, false, false)
	must(t, err)
	defer rd.Close()
	h := openWrite(t, tr, "a.txt", false)
	create(t, tr, worktree.RootIno, "other", "x")
	_, err = tr.Snapshot(ctx, r, ref("ds@v2"), "")
	must(t, err)
	if _, err := h.WriteAt([]byte("A"), 0); err != nil {
		t.Fatal(err)
	}
	if !tr.Changed() {
		t.Fatal("a write after the snapshot left the tree clean")
	}
	if got := readHandle(t, rd, r.Store()); got != "Alpha" {
		t.Fatalf("a reader open before the write reads %q, want Alpha", got)
	}
	// A second handle, open before the file changed, writes to the same
	// bytes.
	h2 := openWrite(t, tr, "old.txt", false)
	h3 := openWrite(t, tr, "old.txt", false)
	if _, err := h2.WriteAt([]byte("OLD"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := h3.WriteAt([]byte("!"), 9); err != nil {
		t.Fatal(err)
	}
	must(t, h.Close())
	must(t, h2.Close())
	must(t, h3.Close())
	_, err = tr.Snapshot(ctx, r, ref("ds@v3"), "")
	must(t, err)
	got := export(t, r, "ds@v3")
	want := export(t, r, "ds@v2")
	if got == want {
		t.Fatal("ds@v3 is ds@v2: the writes were lost")
	}
	if s := readFile(t, tr, r.Store(), lookup(t, tr, "a.txt").Ino); s != "Alpha" {
		t.Fatalf("a.txt in ds@v3: %q", s)
	}
	if s := readFile(t, tr, r.Store(), lookup(t, tr, "old.txt").Ino); s != "OLD bytes!" {
		t.Fatalf("old.txt in ds@v3: %q", s)
	}

	// Removed while open and unchanged: writes go to the handle's own
	// copy, and the tree does not see them.
	h4 := openWrite(t, tr, "sub/c.txt", false)
	must(t, tr.Unlink(ctx, lookup(t, tr, "sub").Ino, "c.txt"))
	if _, err := h4.WriteAt([]byte("G"), 0); err != nil {
		t.Fatalf("write to a removed file: %v", err)
	}
	if got := readHandle(t, h4, r.Store()); got != "Gamma" {
		t.Fatalf("a removed file reads %q after a write, want Gamma", got)
	}
	must(t, h4.Close())
	if _, err := lookupErr(tr, "sub/c.txt"); err == nil {
		t.Fatal("the removed file is back")
	}
}

// An open that empties a file that is not empty changes it; one that
// empties an empty file does not.
func TestOpenTruncating(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, map[string]string{"full": "bytes", "none": ""}))
	tr := openTree(t, r, memkv.New(), t.TempDir(), "ds", nil)
	h := openWrite(t, tr, "none", true)
	must(t, h.Close())
	if tr.Changed() {
		t.Fatal("emptying an empty file changed the tree")
	}
	h = openWrite(t, tr, "full", true)
	must(t, h.Close())
	if !tr.Changed() {
		t.Fatal("emptying a file left the tree clean")
	}
	if got := readFile(t, tr, r.Store(), lookup(t, tr, "full").Ino); got != "" {
		t.Fatalf("an emptied file reads %q", got)
	}
}

// A setattr that sets what a clean node has changes nothing; one that
// sets something else changes the tree.
func TestSetAttrUnchanged(t *testing.T) {
	_, tr := sampleTree(t)
	a := lookup(t, tr, "sub/b.txt")
	perm, size, mtime := a.Perm, a.Size, time.Unix(0, a.MTime)
	if _, err := tr.SetAttr(ctx, a.Ino, &perm, &size, &mtime); err != nil {
		t.Fatal(err)
	}
	d := lookup(t, tr, "sub")
	dperm := d.Perm
	if _, err := tr.SetAttr(ctx, d.Ino, &dperm, nil, nil); err != nil {
		t.Fatal(err)
	}
	if tr.Changed() {
		t.Fatal("a setattr of what the nodes had changed the tree")
	}
	perm = 0o600
	if _, err := tr.SetAttr(ctx, a.Ino, &perm, nil, nil); err != nil {
		t.Fatal(err)
	}
	if !tr.Changed() {
		t.Fatal("a chmod left the tree clean")
	}
}

// sampleTree is a working tree on ds@v1, which holds sample.
func sampleTree(t *testing.T) (*repo.Repo, *worktree.Tree) {
	t.Helper()
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	return r, openTree(t, r, memkv.New(), t.TempDir(), "ds", nil)
}
