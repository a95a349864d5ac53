package worktree_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/index"
	"github.com/mlfs/mlfs/index/memkv"
	"github.com/mlfs/mlfs/repo"
	"github.com/mlfs/mlfs/worktree"
)

var sample = map[string]string{
	"a.txt":     "alpha",
	"old.txt":   "old bytes",
	"sub/b.txt": "beta",
	"sub/c.txt": "gamma",
	"sub/deep/": "",
	"link":      "->a.txt",
	"empty/":    "",
}

// change makes one change of every kind to a tree started as sample and
// returns a still open write handle on new.txt.
func change(t *testing.T, tr *worktree.Tree) *worktree.Handle {
	t.Helper()
	a, err := tr.Create(ctx, worktree.RootIno, "new.txt", 0o640)
	must(t, err)
	h, err := tr.Open(ctx, a.Ino, true, false)
	must(t, err)
	if _, err := h.WriteAt([]byte("fresh bytes"), 0); err != nil {
		t.Fatal(err)
	}
	writeAt(t, tr, lookup(t, tr, "a.txt").Ino, 5, " and more") // copy-up, append
	made := mkdir(t, tr, worktree.RootIno, "made")
	must(t, tr.Rename(ctx, lookup(t, tr, "sub").Ino, "b.txt", made, "b2.txt", 0))
	must(t, tr.Unlink(ctx, lookup(t, tr, "sub").Ino, "c.txt"))
	must(t, tr.Rmdir(ctx, worktree.RootIno, "empty"))
	perm := uint32(0o600)
	_, err = tr.SetAttr(ctx, lookup(t, tr, "old.txt").Ino, &perm, nil, nil)
	must(t, err)
	mt := time.Unix(1_600_000_000, 123)
	_, err = tr.SetAttr(ctx, lookup(t, tr, "sub/deep").Ino, nil, nil, &mt)
	must(t, err)
	_, err = tr.Symlink(ctx, made, "link", "../new.txt")
	must(t, err)
	return h
}

// Every change is in the index when the operation returns: closing the
// index with no Sync and opening it again finds them all, and a snapshot
// of the reopened tree holds them.
func TestChangesSurviveReopen(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	kvDir, dataDir := t.TempDir(), t.TempDir()
	kv := openBadger(t, kvDir)
	tr := openTree(t, r, kv, dataDir, "ds", nil)
	h := change(t, tr)
	want := describeTree(t, tr, r.Store())
	must(t, h.Close())
	must(t, kv.Close())

	kv = openBadger(t, kvDir)
	defer kv.Close()
	tr, err := worktree.Open(ctx, kv, dataDir, "ds", cas.ID{}, cas.ID{}, r.Store(), nil)
	must(t, err)
	if got := describeTree(t, tr, r.Store()); got != want {
		t.Fatalf("after reopening:\n%s\n--- want\n%s", got, want)
	}
	if !tr.Changed() {
		t.Fatal("reopened tree says it has no changes")
	}
	if _, err := tr.Snapshot(ctx, r, ref("ds@v2"), ""); err != nil {
		t.Fatal(err)
	}
	sameAsVersion(t, tr, r, "ds@v2")
}

// A daemon killed with SIGKILL leaves the index and data files as the
// kernel has them; copies taken while both are open stand for that.
func TestChangesSurviveKill(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	kvDir, dataDir := t.TempDir(), t.TempDir()
	kv := openBadger(t, kvDir)
	defer kv.Close()
	tr := openTree(t, r, kv, dataDir, "ds", nil)
	h := change(t, tr) // left open, as a killed daemon leaves it
	defer h.Close()
	want := describeTree(t, tr, r.Store())

	kvCopy, dataCopy := filepath.Join(t.TempDir(), "kv"), filepath.Join(t.TempDir(), "data")
	copyDir(t, kvDir, kvCopy)
	copyDir(t, dataDir, dataCopy)
	kv2 := openBadger(t, kvCopy)
	defer kv2.Close()
	tr2, err := worktree.Open(ctx, kv2, dataCopy, "ds", cas.ID{}, cas.ID{}, r.Store(), nil)
	must(t, err)
	if got := describeTree(t, tr2, r.Store()); got != want {
		t.Fatalf("after a kill:\n%s\n--- want\n%s", got, want)
	}
}

const (
	tops, subs, perDir = 5, 10, 200 // 50 folders of 200 files, two levels down
)

func bigSample() map[string]string {
	files := map[string]string{}
	for d := range tops {
		for e := range subs {
			for f := range perDir {
				p := fmt.Sprintf("d%d/e%d/f%03d", d, e, f)
				files[p] = "content of " + p
			}
		}
	}
	return files
}

func treeOf(t *testing.T, r *repo.Repo, id cas.ID) map[string]cas.ID {
	t.Helper()
	raw, err := r.Store().Get(ctx, id)
	must(t, err)
	tree, err := object.DecodeTree(raw)
	must(t, err)
	out := map[string]cas.ID{}
	for _, e := range tree.Entries {
		out[e.Name] = e.ID
	}
	return out
}

// A snapshot reads and stores what changed, not the dataset: one file
// changed two folders down costs that file and the trees above it.
func TestSnapshotCostsWhatChanged(t *testing.T) {
	r := repo.TestRepo(t)
	src := writeFolder(t, bigSample())
	v1 := addVersion(t, r, "ds@v1", src)
	objs := newCounting(r.Store())
	tr := openTree(t, r, memkv.New(), t.TempDir(), "ds", objs)

	const changed = "d3/e7/f123"
	a := lookup(t, tr, changed)
	writeAt(t, tr, a.Ino, 0, "CHANGED")
	opened := objs.take()
	res, err := tr.Snapshot(ctx, r, ref("ds@v2"), "one change")
	must(t, err)
	snap := objs.take()
	const depth = 3 // the trees of /, d3 and d3/e7
	if opened[string(rune(object.KindTree))] > depth {
		t.Errorf("looking up and changing one file fetched %d trees, want at most %d (%v)", opened["T"], depth, opened)
	}
	if snap["T"] > 0 || snap["F"] > 0 || snap["chunk"] > 0 {
		t.Errorf("the snapshot fetched %v, want nothing (every change is local)", snap)
	}
	if res.Stored != 1 {
		t.Errorf("snapshot stored %d files, want 1", res.Stored)
	}
	// "CHANGED" overwrote 7 bytes: the size is the same.
	if res.Files != v1.Files || res.Bytes != v1.Bytes {
		t.Errorf("v2 counts %d files %d bytes, want %d and %d", res.Files, res.Bytes, v1.Files, v1.Bytes)
	}
	if res.Parent != v1.ID {
		t.Errorf("v2's parent is %s, want v1 %s", res.Parent.Short(), v1.ID.Short())
	}

	// v2 is v1 with that one file changed.
	after := lookup(t, tr, changed)
	want := strings.Split(describeDisk(t, src), "\n")
	for i, l := range want {
		if strings.HasPrefix(l, changed+" ") {
			c := "CHANGED" + ("content of " + changed)[7:]
			want[i] = fmt.Sprintf("%s file %o %d %d %s", changed, after.Perm, after.MTime, len(c), digest(c))
		}
	}
	if got := export(t, r, "ds@v2"); got != strings.Join(want, "\n") {
		t.Fatalf("v2 is not v1 with %s changed", changed)
	}
	v2, err := r.Resolve(ctx, ref("ds@v2"))
	must(t, err)
	if got := sortedLines(describeTree(t, tr, r.Store())); got != strings.Join(want, "\n") {
		t.Fatal("the working tree after the snapshot is not v2")
	}

	// Unchanged folders keep their trees.
	top1, top2 := treeOf(t, r, v1.Tree), treeOf(t, r, v2.Tree)
	for name, id := range top1 {
		if same := top2[name] == id; same != (name != "d3") {
			t.Errorf("/%s: v1 tree %s, v2 tree %s", name, id.Short(), top2[name].Short())
		}
	}
	d1, d2 := treeOf(t, r, top1["d3"]), treeOf(t, r, top2["d3"])
	for name, id := range d1 {
		if same := d2[name] == id; same != (name != "e7") {
			t.Errorf("/d3/%s: v1 tree %s, v2 tree %s", name, id.Short(), d2[name].Short())
		}
	}
	if tr.Changed() {
		t.Error("the tree has changes right after its snapshot")
	}
}

// tree0 builds a small tree in an empty dataset:
//
//	f1 "one", f2 "two", d1/{x "x"}, d2/, d3/{y "y"}, d1/sub/
func tree0(t *testing.T) (*repo.Repo, *worktree.Tree) {
	r, tr := memTree(t)
	create(t, tr, worktree.RootIno, "f1", "one")
	create(t, tr, worktree.RootIno, "f2", "two")
	d1 := mkdir(t, tr, worktree.RootIno, "d1")
	create(t, tr, d1, "x", "x")
	mkdir(t, tr, d1, "sub")
	mkdir(t, tr, worktree.RootIno, "d2")
	d3 := mkdir(t, tr, worktree.RootIno, "d3")
	create(t, tr, d3, "y", "y")
	return r, tr
}

func names(t *testing.T, tr *worktree.Tree, path string) string {
	t.Helper()
	ents, err := tr.ReadDir(ctx, lookup(t, tr, path).Ino)
	must(t, err)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name)
	}
	return strings.Join(out, " ")
}

// Rename behaves as on ext4, errors and all; a snapshot afterwards holds
// exactly what the tree shows.
func TestRename(t *testing.T) {
	const root = worktree.RootIno
	ino := func(tr *worktree.Tree, p string) uint64 { return lookup(t, tr, p).Ino }
	cases := []struct {
		name             string
		from, to         string
		flags            uint32
		err              syscall.Errno
		wantTop, wantSub string // names in / and in the folder the case names
		sub              string
	}{
		{name: "file over file", from: "f1", to: "f2", wantTop: "d1 d2 d3 f2"},
		{name: "dir over empty dir", from: "d1", to: "d2", wantTop: "d2 d3 f1 f2", sub: "d2", wantSub: "sub x"},
		{name: "dir over non-empty dir", from: "d1", to: "d3", err: syscall.ENOTEMPTY},
		{name: "file over dir", from: "f1", to: "d2", err: syscall.EISDIR},
		{name: "dir over file", from: "d2", to: "f1", err: syscall.ENOTDIR},
		{name: "dir into itself", from: "d1", to: "d1/sub/d1", err: syscall.EINVAL},
		{name: "dir onto a folder below it", from: "d1", to: "d1/sub", err: syscall.EINVAL},
		{name: "no replace", from: "f1", to: "f2", flags: worktree.RenameNoReplace, err: syscall.EEXIST},
		{name: "no replace, free name", from: "f1", to: "f3", flags: worktree.RenameNoReplace, wantTop: "d1 d2 d3 f2 f3"},
		{name: "exchange", from: "f1", to: "d3/y", flags: worktree.RenameExchange, wantTop: "d1 d2 d3 f1 f2", sub: "d3", wantSub: "y"},
		{name: "exchange dir and file", from: "d1", to: "f2", flags: worktree.RenameExchange, wantTop: "d1 d2 d3 f1 f2", sub: "f2", wantSub: "sub x"},
		{name: "exchange with nothing", from: "f1", to: "f9", flags: worktree.RenameExchange, err: syscall.ENOENT},
		{name: "exchange into own subtree", from: "d1", to: "d1/sub", flags: worktree.RenameExchange, err: syscall.EINVAL},
		{name: "same name", from: "f1", to: "f1", wantTop: "d1 d2 d3 f1 f2"},
		{name: "missing", from: "nope", to: "f9", err: syscall.ENOENT},
		{name: "both flags", from: "f1", to: "f9", flags: worktree.RenameExchange | worktree.RenameNoReplace, err: syscall.EINVAL},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, tr := tree0(t)
			before := describeTree(t, tr, r.Store())
			fromDir, fromName := filepath.Split(c.from)
			toDir, toName := filepath.Split(c.to)
			fromContent := ""
			if a, err := lookupErr(tr, c.from); err == nil && a.Type == object.TypeFile {
				fromContent = readFile(t, tr, r.Store(), a.Ino)
			}
			err := tr.Rename(ctx, ino(tr, strings.TrimSuffix(fromDir, "/")), fromName, ino(tr, strings.TrimSuffix(toDir, "/")), toName, c.flags)
			if c.err != 0 {
				wantErrno(t, err, c.err, "rename "+c.from+" to "+c.to)
				if after := describeTree(t, tr, r.Store()); after != before {
					t.Fatalf("a failed rename changed the tree:\n%s\n--- before\n%s", after, before)
				}
				return
			}
			must(t, err)
			if got := names(t, tr, ""); got != c.wantTop {
				t.Fatalf("/ holds %q, want %q", got, c.wantTop)
			}
			if c.sub != "" {
				if got := names(t, tr, c.sub); got != c.wantSub {
					t.Fatalf("%s holds %q, want %q", c.sub, got, c.wantSub)
				}
			}
			if fromContent != "" {
				if got := readFile(t, tr, r.Store(), ino(tr, c.to)); got != fromContent {
					t.Fatalf("%s reads %q after the rename, want %q", c.to, got, fromContent)
				}
			}
			if _, err := tr.Snapshot(ctx, r, ref("ds@v1"), ""); err != nil {
				t.Fatal(err)
			}
			sameAsVersion(t, tr, r, "ds@v1")
		})
	}
}

// Rename is missing its cases with a clean base too: moving a folder that
// was never looked into keeps its content.
func TestRenameCleanFolder(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	tr := openTree(t, r, memkv.New(), t.TempDir(), "ds", nil)
	made := mkdir(t, tr, worktree.RootIno, "made")
	must(t, tr.Rename(ctx, worktree.RootIno, "sub", made, "sub", 0))
	if got := names(t, tr, "made/sub"); got != "b.txt c.txt deep" {
		t.Fatalf("moved folder holds %q", got)
	}
	_, err := tr.Snapshot(ctx, r, ref("ds@v2"), "")
	must(t, err)
	sameAsVersion(t, tr, r, "ds@v2")
}

var badNames = []string{"", ".", "..", "a/b", "/", "bad\xffname", "nul\x00", strings.Repeat("n", 256)}

// Names a version cannot hold are refused with EINVAL (ENAMETOOLONG for
// names over 255 bytes, as ext4 says) and nothing is created, so a
// snapshot never fails on them.
func TestBadNames(t *testing.T) {
	r, tr := tree0(t)
	before := describeTree(t, tr, r.Store())
	f1 := lookup(t, tr, "f1").Ino
	for _, name := range badNames {
		want := syscall.EINVAL
		if len(name) > 255 {
			want = syscall.ENAMETOOLONG
		}
		_, err := tr.Create(ctx, worktree.RootIno, name, 0o644)
		wantErrno(t, err, want, fmt.Sprintf("create %q", name))
		_, err = tr.Mkdir(ctx, worktree.RootIno, name, 0o755)
		wantErrno(t, err, want, fmt.Sprintf("mkdir %q", name))
		_, err = tr.Symlink(ctx, worktree.RootIno, name, "f1")
		wantErrno(t, err, want, fmt.Sprintf("symlink %q", name))
		err = tr.Rename(ctx, worktree.RootIno, "f1", worktree.RootIno, name, 0)
		wantErrno(t, err, want, fmt.Sprintf("rename to %q", name))
	}
	for _, target := range []string{"", "bad\xfftarget", "nul\x00", strings.Repeat("t", object.MaxTargetLen+1)} {
		_, err := tr.Symlink(ctx, worktree.RootIno, "link", target)
		wantErrno(t, err, syscall.EINVAL, fmt.Sprintf("symlink to %q", target))
	}
	if got := describeTree(t, tr, r.Store()); got != before {
		t.Fatalf("refused names changed the tree:\n%s\n--- before\n%s", got, before)
	}
	if lookup(t, tr, "f1").Ino != f1 {
		t.Fatal("f1 moved")
	}
	longest := strings.Repeat("n", object.MaxNameLen)
	create(t, tr, worktree.RootIno, longest, "ok")
	_, err := tr.Symlink(ctx, worktree.RootIno, "l", "ünïcode/"+strings.Repeat("t", 100))
	must(t, err)
	_, err = tr.Snapshot(ctx, r, ref("ds@v1"), "")
	must(t, err)
	sameAsVersion(t, tr, r, "ds@v1")
}

// A handle opened on a clean file sees the bytes once another handle
// copies the file up and writes.
func TestHandleSeesCopyUp(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	tr := openTree(t, r, memkv.New(), t.TempDir(), "ds", nil)
	ino := lookup(t, tr, "a.txt").Ino
	rd, err := tr.Open(ctx, ino, false, false)
	must(t, err)
	defer rd.Close()
	if c, err := rd.Content(); err != nil || c.Local {
		t.Fatalf("clean file: content %+v, %v", c, err)
	}
	if got := readHandle(t, rd, r.Store()); got != "alpha" {
		t.Fatalf("reads %q", got)
	}
	writeAt(t, tr, ino, 0, "ALPHA")
	if c, err := rd.Content(); err != nil || !c.Local {
		t.Fatalf("after a write: content %+v, %v", c, err)
	}
	if got := readHandle(t, rd, r.Store()); got != "ALPHA" {
		t.Fatalf("the earlier reader reads %q after the write", got)
	}
}

// A reader keeps seeing the file's current bytes when a snapshot makes
// the file clean and a later write copies it up again.
func TestHandleAcrossSnapshotAndCopyUp(t *testing.T) {
	r, tr := memTree(t)
	ino := create(t, tr, worktree.RootIno, "f", "first")
	rd, err := tr.Open(ctx, ino, false, false)
	must(t, err)
	defer rd.Close()
	if got := readHandle(t, rd, r.Store()); got != "first" {
		t.Fatalf("reads %q", got)
	}
	_, err = tr.Snapshot(ctx, r, ref("ds@v1"), "")
	must(t, err)
	if got := readHandle(t, rd, r.Store()); got != "first" {
		t.Fatalf("after the snapshot reads %q", got)
	}
	writeAt(t, tr, ino, 0, "FIRST")
	if got := readHandle(t, rd, r.Store()); got != "FIRST" {
		t.Fatalf("after a write following the snapshot, the reader reads %q", got)
	}
}

// An unlinked or replaced file stays readable through handles open on it,
// clean or changed, whether or not they read before.
func TestHandleOutlivesUnlink(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	tr := openTree(t, r, memkv.New(), t.TempDir(), "ds", nil)

	clean, err := tr.Open(ctx, lookup(t, tr, "a.txt").Ino, false, false)
	must(t, err)
	defer clean.Close()
	b := lookup(t, tr, "sub/b.txt").Ino
	changed, err := tr.Open(ctx, b, false, false)
	must(t, err)
	defer changed.Close()
	writeAt(t, tr, b, 0, "BETA") // copied up after the reader opened
	victim, err := tr.Open(ctx, lookup(t, tr, "old.txt").Ino, false, false)
	must(t, err)
	defer victim.Close()

	must(t, tr.Unlink(ctx, worktree.RootIno, "a.txt"))
	must(t, tr.Unlink(ctx, lookup(t, tr, "sub").Ino, "b.txt"))
	must(t, tr.Rename(ctx, lookup(t, tr, "sub").Ino, "c.txt", worktree.RootIno, "old.txt", 0))
	for _, c := range []struct {
		h    *worktree.Handle
		want string
	}{{clean, "alpha"}, {changed, "BETA"}, {victim, "old bytes"}} {
		if got := readHandle(t, c.h, r.Store()); got != c.want {
			t.Errorf("open handle reads %q after unlink, want %q", got, c.want)
		}
	}
	if got := readFile(t, tr, r.Store(), lookup(t, tr, "old.txt").Ino); got != "gamma" {
		t.Errorf("old.txt reads %q after c.txt replaced it", got)
	}
}

func TestTruncate(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	tr := openTree(t, r, memkv.New(), t.TempDir(), "ds", nil)

	// O_TRUNC of a clean file.
	a := lookup(t, tr, "a.txt").Ino
	h, err := tr.Open(ctx, a, true, true)
	must(t, err)
	if c, err := h.Content(); err != nil || !c.Local || c.Size != 0 {
		t.Fatalf("after O_TRUNC: %+v, %v", c, err)
	}
	must(t, h.Close())
	if at, _ := tr.GetAttr(a); at.Size != 0 || !at.ID.IsZero() {
		t.Fatalf("after O_TRUNC: %+v", at)
	}

	// Bigger: zeros follow; smaller: cut.
	old := lookup(t, tr, "old.txt").Ino
	size := int64(20)
	at, err := tr.SetAttr(ctx, old, nil, &size, nil)
	must(t, err)
	if at.Size != 20 {
		t.Fatalf("size %d after truncate to 20", at.Size)
	}
	if got := readFile(t, tr, r.Store(), old); got != "old bytes"+strings.Repeat("\x00", 11) {
		t.Fatalf("after growing reads %q", got)
	}
	size = 3
	_, err = tr.SetAttr(ctx, old, nil, &size, nil)
	must(t, err)
	if got := readFile(t, tr, r.Store(), old); got != "old" {
		t.Fatalf("after shrinking reads %q", got)
	}
	size = 2
	b := lookup(t, tr, "sub/b.txt").Ino
	_, err = tr.SetAttr(ctx, b, nil, &size, nil) // clean file, shrunk directly
	must(t, err)
	if got := readFile(t, tr, r.Store(), b); got != "be" {
		t.Fatalf("clean file shrunk reads %q", got)
	}
	_, err = tr.SetAttr(ctx, lookup(t, tr, "sub").Ino, nil, &size, nil)
	wantErrno(t, err, syscall.EISDIR, "truncate a folder")
	size = -1
	_, err = tr.SetAttr(ctx, b, nil, &size, nil)
	wantErrno(t, err, syscall.EINVAL, "truncate to -1")

	v, err := tr.Snapshot(ctx, r, ref("ds@v2"), "")
	must(t, err)
	sameAsVersion(t, tr, r, "ds@v2")
	if v.Bytes != int64(len("old")+len("be")+len("gamma")) || v.Files != 4 {
		t.Fatalf("v2 counts %d files, %d bytes", v.Files, v.Bytes)
	}
}

// A file still open for writing when a snapshot is taken stays changed:
// what is written after goes into the next snapshot.
func TestWriterOpenAcrossSnapshot(t *testing.T) {
	r, tr := memTree(t)
	d := mkdir(t, tr, worktree.RootIno, "d")
	a, err := tr.Create(ctx, d, "log", 0o644)
	must(t, err)
	w, err := tr.Open(ctx, a.Ino, true, false)
	must(t, err)
	defer w.Close()
	_, err = w.WriteAt([]byte("one "), 0)
	must(t, err)
	_, err = tr.Snapshot(ctx, r, ref("ds@v1"), "")
	must(t, err)
	if !tr.Changed() {
		t.Error("a file open for writing left the tree clean")
	}
	_, err = w.WriteAt([]byte("two"), 4)
	must(t, err)
	v2, err := tr.Snapshot(ctx, r, ref("ds@v2"), "")
	must(t, err)
	must(t, w.Close())
	sameAsVersion(t, tr, r, "ds@v2")
	if got := export(t, r, "ds@v2"); !strings.Contains(got, fmt.Sprintf("d/log file 644 %d 7 %s", lookup(t, tr, "d/log").MTime, digest("one two"))) {
		t.Fatalf("v2 misses the write made after v1:\n%s", got)
	}
	if v2.Files != 1 || v2.Bytes != 7 {
		t.Errorf("v2 counts %d files, %d bytes", v2.Files, v2.Bytes)
	}
	v3, err := tr.Snapshot(ctx, r, ref("ds@v3"), "")
	must(t, err)
	if tr.Changed() || v3.Tree != v2.Tree || v3.Bytes != 7 {
		t.Errorf("after the writer closed, v3 %+v vs v2 %+v, changed %v", v3.Version, v2.Version, tr.Changed())
	}
}

func allInos(t *testing.T, tr *worktree.Tree) []uint64 {
	t.Helper()
	var out []uint64
	var walk func(uint64)
	walk = func(ino uint64) {
		ents, err := tr.ReadDir(ctx, ino)
		must(t, err)
		for _, e := range ents {
			out = append(out, e.Ino)
			if e.Type == object.TypeDir {
				walk(e.Ino)
			}
		}
	}
	walk(worktree.RootIno)
	return out
}

// Checkout refuses to drop changes unless forced; then the tree is the
// version, under inode numbers never used before.
func TestCheckout(t *testing.T) {
	r := repo.TestRepo(t)
	v1 := addVersion(t, r, "ds@v1", writeFolder(t, sample))
	v2 := addVersion(t, r, "ds@v2", writeFolder(t, map[string]string{"only": "in v2", "d/": ""}))
	tr := openTree(t, r, memkv.New(), t.TempDir(), "ds", nil)
	sameAsVersion(t, tr, r, "ds@v2")
	must(t, tr.Checkout(ctx, v1.ID, v1.Tree, false)) // no changes: no force needed
	sameAsVersion(t, tr, r, "ds@v1")
	if tr.Base() != v1.ID {
		t.Fatal("base is not v1 after checkout")
	}
	seen := allInos(t, tr)
	create(t, tr, lookup(t, tr, "sub").Ino, "new", "x")
	seen = append(seen, lookup(t, tr, "sub/new").Ino)
	before := describeTree(t, tr, r.Store())
	if err := tr.Checkout(ctx, v2.ID, v2.Tree, false); !errors.Is(err, worktree.ErrChanged) {
		t.Fatalf("checkout over changes: %v, want ErrChanged", err)
	}
	if describeTree(t, tr, r.Store()) != before || tr.Base() != v1.ID {
		t.Fatal("a refused checkout changed the tree")
	}
	must(t, tr.Checkout(ctx, v2.ID, v2.Tree, true))
	sameAsVersion(t, tr, r, "ds@v2")
	if tr.Changed() {
		t.Fatal("changed right after a checkout")
	}
	maxSeen := uint64(0)
	for _, i := range seen {
		maxSeen = max(maxSeen, i)
	}
	for _, i := range allInos(t, tr) {
		if i <= maxSeen {
			t.Fatalf("inode %d reused after checkout (earlier ones went up to %d)", i, maxSeen)
		}
	}
	if _, err := tr.GetAttr(seen[0]); !isErrno(err, syscall.ENOENT) {
		t.Fatalf("an inode of the old tree: %v, want ENOENT", err)
	}
	// The next snapshot's parent is the version checked out.
	create(t, tr, worktree.RootIno, "after", "checkout")
	v3, err := tr.Snapshot(ctx, r, ref("ds@v3"), "")
	must(t, err)
	if v3.Parent != v2.ID || v3.Files != 2 || v3.Bytes != int64(len("in v2")+len("checkout")) {
		t.Fatalf("v3 after checkout: parent %s, %d files, %d bytes", v3.Parent.Short(), v3.Files, v3.Bytes)
	}
}

// A snapshot under a taken name fails with cas.ErrExists and leaves the
// tree as it was; a new name then works.
func TestSnapshotNameTaken(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	tr := openTree(t, r, memkv.New(), t.TempDir(), "ds", nil)
	h := change(t, tr)
	must(t, h.Close())
	before := describeTree(t, tr, r.Store())
	addVersion(t, r, "ds@v2", writeFolder(t, map[string]string{"other": "machine"}))

	_, err := tr.Snapshot(ctx, r, ref("ds@v2"), "")
	if !errors.Is(err, cas.ErrExists) {
		t.Fatalf("snapshot as a taken name: %v, want cas.ErrExists", err)
	}
	if !tr.Changed() || describeTree(t, tr, r.Store()) != before {
		t.Fatal("a failed snapshot changed the tree")
	}
	if _, err := tr.Snapshot(ctx, r, ref("ds@v3"), ""); err != nil {
		t.Fatal(err)
	}
	sameAsVersion(t, tr, r, "ds@v3")
	if describeTree(t, tr, r.Store()) != before {
		t.Fatal("the snapshot changed the tree")
	}
}

// The version's counts are those of the tree, after every kind of change
// and across snapshots.
func TestSnapshotCounts(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	tr := openTree(t, r, memkv.New(), t.TempDir(), "ds", nil)
	h := change(t, tr)
	must(t, h.Close())
	check := func(v string) {
		t.Helper()
		vi, err := tr.Snapshot(ctx, r, ref(v), "")
		must(t, err)
		var files, bytes int64
		for _, l := range strings.Split(export(t, r, v), "\n") {
			if f := strings.Fields(l); len(f) == 6 && f[1] == "file" {
				var n int64
				fmt.Sscan(f[4], &n)
				files++
				bytes += n
			}
		}
		if vi.Files != files || vi.Bytes != bytes {
			t.Fatalf("%s records %d files, %d bytes; it holds %d, %d", v, vi.Files, vi.Bytes, files, bytes)
		}
	}
	check("ds@v2")
	size := int64(1)
	_, err := tr.SetAttr(ctx, lookup(t, tr, "new.txt").Ino, nil, &size, nil)
	must(t, err)
	writeAt(t, tr, lookup(t, tr, "made/b2.txt").Ino, 100, "far")
	must(t, tr.Unlink(ctx, worktree.RootIno, "a.txt"))
	must(t, tr.Rename(ctx, lookup(t, tr, "made").Ino, "b2.txt", worktree.RootIno, "old.txt", 0))
	create(t, tr, worktree.RootIno, "n2", "twelve bytes")
	check("ds@v3")
	check("ds@v4")
}

// Datasets with a working tree are listed, and only they: no key of a
// tree is taken for one.
func TestList(t *testing.T) {
	kv := memkv.New()
	r := repo.TestRepo(t)
	for _, ds := range []string{"b", "a", "a.x"} {
		tr := openTree(t, r, kv, t.TempDir(), ds, nil)
		create(t, tr, worktree.RootIno, "pad", "")
		// Folders get odd inodes from here, so one gets 0x2f, '/'.
		for i := range 60 {
			d := mkdir(t, tr, worktree.RootIno, fmt.Sprint("d", i))
			create(t, tr, d, "meta", "")
		}
	}
	got, err := worktree.List(kv)
	must(t, err)
	if want := []string{"a", "a.x", "b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %q, want %q", got, want)
	}
	if !worktree.Exists(kv, "a") || worktree.Exists(kv, "c") {
		t.Fatal("Exists is wrong")
	}
}

// The set opens each dataset's tree once, at its latest version.
func TestSet(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	s := worktree.NewSet(memkv.New(), t.TempDir(), r, r.Store(), nil)
	tr, err := s.Get(ctx, "ds", false)
	must(t, err)
	sameAsVersion(t, tr, r, "ds@v1")
	if again, _ := s.Get(ctx, "ds", false); again != tr {
		t.Fatal("a second Get opened another tree")
	}
	if _, err := s.Get(ctx, "none", false); !errors.Is(err, worktree.ErrNoDataset) {
		t.Fatalf("Get of a dataset with no versions: %v", err)
	}
	if _, err := s.Get(ctx, "bad name", true); err == nil {
		t.Fatal("Get accepted a bad name")
	}
	_, err = s.Get(ctx, "fresh", true)
	must(t, err)
	got, err := s.Names(ctx)
	must(t, err)
	if want := []string{"ds", "fresh"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Names = %q, want %q", got, want)
	}
}

// Concurrent readers, writers and snapshots (run with -race).
func TestConcurrent(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	tr := openTree(t, r, memkv.New(), t.TempDir(), "ds", nil)
	ino := lookup(t, tr, "a.txt").Ino
	rd, err := tr.Open(ctx, ino, false, false)
	must(t, err)
	defer rd.Close()
	done := make(chan error, 3)
	go func() {
		for i := range 50 {
			h, err := tr.Open(ctx, ino, true, false)
			if err != nil {
				done <- err
				return
			}
			h.WriteAt([]byte{byte('a' + i%26)}, 0)
			h.Close()
		}
		done <- nil
	}()
	go func() {
		buf := make([]byte, 64)
		for range 200 {
			c, err := rd.Content()
			if err != nil {
				done <- err
				return
			}
			if c.Local {
				if _, err := rd.ReadAt(buf, 0); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	go func() {
		for i := range 5 {
			if _, err := tr.Snapshot(ctx, r, ref(fmt.Sprintf("ds@c%d", i)), ""); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 3 {
		must(t, <-done)
	}
	got := readHandle(t, rd, r.Store())
	if len(got) != 5 || !bytes.HasSuffix([]byte(got), []byte("lpha")) {
		t.Fatalf("reads %q", got)
	}
}

var _ index.KV = memkv.New()

// hideVersions is a store whose version objects cannot be read.
type hideVersions struct{ cas.Getter }

func (h hideVersions) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	b, err := h.Getter.Get(ctx, id)
	if k, ok := object.KindOf(b); err == nil && ok && k == object.KindVersion {
		return nil, fmt.Errorf("version %s: %w", id.Short(), cas.ErrNotFound)
	}
	return b, err
}

// A tree whose base's counts cannot be read counts by walking once; the
// snapshot after that walks only what changed again.
func TestSnapshotCountsWithoutBaseCounts(t *testing.T) {
	r := repo.TestRepo(t)
	v1 := addVersion(t, r, "ds@v1", writeFolder(t, bigSample()))
	objs := newCounting(hideVersions{r.Store()})
	tr := openTree(t, r, memkv.New(), t.TempDir(), "ds", objs)
	create(t, tr, lookup(t, tr, "d1/e1").Ino, "new", "12345")
	v2, err := tr.Snapshot(ctx, r, ref("ds@v2"), "")
	must(t, err)
	if v2.Files != v1.Files+1 || v2.Bytes != v1.Bytes+5 {
		t.Fatalf("v2 counts %d files %d bytes, want %d and %d", v2.Files, v2.Bytes, v1.Files+1, v1.Bytes+5)
	}
	objs.take()
	must(t, tr.Unlink(ctx, lookup(t, tr, "d4/e9").Ino, "f000"))
	v3, err := tr.Snapshot(ctx, r, ref("ds@v3"), "")
	must(t, err)
	if n := objs.take()["T"]; n > 2 {
		t.Errorf("the second snapshot fetched %d trees", n)
	}
	if v3.Files != v2.Files-1 || v3.Bytes != v2.Bytes-int64(len("content of d4/e9/f000")) {
		t.Fatalf("v3 counts %d files %d bytes", v3.Files, v3.Bytes)
	}
}

// BenchmarkSnapshotOneChange snapshots a tree of 100,000 files in 1,000
// folders after changing one file.
func BenchmarkSnapshotOneChange(b *testing.B) {
	const folders, files = 1000, 100
	r := repo.TestRepo(b)
	kv := openBadger(b, b.TempDir())
	defer kv.Close()
	tr := openTree(b, r, kv, b.TempDir(), "ds", nil)
	var inos []uint64
	for d := range folders {
		dir := mkdir(b, tr, worktree.RootIno, fmt.Sprintf("d%04d", d))
		for f := range files {
			inos = append(inos, create(b, tr, dir, fmt.Sprintf("f%03d", f), fmt.Sprintf("file %d of folder %d", f, d)))
		}
	}
	_, err := tr.Snapshot(ctx, r, ref("ds@v0"), "")
	must(b, err)
	b.ResetTimer()
	start := time.Now()
	n := 0
	for b.Loop() {
		n++
		writeAt(b, tr, inos[(n*7919)%len(inos)], 0, fmt.Sprint("change ", n))
		if _, err := tr.Snapshot(ctx, r, ref(fmt.Sprint("ds@v", n)), ""); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(n), "ms/snapshot")
}
