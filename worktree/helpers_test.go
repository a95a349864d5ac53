package worktree_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/index"
	"github.com/mlfs/mlfs/index/badgerkv"
	"github.com/mlfs/mlfs/index/memkv"
	"github.com/mlfs/mlfs/repo"
	"github.com/mlfs/mlfs/worktree"
)

var ctx = context.Background()

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeFolder writes files (path -> content; a trailing "/" makes a
// folder, a "->" prefix a symlink) under a new temp dir and returns it.
func writeFolder(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if strings.HasSuffix(p, "/") {
			must(t, os.MkdirAll(full, 0o755))
			continue
		}
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		if target, ok := strings.CutPrefix(c, "->"); ok {
			must(t, os.Symlink(target, full))
			continue
		}
		must(t, os.WriteFile(full, []byte(c), 0o644))
	}
	return dir
}

func addVersion(t testing.TB, r *repo.Repo, ref, dir string) repo.VersionInfo {
	t.Helper()
	rf, err := repo.ParseRef(ref)
	must(t, err)
	res, err := r.Add(ctx, rf, dir, repo.AddOptions{})
	must(t, err)
	return res.VersionInfo
}

func ref(s string) repo.Ref {
	r, err := repo.ParseRef(s)
	if err != nil {
		panic(err)
	}
	return r
}

func openBadger(t testing.TB, dir string) *badgerkv.KV {
	t.Helper()
	kv, err := badgerkv.Open(dir, nil)
	must(t, err)
	return kv
}

// openTree opens the working tree of dataset ds in kv, starting (if new)
// as its latest version.
func openTree(t testing.TB, r *repo.Repo, kv index.KV, dataDir, ds string, objs cas.Getter) *worktree.Tree {
	t.Helper()
	var base, tree cas.ID
	if v, err := r.Resolve(ctx, repo.Ref{Dataset: ds, Version: "latest"}); err == nil {
		base, tree = v.ID, v.Tree
	} else if !errors.Is(err, repo.ErrNoVersion) {
		t.Fatal(err)
	}
	if objs == nil {
		objs = r.Store()
	}
	tr, err := worktree.Open(ctx, kv, dataDir, ds, base, tree, objs, nil)
	must(t, err)
	return tr
}

// memTree is an empty dataset's working tree on memkv.
func memTree(t testing.TB) (*repo.Repo, *worktree.Tree) {
	t.Helper()
	r := repo.TestRepo(t)
	return r, openTree(t, r, memkv.New(), t.TempDir(), "ds", nil)
}

// lookup finds path (slash separated, "" for the top) in tr.
func lookup(t testing.TB, tr *worktree.Tree, path string) worktree.Attr {
	t.Helper()
	a, err := lookupErr(tr, path)
	if err != nil {
		t.Fatalf("lookup %s: %v", path, err)
	}
	return a
}

func lookupErr(tr *worktree.Tree, path string) (worktree.Attr, error) {
	a, err := tr.GetAttr(worktree.RootIno)
	if err != nil || path == "" {
		return a, err
	}
	for _, name := range strings.Split(path, "/") {
		if a, err = tr.Lookup(ctx, a.Ino, name); err != nil {
			return a, err
		}
	}
	return a, nil
}

func mkdir(t testing.TB, tr *worktree.Tree, parent uint64, name string) uint64 {
	t.Helper()
	a, err := tr.Mkdir(ctx, parent, name, 0o755)
	must(t, err)
	return a.Ino
}

// create makes a file holding content through a write handle.
func create(t testing.TB, tr *worktree.Tree, parent uint64, name, content string) uint64 {
	t.Helper()
	a, err := tr.Create(ctx, parent, name, 0o644)
	must(t, err)
	h, err := tr.Open(ctx, a.Ino, true, false)
	must(t, err)
	if _, err := h.WriteAt([]byte(content), 0); err != nil {
		t.Fatal(err)
	}
	must(t, h.Close())
	return a.Ino
}

// writeAt writes through a new write handle.
func writeAt(t testing.TB, tr *worktree.Tree, ino uint64, off int64, s string) {
	t.Helper()
	h, err := tr.Open(ctx, ino, true, false)
	must(t, err)
	if _, err := h.WriteAt([]byte(s), off); err != nil {
		t.Fatal(err)
	}
	must(t, h.Close())
}

// readHandle reads all of a file through h, from the local data file or
// the store as Content says.
func readHandle(t testing.TB, h *worktree.Handle, st cas.Getter) string {
	t.Helper()
	c, err := h.Content()
	must(t, err)
	if !c.Local {
		return readObject(t, st, c.ID, c.Size)
	}
	buf := make([]byte, c.Size+10)
	n, err := h.ReadAt(buf, 0)
	must(t, err)
	if int64(n) != c.Size {
		t.Fatalf("read %d bytes of a %d-byte file", n, c.Size)
	}
	return string(buf[:n])
}

func readObject(t testing.TB, st cas.Getter, id cas.ID, size int64) string {
	t.Helper()
	if id.IsZero() {
		return ""
	}
	raw, err := st.Get(ctx, id)
	must(t, err)
	f, err := object.DecodeFile(raw)
	must(t, err)
	var out []byte
	for _, c := range f.Chunks {
		b, err := st.Get(ctx, c.ID)
		must(t, err)
		out = append(out, b...)
	}
	if int64(len(out)) != size {
		t.Fatalf("file object %s has %d bytes, attr says %d", id.Short(), len(out), size)
	}
	return string(out)
}

func readFile(t testing.TB, tr *worktree.Tree, st cas.Getter, ino uint64) string {
	t.Helper()
	h, err := tr.Open(ctx, ino, false, false)
	must(t, err)
	defer h.Close()
	return readHandle(t, h, st)
}

func digest(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s)))[:16] }

// describeTree lists every node below the top of tr, one line each, as
// describeDisk does for a folder on disk.
func describeTree(t testing.TB, tr *worktree.Tree, st cas.Getter) string {
	t.Helper()
	var lines []string
	var walk func(ino uint64, prefix string)
	walk = func(ino uint64, prefix string) {
		ents, err := tr.ReadDir(ctx, ino)
		must(t, err)
		for _, e := range ents {
			a, err := tr.GetAttr(e.Ino)
			must(t, err)
			p := prefix + e.Name
			switch a.Type {
			case object.TypeDir:
				lines = append(lines, fmt.Sprintf("%s/ dir %o %d", p, a.Perm, a.MTime))
				walk(e.Ino, p+"/")
			case object.TypeSymlink:
				lines = append(lines, fmt.Sprintf("%s -> %s", p, a.Target))
			case object.TypeFile:
				c := readFile(t, tr, st, e.Ino)
				lines = append(lines, fmt.Sprintf("%s file %o %d %d %s", p, a.Perm, a.MTime, len(c), digest(c)))
			}
		}
	}
	walk(worktree.RootIno, "")
	return strings.Join(lines, "\n")
}

// describeDisk is describeTree for a folder on disk (its top excluded).
func describeDisk(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		perm := uint32(fi.Mode().Perm())
		switch {
		case fi.IsDir():
			lines = append(lines, fmt.Sprintf("%s/ dir %o %d", rel, perm, fi.ModTime().UnixNano()))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("%s -> %s", rel, target))
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("%s file %o %d %d %s", rel, perm, fi.ModTime().UnixNano(), len(b), digest(string(b))))
		}
		return nil
	})
	must(t, err)
	sort.Strings(lines) // WalkDir's order is by name per folder; sort to match ReadDir's
	return strings.Join(lines, "\n")
}

func sortedLines(s string) string {
	l := strings.Split(s, "\n")
	sort.Strings(l)
	return strings.Join(l, "\n")
}

// export writes version v into a new temp dir and describes it.
func export(t testing.TB, r *repo.Repo, v string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "x")
	_, err := r.Export(ctx, ref(v), dir, repo.ExportOptions{})
	must(t, err)
	return describeDisk(t, dir)
}

// sameAsVersion checks that the tree reads as version v does when exported.
func sameAsVersion(t testing.TB, tr *worktree.Tree, r *repo.Repo, v string) {
	t.Helper()
	got, want := sortedLines(describeTree(t, tr, r.Store())), export(t, r, v)
	if got != want {
		t.Fatalf("working tree differs from %s:\n%s\n--- want\n%s", v, got, want)
	}
}

func isErrno(err error, want syscall.Errno) bool {
	var e syscall.Errno
	return errors.As(err, &e) && e == want
}

func wantErrno(t testing.TB, err error, want syscall.Errno, what string) {
	t.Helper()
	if !isErrno(err, want) {
		t.Fatalf("%s: got %v, want %v (%s)", what, err, want, errnoName(want))
	}
}

func errnoName(e syscall.Errno) string { return fmt.Sprintf("errno %d", int(e)) }

// countingGetter counts the objects fetched, by kind.
type countingGetter struct {
	cas.Getter
	mu     sync.Mutex
	counts map[string]int
}

func newCounting(g cas.Getter) *countingGetter {
	return &countingGetter{Getter: g, counts: map[string]int{}}
}

func (c *countingGetter) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	b, err := c.Getter.Get(ctx, id)
	if err == nil {
		kind := "chunk"
		if k, ok := object.KindOf(b); ok {
			kind = string(rune(k))
		}
		c.mu.Lock()
		c.counts[kind]++
		c.mu.Unlock()
	}
	return b, err
}

func (c *countingGetter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.counts
	c.counts = map[string]int{}
	return m
}

// copyDir copies a folder of regular files (a badger dir, a data dir).
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		fi, err := in.Stat()
		if err != nil {
			return err
		}
		o, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(o, in); err != nil {
			o.Close()
			return err
		}
		if err := o.Close(); err != nil {
			return err
		}
		return os.Chtimes(out, fi.ModTime(), fi.ModTime())
	})
	must(t, err)
}
