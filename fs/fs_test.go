package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/local"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/cas/pack"
	"github.com/mlfs/mlfs/index/memkv"
	"github.com/mlfs/mlfs/repo"
	"github.com/mlfs/mlfs/worktree"
)

var bg = context.Background()

// testWriter sends the filesystem's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// counting counts the objects fetched through it, by kind.
type counting struct {
	cas.Getter
	gets, chunks atomic.Int64
}

func (c *counting) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	b, err := c.Getter.Get(ctx, id)
	c.gets.Add(1)
	if _, ok := object.KindOf(b); !ok {
		c.chunks.Add(1)
	}
	return b, err
}

// canMount says loudly why FUSE tests cannot run here.
func canMount(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("NOT RUN: no /dev/fuse on this machine; CI runs these as root with /dev/fuse")
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			t.Skip("NOT RUN: not root and no fusermount3 (apt-get install fuse3); CI runs these as root")
		}
	}
}

// mount serves r (objects through objs) under a temp dir until the test ends.
func mount(t *testing.T, r *repo.Repo, objs cas.Getter) string {
	t.Helper()
	canMount(t)
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2) // a test that serves and reads one mount needs two
	}
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	work := worktree.NewSet(memkv.New(), t.TempDir(), r, objs, log)
	root := New(Options{Repo: r, Objects: objs, Work: work, Log: log})
	server, err := Mount(dir, root, MountOptions{Debug: testing.Verbose() && os.Getenv("MLFS_FUSE_DEBUG") != ""})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := server.Unmount(); err != nil {
			// Still busy (a failed test left a file open): detach it, so
			// that no later call of this process waits on a dead server.
			t.Errorf("unmount: %v", err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7})
	rng.Read(b)
	return b
}

// sampleTree writes a small dataset with every kind of entry.
func sampleTree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "train/images"), 0o755))
	must(os.MkdirAll(filepath.Join(src, "empty"), 0o700))
	must(os.WriteFile(filepath.Join(src, "train/data.bin"), randomBytes(5<<20+123, 1), 0o644))
	must(os.WriteFile(filepath.Join(src, "train/labels.csv"), []byte("id,label\n1,cat\n2,dog\n"), 0o644))
	must(os.WriteFile(filepath.Join(src, "train/images/a.png"), randomBytes(70<<10, 2), 0o600))
	must(os.WriteFile(filepath.Join(src, "empty.txt"), nil, 0o644))
	must(os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(os.Symlink("train/labels.csv", filepath.Join(src, "labels")))
	return src
}

func add(t *testing.T, r *repo.Repo, ref, src string) *repo.AddResult {
	t.Helper()
	rf, err := repo.ParseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Add(bg, rf, src, repo.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// describe lists a tree as a user would compare two copies: type, mode,
// mtime, size, content hash or link target.
func describe(t *testing.T, root string) string {
	t.Helper()
	var sb strings.Builder
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fmt.Fprintf(&sb, "%s %v", rel, fi.Mode())
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&sb, " -> %s", target)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&sb, " %d %x %d", fi.Size(), sha256.Sum256(b), fi.ModTime().UnixNano())
		}
		sb.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

func TestVersionMatchesItsSource(t *testing.T) {
	r := repo.TestRepo(t)
	src := sampleTree(t)
	res := add(t, r, "ds@v1", src)
	mnt := mount(t, r, r.Store())

	if got, want := describe(t, filepath.Join(mnt, "ds@v1")), describe(t, src); got != want {
		t.Fatalf("the version differs from its source:\n--- mount\n%s--- source\n%s", got, want)
	}
	target, err := os.Readlink(filepath.Join(mnt, "ds@latest"))
	if err != nil || target != "ds@v1" {
		t.Fatalf("ds@latest -> %q, %v", target, err)
	}
	b, err := os.ReadFile(filepath.Join(mnt, "ds@latest/train/labels.csv"))
	if err != nil || string(b) != "id,label\n1,cat\n2,dog\n" {
		t.Fatalf("through @latest: %q, %v", b, err)
	}
	// By id prefix, not listed.
	byID := filepath.Join(mnt, "ds@"+res.ID.String()[:10])
	if _, err := os.Stat(filepath.Join(byID, "run.sh")); err != nil {
		t.Fatalf("lookup by id prefix: %v", err)
	}
	ents, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "ds ds@latest ds@v1 runs" {
		t.Fatalf("root lists %v", names)
	}
	// Real programs agree: cp -r, tar, find, sha256sum.
	cp := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", filepath.Join(mnt, "ds@v1"), cp).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
	if got, want := describe(t, cp), describe(t, src); got != want {
		t.Fatalf("cp -a of the version differs:\n%s\n%s", got, want)
	}
	out, err := exec.Command("sh", "-c", "cd "+mnt+"/ds@v1 && tar cf - . | tar tf - | sort").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "./train/images/a.png") {
		t.Fatalf("tar: %v %s", err, out)
	}
	out, err = exec.Command("find", filepath.Join(mnt, "ds@v1"), "-type", "f").CombinedOutput()
	if err != nil || strings.Count(string(out), "\n") != 5 {
		t.Fatalf("find: %v %s", err, out)
	}
	out, err = exec.Command("sha256sum", filepath.Join(mnt, "ds@v1/train/data.bin")).CombinedOutput()
	want := fmt.Sprintf("%x", sha256.Sum256(randomBytes(5<<20+123, 1)))
	if err != nil || !strings.HasPrefix(string(out), want) {
		t.Fatalf("sha256sum: %v %s", err, out)
	}
}

func TestVersionIsReadOnly(t *testing.T) {
	r := repo.TestRepo(t)
	add(t, r, "ds@v1", sampleTree(t))
	mnt := mount(t, r, r.Store())
	v := filepath.Join(mnt, "ds@v1")
	for what, err := range map[string]error{
		"write":   os.WriteFile(filepath.Join(v, "train/labels.csv"), []byte("x"), 0o644),
		"create":  os.WriteFile(filepath.Join(v, "new"), []byte("x"), 0o644),
		"mkdir":   os.Mkdir(filepath.Join(v, "d"), 0o755),
		"remove":  os.Remove(filepath.Join(v, "run.sh")),
		"rmdir":   os.Remove(filepath.Join(v, "empty")),
		"rename":  os.Rename(filepath.Join(v, "run.sh"), filepath.Join(v, "go.sh")),
		"chmod":   os.Chmod(filepath.Join(v, "run.sh"), 0o700),
		"symlink": os.Symlink("x", filepath.Join(v, "l")),
		"xattr":   unix.Setxattr(filepath.Join(v, "run.sh"), "user.x", []byte("1"), 0),
		"trunc":   os.Truncate(filepath.Join(v, "run.sh"), 0),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s in a version: %v, want EROFS", what, err)
		}
	}
	if err := syscall.Rmdir(v); err != syscall.EPERM {
		t.Errorf("rmdir of a version: %v, want EPERM", err)
	}
	if b, _ := os.ReadFile(filepath.Join(v, "train/labels.csv")); string(b) != "id,label\n1,cat\n2,dog\n" {
		t.Errorf("a refused write changed the file: %q", b)
	}
}

func TestIDXattr(t *testing.T) {
	r := repo.TestRepo(t)
	src := sampleTree(t)
	res := add(t, r, "ds@v1", src)
	mnt := mount(t, r, r.Store())
	buf := make([]byte, 128)
	n, err := unix.Getxattr(filepath.Join(mnt, "ds@v1"), "user.mlfs.id", buf)
	if err != nil || string(buf[:n]) != res.Tree.String() {
		t.Fatalf("version folder id %q, %v; want its tree %s", buf[:n], err, res.Tree)
	}
	n, err = unix.Getxattr(filepath.Join(mnt, "ds@v1/run.sh"), "user.mlfs.id", buf)
	if err != nil || n != 64 {
		t.Fatalf("file id %q, %v", buf[:n], err)
	}
	// Same content, same id: add the same file elsewhere and compare.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	add(t, r, "other@v1", other)
	m, _ := unix.Getxattr(filepath.Join(mnt, "other@v1/run.sh"), "user.mlfs.id", buf[64:])
	if string(buf[:64]) != string(buf[64:64+m]) {
		t.Fatalf("identical files have different ids")
	}
}

// Listing and stat read tree objects only; a small random read fetches
// only the chunks it touches.
func TestLazy(t *testing.T) {
	r := repo.TestRepo(t)
	src := t.TempDir()
	for i := 0; i < 200; i++ {
		os.WriteFile(filepath.Join(src, fmt.Sprintf("f%03d", i)), randomBytes(20<<10, uint64(i)), 0o644)
	}
	big := randomBytes(32<<20, 99)
	os.WriteFile(filepath.Join(src, "big"), big, 0o644)
	add(t, r, "ds@v1", src)
	objs := &counting{Getter: r.Store()}
	mnt := mount(t, r, objs)
	out, err := exec.Command("find", filepath.Join(mnt, "ds@v1"), "-type", "f", "-size", "+1k").CombinedOutput()
	if err != nil || strings.Count(string(out), "\n") != 201 {
		t.Fatalf("find: %v\n%s", err, out)
	}
	if n := objs.gets.Load(); n != 1 {
		t.Fatalf("find + stat of 201 files fetched %d objects, want 1 (the tree)", n)
	}
	f, err := os.Open(filepath.Join(mnt, "ds@v1/big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, 17<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, big[17<<20:17<<20+4096]) {
		t.Fatal("wrong bytes from a random read")
	}
	// The kernel may read around the 4 KiB (up to its read size), so allow
	// a few chunks, but nothing like the 500 of the file.
	if n := objs.chunks.Load(); n < 1 || n > 6 {
		t.Fatalf("a 4 KiB read fetched %d chunks", n)
	}
}

// damage flips a byte of the chunk id inside its pack file.
func damage(t *testing.T, st cas.Store, id cas.ID) {
	t.Helper()
	ps := st.(*pack.Store)
	if err := ps.Flush(bg); err != nil {
		t.Fatal(err)
	}
	p, off, length, ok := ps.Locate(id)
	if !ok {
		t.Fatalf("chunk %s not found", id.Short())
	}
	path := ps.Backend().(*local.Store).ObjectPath(p)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off+length/2] ^= 0x01
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptChunkGivesEIO(t *testing.T) {
	r := repo.TestRepo(t)
	src := t.TempDir()
	data := randomBytes(8<<20, 5)
	os.WriteFile(filepath.Join(src, "f"), data, 0o644)
	add(t, r, "ds@v1", src)
	v, _ := r.Resolve(bg, repo.Ref{Dataset: "ds", Version: "v1"})
	tb, _ := r.Store().Get(bg, v.Tree)
	tree, _ := object.DecodeTree(tb)
	fb, _ := r.Store().Get(bg, tree.Entries[0].ID)
	file, _ := object.DecodeFile(fb)
	last := len(file.Chunks) - 1
	damage(t, r.Store(), file.Chunks[last].ID)
	mnt := mount(t, r, r.Store())

	f, err := os.Open(filepath.Join(mnt, "ds@v1/f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The start of the file is far from the damage and reads fine.
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, data[:len(head)]) {
		t.Fatalf("intact start of the file: %v", err)
	}
	// Reading on into the damaged chunk fails with EIO, never wrong bytes.
	rest, err := io.ReadAll(f)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read over a corrupt chunk: %v, want EIO", err)
	}
	good := data[len(head):]
	if len(rest) > len(good) || !bytes.Equal(rest, good[:len(rest)]) {
		t.Fatal("wrong bytes returned before the EIO")
	}
	if int64(len(head)+len(rest)) > chunkStart(file, last) {
		t.Fatalf("read %d bytes, past the start of the damaged chunk", len(head)+len(rest))
	}
	if _, err := exec.Command("cat", filepath.Join(mnt, "ds@v1/f")).Output(); err == nil {
		t.Fatal("cat of a corrupt file succeeded")
	}
}

// chunkStart returns the offset where chunk i of file starts.
func chunkStart(file *object.File, i int) int64 {
	var off int64
	for _, c := range file.Chunks[:i] {
		off += int64(c.Size)
	}
	return off
}

func TestConcurrentReaders(t *testing.T) {
	r := repo.TestRepo(t)
	src := t.TempDir()
	var files [][]byte
	for i := 0; i < 4; i++ {
		b := randomBytes(6<<20+i*1000, uint64(10+i))
		files = append(files, b)
		os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", i)), b, 0o644)
	}
	add(t, r, "ds@v1", src)
	mnt := mount(t, r, r.Store())
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := g % 4
			f, err := os.Open(filepath.Join(mnt, fmt.Sprintf("ds@v1/f%d", i)))
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			if g%2 == 0 { // sequential
				b, err := io.ReadAll(f)
				if err != nil || !bytes.Equal(b, files[i]) {
					errs <- fmt.Errorf("reader %d: sequential read differs (%v)", g, err)
				}
				return
			}
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			buf := make([]byte, 8192)
			for k := 0; k < 200; k++ {
				off := rng.Int64N(int64(len(files[i]) - len(buf)))
				if _, err := f.ReadAt(buf, off); err != nil || !bytes.Equal(buf, files[i][off:off+int64(len(buf))]) {
					errs <- fmt.Errorf("reader %d: random read at %d differs (%v)", g, off, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A version's listing and content stay the same while other versions of
// the dataset are added.
func TestNewVersionsAppear(t *testing.T) {
	r := repo.TestRepo(t)
	src := sampleTree(t)
	add(t, r, "ds@v1", src)
	mnt := mount(t, r, r.Store())
	before := describe(t, filepath.Join(mnt, "ds@v1"))
	os.WriteFile(filepath.Join(src, "train/labels.csv"), []byte("id,label\n"), 0o644)
	add(t, r, "ds@v2", src)
	if _, err := os.Stat(filepath.Join(mnt, "ds@v2")); err != nil {
		t.Fatalf("a new version is not visible: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(mnt, "ds@v2/train/labels.csv"))
	if err != nil || string(b) != "id,label\n" {
		t.Fatalf("ds@v2: %q %v", b, err)
	}
	if after := describe(t, filepath.Join(mnt, "ds@v1")); after != before {
		t.Fatal("ds@v1 changed when v2 was added")
	}
}
