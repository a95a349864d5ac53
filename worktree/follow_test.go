package worktree_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mlfs/mlfs/index/memkv"
	"github.com/mlfs/mlfs/repo"
	"github.com/mlfs/mlfs/worktree"
)

// logBuffer is a logger whose records can be read back.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// follow calls Set.Follow and fails the test on an error.
func follow(t *testing.T, s *worktree.Set, ds string) *worktree.Followed {
	t.Helper()
	f, err := s.Follow(ctx, ds)
	must(t, err)
	return f
}

// A clean tree follows each newer version; a second look at the same
// names does nothing.
func TestFollowCleanTree(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	s := worktree.NewSet(memkv.New(), t.TempDir(), r, r.Store(), nil)
	tr, err := s.Get(ctx, "ds", false)
	must(t, err)
	if f := follow(t, s, "ds"); f != nil {
		t.Fatalf("a tree on the latest version followed: %+v", f)
	}
	v2 := addVersion(t, r, "ds@v2", writeFolder(t, map[string]string{"a.txt": "alpha 2", "new.txt": "from elsewhere"}))
	f := follow(t, s, "ds")
	if f == nil || !f.Moved || f.Base != "ds@v1" || f.Latest.Ref.String() != "ds@v2" {
		t.Fatalf("Follow after ds@v2: %+v, want a move from ds@v1 to ds@v2", f)
	}
	if tr.Base() != v2.ID || tr.Changed() || tr.Pinned() {
		t.Fatal("the tree is not clean on ds@v2 after following it")
	}
	sameAsVersion(t, tr, r, "ds@v2")
	if f := follow(t, s, "ds"); f != nil {
		t.Fatalf("a second look followed again: %+v", f)
	}
}

// A dataset made empty here follows the first version made elsewhere.
func TestFollowEmptyTree(t *testing.T) {
	r := repo.TestRepo(t)
	s := worktree.NewSet(memkv.New(), t.TempDir(), r, r.Store(), nil)
	tr, err := s.Get(ctx, "ds", true)
	must(t, err)
	if f := follow(t, s, "ds"); f != nil {
		t.Fatalf("a dataset with no versions followed: %+v", f)
	}
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	if f := follow(t, s, "ds"); f == nil || !f.Moved || f.Base != "none" {
		t.Fatalf("Follow of an empty tree after ds@v1: %+v", f)
	}
	sameAsVersion(t, tr, r, "ds@v1")
}

// A tree with changes, or with a file open for writing, stays where it is
// with every byte; its snapshot succeeds and warns, naming both versions
// and the machine that made the newer one.
func TestFollowKeepsChanges(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	var log logBuffer
	s := worktree.NewSet(memkv.New(), t.TempDir(), r, r.Store(), log.logger())
	tr, err := s.Get(ctx, "ds", false)
	must(t, err)
	v1 := tr.Base()
	create(t, tr, worktree.RootIno, "mine.txt", "unsaved")
	v2 := addVersion(t, r, "ds@v2", writeFolder(t, map[string]string{"theirs.txt": "x"}))
	f := follow(t, s, "ds")
	if f == nil || f.Moved || !strings.Contains(f.Stuck, "changes") || f.Latest.ID != v2.ID {
		t.Fatalf("Follow of a changed tree: %+v, want it to stay, saying why", f)
	}
	if tr.Base() != v1 || readFile(t, tr, r.Store(), lookup(t, tr, "mine.txt").Ino) != "unsaved" {
		t.Fatal("a changed tree was moved")
	}
	if f := follow(t, s, "ds"); f != nil {
		t.Fatalf("the second look at the same names told again: %+v", f)
	}

	res, err := tr.Snapshot(ctx, r, ref("ds@v3"), "")
	must(t, err)
	out := log.String()
	for _, want := range []string{worktree.StaleSnapshot, "version=ds@v3", "base=ds@v1", "latest=ds@v2", "made on\"=" + v2.Host, "level=WARN"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the snapshot's log does not say %q:\n%s", want, out)
		}
	}
	if res.Parent != v1 {
		t.Fatal("the snapshot's parent is not the tree's base")
	}
	// The tree carries on from ds@v3, the latest now: nothing to follow,
	// and its next snapshot does not warn.
	if f := follow(t, s, "ds"); f != nil {
		t.Fatalf("Follow after the snapshot: %+v", f)
	}
	create(t, tr, worktree.RootIno, "more.txt", "x")
	before := strings.Count(log.String(), worktree.StaleSnapshot)
	_, err = tr.Snapshot(ctx, r, ref("ds@v4"), "")
	must(t, err)
	if strings.Count(log.String(), worktree.StaleSnapshot) != before {
		t.Fatal("a snapshot of a tree on the latest version warned")
	}

	// Clean, but a file is open for writing: the tree stays and the
	// write after the newer version lands in it.
	h, err := tr.Open(ctx, lookup(t, tr, "a.txt").Ino, true, false)
	must(t, err)
	addVersion(t, r, "ds@v5", writeFolder(t, map[string]string{"other": "y"}))
	if f := follow(t, s, "ds"); f == nil || f.Moved {
		t.Fatalf("Follow with a file open for writing: %+v, want it to stay", f)
	}
	if _, err := h.WriteAt([]byte("ALPHA"), 0); err != nil {
		t.Fatal(err)
	}
	must(t, h.Close())
	if got := readFile(t, tr, r.Store(), lookup(t, tr, "a.txt").Ino); got != "ALPHA" {
		t.Fatalf("a.txt after a write through a handle open while ds@v5 came: %q", got)
	}
}

// A checkout of a named version pins the tree there, also across a
// restart; a checkout of latest, or a snapshot, makes it follow again.
func TestFollowPinnedByCheckout(t *testing.T) {
	r := repo.TestRepo(t)
	v1 := addVersion(t, r, "ds@v1", writeFolder(t, sample))
	addVersion(t, r, "ds@v2", writeFolder(t, map[string]string{"b": "2"}))
	kv, dir := memkv.New(), t.TempDir()
	s := worktree.NewSet(kv, dir, r, r.Store(), nil)
	_, err := s.Checkout(ctx, ref("ds@v1"), false)
	must(t, err)
	addVersion(t, r, "ds@v3", writeFolder(t, map[string]string{"c": "3"}))
	if f := follow(t, s, "ds"); f == nil || f.Moved || !strings.Contains(f.Stuck, "pinned") {
		t.Fatalf("Follow of a pinned tree: %+v, want it to stay", f)
	}
	s = worktree.NewSet(kv, dir, r, r.Store(), nil) // a restart
	tr, err := s.Get(ctx, "ds", false)
	must(t, err)
	if !tr.Pinned() || tr.Base() != v1.ID {
		t.Fatal("the pin did not survive reopening the tree")
	}
	if f := follow(t, s, "ds"); f == nil || f.Moved {
		t.Fatalf("Follow of a pinned tree after a restart: %+v", f)
	}
	_, err = s.Checkout(ctx, ref("ds@latest"), false)
	must(t, err)
	sameAsVersion(t, tr, r, "ds@v3")
	addVersion(t, r, "ds@v4", writeFolder(t, map[string]string{"d": "4"}))
	if f := follow(t, s, "ds"); f == nil || !f.Moved {
		t.Fatalf("Follow after checkout of latest: %+v, want a move", f)
	}
	sameAsVersion(t, tr, r, "ds@v4")

	// Pinned, then snapshotted: following again.
	_, err = s.Checkout(ctx, ref("ds@v2"), false)
	must(t, err)
	create(t, tr, worktree.RootIno, "e", "5")
	_, err = tr.Snapshot(ctx, r, ref("ds@v5"), "")
	must(t, err)
	if tr.Pinned() {
		t.Fatal("still pinned after a snapshot")
	}
	addVersion(t, r, "ds@v6", writeFolder(t, map[string]string{"f": "6"}))
	if f := follow(t, s, "ds"); f == nil || !f.Moved {
		t.Fatalf("Follow after a snapshot of a pinned tree: %+v, want a move", f)
	}
}

// A tree whose base is newer than the latest version (a newer one was
// removed) is not moved back.
func TestFollowNotBackwards(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	v2 := addVersion(t, r, "ds@v2", writeFolder(t, map[string]string{"b": "2"}))
	s := worktree.NewSet(memkv.New(), t.TempDir(), r, r.Store(), nil)
	tr, err := s.Get(ctx, "ds", false)
	must(t, err)
	must(t, r.RemoveVersion(ctx, ref("ds@v2")))
	if f := follow(t, s, "ds"); f != nil {
		t.Fatalf("Follow after the base's name was removed: %+v, want nothing", f)
	}
	if tr.Base() != v2.ID {
		t.Fatal("the tree moved back to an older version")
	}
}

// A file snapshotted while open for writing, then closed unchanged, is
// clean: the kernel tells of a close after close(2) returns, so a write
// followed at once by a snapshot often snapshots an open file. The tree
// then follows newer versions. Written after the snapshot, or with
// another change made meanwhile, it stays changed.
func TestSettleAfterSnapshot(t *testing.T) {
	r := repo.TestRepo(t)
	addVersion(t, r, "ds@v1", writeFolder(t, sample))
	dataDir := t.TempDir()
	s := worktree.NewSet(memkv.New(), dataDir, r, r.Store(), nil)
	tr, err := s.Get(ctx, "ds", false)
	must(t, err)
	snapOpen := func(version, path, content string) *worktree.Handle {
		t.Helper()
		h, err := tr.Open(ctx, lookup(t, tr, path).Ino, true, false)
		must(t, err)
		if _, err := h.WriteAt([]byte(content), 0); err != nil {
			t.Fatal(err)
		}
		_, err = tr.Snapshot(ctx, r, ref(version), "")
		must(t, err)
		if !tr.Changed() {
			t.Fatal("a file open for writing during the snapshot left the tree clean before its close")
		}
		return h
	}

	h := snapOpen("ds@v2", "sub/b.txt", "BETA")
	must(t, h.Close())
	if tr.Changed() || lookup(t, tr, "sub/b.txt").ID.IsZero() {
		t.Fatal("closed unchanged after the snapshot, the tree is still changed")
	}
	if ents, _ := os.ReadDir(filepath.Join(dataDir, "ds")); len(ents) != 0 {
		t.Fatalf("the local copy of a file now clean is kept: %d files", len(ents))
	}
	sameAsVersion(t, tr, r, "ds@v2")
	addVersion(t, r, "ds@v3", writeFolder(t, map[string]string{"x": "3"}))
	if f := follow(t, s, "ds"); f == nil || !f.Moved {
		t.Fatalf("Follow after the file was closed: %+v, want a move", f)
	}

	h = snapOpen("ds@v4", "x", "written")
	if _, err := h.WriteAt([]byte(" again"), 7); err != nil {
		t.Fatal(err)
	}
	must(t, h.Close())
	if !tr.Changed() || readFile(t, tr, r.Store(), lookup(t, tr, "x").Ino) != "written again" {
		t.Fatal("a write after the snapshot was lost when the file closed")
	}
	_, err = tr.Snapshot(ctx, r, ref("ds@v5"), "")
	must(t, err)

	h = snapOpen("ds@v6", "x", "other")
	create(t, tr, worktree.RootIno, "new", "n")
	must(t, h.Close())
	if !tr.Changed() || readFile(t, tr, r.Store(), lookup(t, tr, "new").Ino) != "n" {
		t.Fatal("a change made while the file was open was lost when it closed")
	}
}
