package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlfs/mlfs/daemon"
)

// needFUSE says loudly why a mount test cannot run.
func needFUSE(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("NOT RUN: no /dev/fuse here; CI runs the mount tests as root with /dev/fuse")
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			t.Skip("NOT RUN: not root and no fusermount3 (apt-get install fuse3)")
		}
	}
}

// mounted starts `mlfs mount` for in and returns the mount point; the
// mount is taken down when the test ends, whatever happened.
func (in *instance) mount(dir string) string {
	in.t.Helper()
	if dir == "" {
		dir = filepath.Join(in.home, "ml")
	}
	in.ok("mount", dir)
	in.t.Cleanup(func() {
		if ok, _ := daemon.IsMounted(dir); ok {
			in.run("umount", dir)
		}
		if ok, _ := daemon.IsMounted(dir); ok {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// daemonPID returns the pid of the daemon serving in.
func (in *instance) daemonPID() int {
	in.t.Helper()
	c, err := daemon.Dial(filepath.Join(in.home, "data/mlfs/mlfs.sock"))
	if err != nil {
		in.t.Fatalf("no daemon: %v", err)
	}
	defer c.Close()
	return c.PID()
}

func TestMountSnapshotUmount(t *testing.T) {
	needFUSE(t)
	in := newInstance(t, "")
	mnt := in.mount("")
	ds := filepath.Join(mnt, "iris")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(ds, 0o755))
	must(os.WriteFile(filepath.Join(ds, "iris.csv"), []byte("a,b\n1,2\n"), 0o644))
	must(os.Mkdir(filepath.Join(mnt, "iris@v1"), 0o755))
	must(os.WriteFile(filepath.Join(ds, "iris.csv"), []byte("a,b\n1,2\n3,4\n"), 0o644))
	must(os.Mkdir(filepath.Join(mnt, "iris@v2"), 0o755))
	// The store commands go through the daemon and see the versions.
	out := in.ok("versions", "iris")
	if !strings.Contains(out, "iris@v1") || !strings.Contains(out, "iris@v2") {
		t.Fatalf("versions:\n%s", out)
	}
	if out := in.ok("diff", "iris@v1", "iris@v2"); !strings.Contains(out, "M  iris.csv") {
		t.Fatalf("diff:\n%s", out)
	}
	in.fails("already mounted", "mount", mnt)
	in.ok("umount", mnt)
	if ok, _ := daemon.IsMounted(mnt); ok {
		t.Fatal("still mounted after umount")
	}
	// Without the daemon the same answers come from the store itself, and
	// a new daemon serves the same versions and working tree.
	if out := in.ok("diff", "iris@v1", "iris@v2"); !strings.Contains(out, "M  iris.csv") {
		t.Fatalf("diff without the daemon:\n%s", out)
	}
	in.mount(mnt)
	b, err := os.ReadFile(filepath.Join(mnt, "iris@v1/iris.csv"))
	if err != nil || string(b) != "a,b\n1,2\n" {
		t.Fatalf("iris@v1 after a remount: %q %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(ds, "iris.csv")); string(b) != "a,b\n1,2\n3,4\n" {
		t.Fatalf("working tree after a remount: %q", b)
	}
}

// What close or fsync returned for survives a kill -9 of the daemon; the
// stale mount it leaves is replaced by the next mount.
func TestKilledDaemonLosesNothing(t *testing.T) {
	needFUSE(t)
	in := newInstance(t, "")
	mnt := in.mount("")
	ds := filepath.Join(mnt, "d")
	if err := os.Mkdir(ds, 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("f%02d", i)
		b := bytes.Repeat([]byte(name), 5000+i*1000)
		want[name] = b
		if err := os.WriteFile(filepath.Join(ds, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(ds, "sub"), 0o700)
	os.Rename(filepath.Join(ds, "f00"), filepath.Join(ds, "sub/moved"))
	want["sub/moved"] = want["f00"]
	delete(want, "f00")
	os.Remove(filepath.Join(ds, "f01"))
	delete(want, "f01")
	f, _ := os.OpenFile(filepath.Join(ds, "synced"), os.O_RDWR|os.O_CREATE, 0o644)
	f.WriteString("fsynced")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	want["synced"] = []byte("fsynced")
	// kill -9 with the file still open.
	pid := in.daemonPID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitGone(t, pid)
	if _, err := os.Stat(mnt); !errors.Is(err, syscall.ENOTCONN) {
		t.Logf("after kill -9 the mount point answers %v", err)
	}
	in.mount(mnt)
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(ds, name))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s after kill -9 and restart: %d bytes, %v; want %d bytes", name, len(got), err, len(b))
		}
	}
	if _, err := os.Stat(filepath.Join(ds, "f01")); !os.IsNotExist(err) {
		t.Error("a removed file is back after the restart")
	}
	if err := os.Mkdir(filepath.Join(mnt, "d@v1"), 0o755); err != nil {
		t.Fatalf("snapshot after the restart: %v", err)
	}
	if out := in.ok("fsck"); !strings.Contains(out, " 0 problems") {
		t.Fatalf("fsck: %s", out)
	}
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		// A killed child of ours stays a zombie until reaped; its state
		// tells it is gone.
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && strings.Contains(string(b), ") Z ") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d still alive", pid)
}

// A normal user mounts through fusermount3 (Debian's fuse3).
func TestMountAsNormalUser(t *testing.T) {
	needFUSE(t)
	if os.Geteuid() != 0 {
		t.Skip("NOT RUN: the test switches to user nobody, which needs root; CI runs as root")
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Fatal("fusermount3 is missing: apt-get install fuse3 (.ci/run installs it)")
	}
	// Debian makes /dev/fuse 0666; some containers make it 0600.
	if fi, err := os.Stat("/dev/fuse"); err == nil && fi.Mode().Perm()&0o006 != 0o006 {
		t.Logf("/dev/fuse is %v here; opening it to all users for this test, as Debian does", fi.Mode().Perm())
		os.Chmod("/dev/fuse", 0o666)
		t.Cleanup(func() { os.Chmod("/dev/fuse", fi.Mode().Perm()) })
	}
	base, err := os.MkdirTemp("", "mlfs-user")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	home := filepath.Join(base, "home")
	os.MkdirAll(home, 0o755)
	os.Chown(home, 65534, 65534)
	in := newInstance(t, home)
	in.cred = &syscall.Credential{Uid: 65534, Gid: 65534}
	mnt := filepath.Join(home, "ml")
	out := in.ok("mount", mnt)
	t.Cleanup(func() {
		in.run("umount", mnt)
		if ok, _ := daemon.IsMounted(mnt); ok {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	if !strings.Contains(out, "mounted") {
		t.Fatalf("mount as nobody: %s", out)
	}
	sh := func(script string) string {
		t.Helper()
		c := exec.Command("sh", "-c", script)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: in.cred}
		c.Env = in.env
		b, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("as nobody: %s: %v\n%s", script, err, b)
		}
		return string(b)
	}
	got := sh("mkdir " + mnt + "/d && echo hi > " + mnt + "/d/f && mkdir " + mnt + "/d@v1 && cat " + mnt + "/d@v1/f && stat -c %U " + mnt + "/d@v1/f")
	if got != "hi\nnobody\n" {
		t.Fatalf("as nobody: %q", got)
	}
	in.ok("umount", mnt)
	if ok, _ := daemon.IsMounted(mnt); ok {
		t.Fatal("still mounted after umount as nobody")
	}
}

// How checkpoint writers save a big file: write a temp file, fchmod, and
// os.replace it over the previous checkpoint; then a snapshot.
func TestReplaceBigCheckpoint(t *testing.T) {
	needFUSE(t)
	in := newInstance(t, "")
	mnt := in.mount("")
	ds := filepath.Join(mnt, "ckpt")
	if err := os.Mkdir(ds, 0o755); err != nil {
		t.Fatal(err)
	}
	py := `import os, sys, hashlib
d = sys.argv[1]
block = os.urandom(1 << 20)
def save(name, mib, salt):
    tmp = os.path.join(d, "." + name + ".tmp")
    h = hashlib.sha256()
    with open(tmp, "wb") as f:
        for i in range(mib):
            b = bytes([salt]) + block[1:]
            f.write(b); h.update(b)
        os.fchmod(f.fileno(), 0o644)
        f.flush(); os.fsync(f.fileno())
    os.replace(tmp, os.path.join(d, name))
    return h.hexdigest()
save("model.pt", 64, 1)
print(save("model.pt", int(sys.argv[2]), 2))
`
	out, err := exec.Command("/usr/bin/python3", "-c", py, ds, "2200").CombinedOutput()
	if err != nil {
		t.Fatalf("checkpoint save: %v\n%s", err, out)
	}
	want := strings.TrimSpace(string(out))
	if err := os.Mkdir(filepath.Join(mnt, "ckpt@v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"ckpt/model.pt", "ckpt@v1/model.pt"} {
		got, err := exec.Command("sha256sum", filepath.Join(mnt, p)).Output()
		if err != nil || !strings.HasPrefix(string(got), want) {
			t.Fatalf("%s: %s %v, want %s", p, got, err, want)
		}
	}
	ents, _ := os.ReadDir(ds)
	if len(ents) != 1 {
		t.Fatalf("the folder holds %d entries after os.replace, want 1", len(ents))
	}
}

func TestCheckout(t *testing.T) {
	needFUSE(t)
	in := newInstance(t, "")
	mnt := in.mount("")
	ds := filepath.Join(mnt, "iris")
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(ds, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) string {
		t.Helper()
		b, _ := os.ReadFile(filepath.Join(ds, name))
		return string(b)
	}
	os.Mkdir(ds, 0o755)
	write("a.csv", "v1\n")
	os.Mkdir(filepath.Join(mnt, "iris@v1"), 0o755)
	write("a.csv", "v2\n")
	write("b.csv", "only in v2\n")
	os.Mkdir(filepath.Join(mnt, "iris@v2"), 0o755)
	write("a.csv", "unsaved\n")

	in.fails("changes that are in no version", "checkout", "iris@v1")
	if read("a.csv") != "unsaved\n" {
		t.Fatal("a refused checkout changed the working tree")
	}
	in.ok("checkout", "--force", "iris@v1")
	if got := read("a.csv"); got != "v1\n" {
		t.Fatalf("after checkout iris@v1 through the daemon: a.csv = %q", got)
	}
	if _, err := os.Stat(filepath.Join(ds, "b.csv")); !os.IsNotExist(err) {
		t.Fatalf("b.csv is still there after checkout of iris@v1: %v", err)
	}
	// The next snapshot's parent is the version checked out.
	write("a.csv", "v3\n")
	os.Mkdir(filepath.Join(mnt, "iris@v3"), 0o755)
	if out := in.ok("diff", "iris@v1", "iris@v3"); !strings.Contains(out, "M  a.csv") || strings.Contains(out, "b.csv") {
		t.Fatalf("diff v1 v3:\n%s", out)
	}
	// Without a daemon, the same command works on the index itself.
	in.ok("umount", mnt)
	in.ok("checkout", "iris@v2")
	in.mount(mnt)
	if got := read("b.csv"); got != "only in v2\n" {
		t.Fatalf("after checkout iris@v2 without a daemon: b.csv = %q", got)
	}
	in.fails("no version", "checkout", "iris@v9")
}

// gc never removes what a working tree still reads from the store, also
// when the version it came from was removed: with the daemon and without.
func TestGCKeepsWorkingTree(t *testing.T) {
	needFUSE(t)
	in := newInstance(t, "")
	mnt := in.mount("")
	for _, ds := range []string{"g", "h"} {
		os.Mkdir(filepath.Join(mnt, ds), 0o755)
		os.WriteFile(filepath.Join(mnt, ds, "file"), []byte("precious "+ds), 0o644)
		if err := os.Mkdir(filepath.Join(mnt, ds+"@a"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	in.ok("version", "rm", "g@a") // through the daemon
	in.ok("gc")
	in.ok("umount", mnt)
	in.ok("version", "rm", "h@a") // without it
	in.ok("gc")
	os.RemoveAll(filepath.Join(in.home, "cache/mlfs")) // read from the store
	in.mount(mnt)
	for _, ds := range []string{"g", "h"} {
		b, err := os.ReadFile(filepath.Join(mnt, ds, "file"))
		if err != nil || string(b) != "precious "+ds {
			t.Fatalf("%s/file after version rm and gc: %q %v", ds, b, err)
		}
		if err := os.Mkdir(filepath.Join(mnt, ds+"@b"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out := in.ok("fsck"); !strings.Contains(out, " 0 problems") {
		t.Fatalf("fsck: %s", out)
	}
}

// A damaged chunk gives EIO, and `mlfs status` says why.
func TestStatusShowsWhyEIO(t *testing.T) {
	needFUSE(t)
	in := newInstance(t, "")
	mnt := in.mount("")
	if out := in.ok("status"); !strings.Contains(out, "mount   "+mnt) || !strings.Contains(out, "errors  none") {
		t.Fatalf("status:\n%s", out)
	}
	os.Mkdir(filepath.Join(mnt, "d"), 0o755)
	writeRandom(t, filepath.Join(mnt, "d/big"), 8<<20)
	if err := os.Mkdir(filepath.Join(mnt, "d@v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	in.ok("umount", mnt)
	// Flip a byte in the middle of the pack that holds the file.
	packs, _ := filepath.Glob(filepath.Join(in.home, "data/mlfs/store/objects/*/*"))
	damaged := false
	for _, p := range packs {
		b, _ := os.ReadFile(p)
		if len(b) > 4<<20 {
			b[len(b)/2] ^= 1
			os.Chmod(p, 0o644)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			damaged = true
		}
	}
	if !damaged {
		t.Fatal("no pack holds the file")
	}
	os.RemoveAll(filepath.Join(in.home, "cache/mlfs"))
	in.mount(mnt)
	if _, err := os.ReadFile(filepath.Join(mnt, "d@v1/big")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of a damaged version file: %v, want EIO", err)
	}
	out := in.ok("status")
	if !strings.Contains(out, "returning EIO") || !strings.Contains(out, "corrupt object") {
		t.Fatalf("status does not say why:\n%s", out)
	}
	in.ok("umount", mnt)
	if out := in.ok("status"); !strings.Contains(out, "not running") {
		t.Fatalf("status without a daemon:\n%s", out)
	}
}
