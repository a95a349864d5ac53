package fs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mlfs/mlfs/repo"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func idOf(t *testing.T, path string) string {
	t.Helper()
	buf := make([]byte, 64)
	n, err := unix.Getxattr(path, "user.mlfs.id", buf)
	if err != nil {
		t.Fatalf("getxattr %s: %v", path, err)
	}
	return string(buf[:n])
}

// The working tree starts as the latest version, takes every kind of
// change, and a mkdir of a new version snapshots it exactly.
func TestWorkingTreeSnapshot(t *testing.T) {
	r := repo.TestRepo(t)
	src := sampleTree(t)
	add(t, r, "ds@v1", src)
	mnt := mount(t, r, r.Store())
	ds := filepath.Join(mnt, "ds")
	if got, want := describe(t, ds), describe(t, src); got != want {
		t.Fatalf("working tree does not start as ds@v1:\n%s\n%s", got, want)
	}
	v1 := describe(t, filepath.Join(mnt, "ds@v1"))

	// Every kind of change, through the mount.
	f, err := os.OpenFile(filepath.Join(ds, "train/labels.csv"), os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.WriteString("3,bird\n")
	must(t, err)
	must(t, f.Close())
	must(t, os.WriteFile(filepath.Join(ds, "new.txt"), []byte("fresh"), 0o640))
	must(t, os.Remove(filepath.Join(ds, "empty.txt")))
	must(t, os.Rename(filepath.Join(ds, "train/images"), filepath.Join(ds, "images")))
	must(t, os.Mkdir(filepath.Join(ds, "made"), 0o750))
	must(t, os.Symlink("new.txt", filepath.Join(ds, "made/link")))
	must(t, os.Chmod(filepath.Join(ds, "run.sh"), 0o700))
	must(t, os.Remove(filepath.Join(ds, "empty")))

	b, err := os.ReadFile(filepath.Join(ds, "train/labels.csv"))
	if err != nil || string(b) != "id,label\n1,cat\n2,dog\n3,bird\n" {
		t.Fatalf("appended file reads %q, %v", b, err)
	}
	if describe(t, filepath.Join(mnt, "ds@v1")) != v1 {
		t.Fatal("changing the working tree changed ds@v1")
	}
	before := describe(t, ds)
	must(t, os.Mkdir(filepath.Join(mnt, "ds@v2"), 0o755))
	if got := describe(t, filepath.Join(mnt, "ds@v2")); got != before {
		t.Fatalf("ds@v2 is not the working tree it snapshotted:\n%s\nwant\n%s", got, before)
	}
	if describe(t, ds) != before {
		t.Fatal("the snapshot changed the working tree")
	}
	if target, _ := os.Readlink(filepath.Join(mnt, "ds@latest")); target != "ds@v2" {
		t.Fatalf("ds@latest -> %q after the snapshot", target)
	}
	// Unchanged content keeps its id; the working tree has ids again.
	if idOf(t, filepath.Join(mnt, "ds@v1/train/data.bin")) != idOf(t, filepath.Join(mnt, "ds@v2/train/data.bin")) {
		t.Fatal("an unchanged file changed its id")
	}
	if idOf(t, filepath.Join(mnt, "ds@v1/train/images")) != idOf(t, filepath.Join(mnt, "ds@v2/images")) {
		t.Fatal("a moved, unchanged folder changed its id")
	}
	if idOf(t, filepath.Join(ds, "train/labels.csv")) != idOf(t, filepath.Join(mnt, "ds@v2/train/labels.csv")) {
		t.Fatal("the working tree's file has not the id of its snapshot")
	}

	for name, want := range map[string]error{
		"ds@v2":      syscall.EEXIST,
		"ds@latest":  syscall.EEXIST,
		"new@latest": syscall.EINVAL,
		"ds@a b":     syscall.EINVAL,
		"nope@v1":    syscall.ENOENT,
		"runs":       syscall.EEXIST,
		"ds":         syscall.EEXIST,
		"bad name":   syscall.EINVAL,
		".hidden":    syscall.EINVAL,
	} {
		if err := os.Mkdir(filepath.Join(mnt, name), 0o755); !errors.Is(err, want) {
			t.Errorf("mkdir %q: %v, want %v", name, err, want)
		}
	}
	if err := syscall.Rmdir(ds); err != syscall.EPERM {
		t.Errorf("rmdir of a dataset: %v, want EPERM", err)
	}
	// A version's parent is the one before.
	v2, err := r.Resolve(bg, repo.Ref{Dataset: "ds", Version: "v2"})
	must(t, err)
	v1info, _ := r.Resolve(bg, repo.Ref{Dataset: "ds", Version: "v1"})
	if v2.Parent != v1info.ID {
		t.Fatal("ds@v2's parent is not ds@v1")
	}
	if v2.Files != 5 {
		t.Fatalf("ds@v2 records %d files, want 5", v2.Files)
	}
}

// A new dataset made by mkdir, filled by cp -r, snapshotted.
func TestNewDatasetFromCopy(t *testing.T) {
	r := repo.TestRepo(t)
	mnt := mount(t, r, r.Store())
	src := sampleTree(t)
	must(t, os.Mkdir(filepath.Join(mnt, "fresh"), 0o755))
	if out, err := exec.Command("sh", "-c", "cp -a "+src+"/. "+mnt+"/fresh/").CombinedOutput(); err != nil {
		t.Fatalf("cp -a into the working tree: %v %s", err, out)
	}
	if got, want := describe(t, filepath.Join(mnt, "fresh")), describe(t, src); got != want {
		t.Fatalf("cp -a into the tree:\n%s\nwant\n%s", got, want)
	}
	must(t, os.Mkdir(filepath.Join(mnt, "fresh@v1"), 0o755))
	if got, want := describe(t, filepath.Join(mnt, "fresh@v1")), describe(t, src); got != want {
		t.Fatalf("fresh@v1:\n%s\nwant\n%s", got, want)
	}
	ents, _ := os.ReadDir(mnt)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "fresh fresh@latest fresh@v1 runs" {
		t.Fatalf("root lists %v", names)
	}
}

// How checkpoint and config writers save, and other things real tools do.
func TestToolsInWorkingTree(t *testing.T) {
	r := repo.TestRepo(t)
	src := sampleTree(t)
	add(t, r, "ds@v1", src)
	mnt := mount(t, r, r.Store())
	ds := filepath.Join(mnt, "ds")

	// Temp file + fchmod + rename over an existing file.
	tmp := filepath.Join(ds, "train/.labels.csv.tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	must(t, err)
	f.WriteString("replaced\n")
	must(t, f.Chmod(0o644))
	must(t, f.Sync())
	must(t, f.Close())
	must(t, os.Rename(tmp, filepath.Join(ds, "train/labels.csv")))
	if b, _ := os.ReadFile(filepath.Join(ds, "train/labels.csv")); string(b) != "replaced\n" {
		t.Fatalf("after replace: %q", b)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatal("the temp file is still there")
	}
	// O_CREAT|O_EXCL is atomic: the second one fails.
	_, err = os.OpenFile(filepath.Join(ds, "run.sh"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if !errors.Is(err, os.ErrExist) {
		t.Fatalf("O_EXCL over an existing file: %v", err)
	}
	// O_TRUNC rewrite of a file from the version.
	must(t, os.WriteFile(filepath.Join(ds, "train/data.bin"), []byte("small now"), 0o644))
	if b, _ := os.ReadFile(filepath.Join(ds, "train/data.bin")); string(b) != "small now" {
		t.Fatalf("after O_TRUNC: %q", b)
	}
	// A sparse write and a truncate.
	f, err = os.OpenFile(filepath.Join(ds, "sparse"), os.O_RDWR|os.O_CREATE, 0o644)
	must(t, err)
	_, err = f.WriteAt([]byte("end"), 10<<20)
	must(t, err)
	must(t, f.Truncate(5<<20+3))
	must(t, f.Close())
	b, err := os.ReadFile(filepath.Join(ds, "sparse"))
	if err != nil || len(b) != 5<<20+3 || !bytes.Equal(b, make([]byte, len(b))) {
		t.Fatalf("sparse file: %d bytes, %v", len(b), err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(ds, "sparse"), &st); err != nil || st.Blocks*512 >= 5<<20 {
		t.Fatalf("a sparse file of 5 MiB reports %d blocks, %v", st.Blocks, err)
	}
	// In-place change of a file from the version, in its middle.
	f, err = os.OpenFile(filepath.Join(ds, "train/images/a.png"), os.O_RDWR, 0)
	must(t, err)
	_, err = f.WriteAt([]byte("PATCH"), 1000)
	must(t, err)
	must(t, f.Close())
	want := randomBytes(70<<10, 2)
	copy(want[1000:], "PATCH")
	if b, _ := os.ReadFile(filepath.Join(ds, "train/images/a.png")); !bytes.Equal(b, want) {
		t.Fatal("in-place write: wrong bytes")
	}
	// Advisory locks between processes: flock(1) holds a lock while a
	// second flock -n must fail, and fcntl locks through Python.
	lock := filepath.Join(ds, "lockfile")
	must(t, os.WriteFile(lock, nil, 0o644))
	holder := exec.Command("flock", lock, "sleep", "3")
	must(t, holder.Start())
	defer holder.Wait()
	waitFor(t, func() bool { return exec.Command("flock", "-n", lock, "true").Run() != nil })
	py := `import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
pid = os.fork()
if pid == 0:
    try:
        fcntl.lockf(os.open(sys.argv[1], os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
        os._exit(1)
    except OSError:
        os._exit(0)
_, st = os.waitpid(pid, 0)
sys.exit(os.WEXITSTATUS(st))
`
	if out, err := exec.Command(python(t), "-c", py, lock).CombinedOutput(); err != nil {
		t.Fatalf("fcntl byte-range lock not honoured across processes: %v %s", err, out)
	}
	// shutil.copy2 keeps times and modes; rsync -a too, and --inplace.
	cp2 := `import shutil, sys; shutil.copy2(sys.argv[1], sys.argv[2])`
	if out, err := exec.Command(python(t), "-c", cp2, filepath.Join(src, "run.sh"), filepath.Join(ds, "copy2.sh")).CombinedOutput(); err != nil {
		t.Fatalf("shutil.copy2: %v %s", err, out)
	}
	a, _ := os.Stat(filepath.Join(src, "run.sh"))
	c, _ := os.Stat(filepath.Join(ds, "copy2.sh"))
	if c == nil || a.ModTime() != c.ModTime() || a.Mode() != c.Mode() {
		t.Fatalf("copy2 kept neither time nor mode: %v %v", a, c)
	}
	rsync(t, "-a", src+"/", filepath.Join(ds, "mirror")+"/")
	if got, want := describe(t, filepath.Join(ds, "mirror")), describe(t, src); got != want {
		t.Fatalf("rsync -a:\n%s\nwant\n%s", got, want)
	}
	must(t, os.WriteFile(filepath.Join(src, "train/labels.csv"), []byte("changed in place\n"), 0o644))
	rsync(t, "-a", "--inplace", src+"/", filepath.Join(ds, "mirror")+"/")
	if got, want := describe(t, filepath.Join(ds, "mirror")), describe(t, src); got != want {
		t.Fatalf("rsync --inplace:\n%s\nwant\n%s", got, want)
	}
	// All of it snapshots.
	before := describe(t, ds)
	must(t, os.Mkdir(filepath.Join(mnt, "ds@v2"), 0o755))
	if got := describe(t, filepath.Join(mnt, "ds@v2")); got != before {
		t.Fatalf("ds@v2:\n%s\nwant\n%s", got, before)
	}
}

func python(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("python3 is needed (apt-get install python3)")
	return ""
}

func rsync(t *testing.T, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Fatal("rsync is needed (apt-get install rsync; .ci/run installs it)")
	}
	if out, err := exec.Command("rsync", args...).CombinedOutput(); err != nil {
		t.Fatalf("rsync %v: %v %s", args, err, out)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 2s")
}

// Python (Debian's pandas) reads a CSV from ds@v1 while another process
// rewrites the working tree's copy: the version never changes under it.
func TestPandasReadsVersionWhileTreeIsWritten(t *testing.T) {
	r := repo.TestRepo(t)
	src := t.TempDir()
	var csv strings.Builder
	csv.WriteString("sepal_length,sepal_width,species\n")
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&csv, "%d.%d,%d.%d,%s\n", 4+i%4, i%10, 2+i%3, i%7, []string{"setosa", "versicolor", "virginica"}[i%3])
	}
	must(t, os.WriteFile(filepath.Join(src, "iris.csv"), []byte(csv.String()), 0o644))
	add(t, r, "ds@v1", src)
	mnt := mount(t, r, r.Store())
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import pandas").Run(); err != nil {
		t.Fatal("Debian's python3-pandas is needed (apt-get install python3-pandas; .ci/run installs it)")
	}
	writer := exec.Command("sh", "-c", `i=0; while [ $i -lt 200 ]; do echo "9.9,9.9,new$i" >> "$1"; i=$((i+1)); done`, "sh", filepath.Join(mnt, "ds/iris.csv"))
	must(t, writer.Start())
	script := `import pandas as pd, sys
for _ in range(5):
    df = pd.read_csv(sys.argv[1])
    assert len(df) == 20000, len(df)
    assert set(df.species) == {"setosa", "versicolor", "virginica"}
print(len(df), round(df.sepal_length.mean(), 4))`
	out, err := exec.Command(py, "-c", script, filepath.Join(mnt, "ds@v1/iris.csv")).CombinedOutput()
	if werr := writer.Wait(); werr != nil {
		t.Fatalf("writer: %v", werr)
	}
	if err != nil {
		t.Fatalf("pandas on ds@v1: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "20000 ") {
		t.Fatalf("pandas: %s", out)
	}
	b, _ := os.ReadFile(filepath.Join(mnt, "ds/iris.csv"))
	if got := strings.Count(string(b), "\n"); got != 20001+200 {
		t.Fatalf("the working tree's copy has %d lines, want %d", got, 20201)
	}
}
