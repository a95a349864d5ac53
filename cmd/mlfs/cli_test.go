package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binary is the mlfs command built once for these tests, in a folder that
// every user may read (the permission test runs it as nobody).
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mlfs-cli-test")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755)
	binary = filepath.Join(dir, "mlfs")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build mlfs: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// instance is one separate mlfs installation: its own XDG folders.
type instance struct {
	t    *testing.T
	home string
	env  []string
	cred *syscall.Credential
}

func newInstance(t *testing.T, home string) *instance {
	if home == "" {
		home = t.TempDir()
	}
	return &instance{t: t, home: home, env: append(os.Environ(),
		"XDG_CONFIG_HOME="+home+"/config", "XDG_DATA_HOME="+home+"/data", "XDG_CACHE_HOME="+home+"/cache",
		"MLFS_STORE=", "MLFS_REMOTE=")}
}

// run runs mlfs and returns stdout, stderr and the exit code.
func (in *instance) run(args ...string) (string, string, int) {
	in.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = in.env
	if in.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: in.cred}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		in.t.Fatalf("mlfs %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func (in *instance) ok(args ...string) string {
	in.t.Helper()
	out, errOut, code := in.run(args...)
	if code != 0 {
		in.t.Fatalf("mlfs %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (in *instance) fails(want string, args ...string) string {
	in.t.Helper()
	out, errOut, code := in.run(args...)
	if code == 0 {
		in.t.Fatalf("mlfs %s succeeded, want a failure mentioning %q\n%s", strings.Join(args, " "), want, out)
	}
	if !strings.Contains(errOut, want) {
		in.t.Fatalf("mlfs %s: stderr %q does not mention %q", strings.Join(args, " "), errOut, want)
	}
	return errOut
}

func writeRandom(t *testing.T, path string, n int) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCLIWorkflow(t *testing.T) {
	in := newInstance(t, "")
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "iris.csv"), []byte("a,b\n1,2\n"), 0o644)
	out := in.ok("init")
	if !strings.Contains(out, in.home+"/data/mlfs/store") {
		t.Fatalf("init: %s", out)
	}
	in.ok("add", "iris@v1", src, "-m", "first cut")
	os.WriteFile(filepath.Join(src, "iris.csv"), []byte("a,b\n1,2\n3,4\n"), 0o644)
	os.WriteFile(filepath.Join(src, "README"), []byte("notes"), 0o644)
	in.ok("add", "iris@v2", src)
	out = in.ok("versions", "iris")
	if !strings.Contains(out, "iris@v1") || !strings.Contains(out, "first cut") || strings.Index(out, "iris@v1") > strings.Index(out, "iris@v2") {
		t.Fatalf("versions:\n%s", out)
	}
	out = in.ok("diff", "iris@v1", "iris@v2")
	if !strings.Contains(out, "A  README") || !strings.Contains(out, "M  iris.csv") || !strings.Contains(out, "1 added, 0 removed, 1 modified") {
		t.Fatalf("diff:\n%s", out)
	}
	dst := filepath.Join(t.TempDir(), "x")
	in.ok("export", "iris@latest", dst)
	if b, _ := os.ReadFile(filepath.Join(dst, "iris.csv")); string(b) != "a,b\n1,2\n3,4\n" {
		t.Fatalf("exported %q", b)
	}
	in.ok("fsck")
	in.fails("already exists", "add", "iris@v1", src)
	in.fails("no version \"v7\"", "export", "iris@v7", t.TempDir()+"/y")
	in.fails("reserved", "add", "iris@latest", src)
	in.fails("no such file", "add", "iris@v3", filepath.Join(src, "nope"))
	in.fails("not empty", "export", "iris@v1", src)
	in.fails("has no versions", "versions", "mnist")
}

// TestKilledAddLeavesNoVersion kills an add mid-way with SIGKILL: no
// version appears, fsck is clean, gc removes the leftovers, and the same
// add then succeeds.
func TestKilledAddLeavesNoVersion(t *testing.T) {
	in := newInstance(t, "")
	src := t.TempDir()
	for i := 0; i < 40; i++ {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("part-%02d.bin", i)), 8<<20)
	}
	in.ok("init")
	cmd := exec.Command(binary, "add", "big@v1", src)
	cmd.Env = in.env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until some packs are stored under their final names: the add is
	// well under way, and what it wrote is what gc must clean up.
	objects := filepath.Join(in.home, "data/mlfs/store/objects")
	deadline := time.Now().Add(30 * time.Second)
	for {
		packs, _ := filepath.Glob(filepath.Join(objects, "*", "*"))
		if len(packs) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("add wrote nothing within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()

	in.fails("has no versions", "versions", "big")
	in.ok("fsck")
	if out := in.ok("gc"); !strings.Contains(out, "packs deleted") || strings.Contains(out, " 0 packs deleted") {
		t.Fatalf("gc after a killed add: %s", out)
	}
	in.ok("add", "big@v1", src)
	if out := in.ok("fsck"); !strings.Contains(out, "0 problems") {
		t.Fatalf("fsck: %s", out)
	}
}

// TestFullDisk fills a small tmpfs that holds the store.
func TestFullDisk(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("NOT RUN: mounting a small tmpfs needs root; CI runs as root")
	}
	in := newInstance(t, "")
	store := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", store).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", store).Run() })
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "small"), 1<<20)
	in.ok("--store", store, "add", "d@v1", src)
	for i := 0; i < 4; i++ {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("big%d", i)), 8<<20)
	}
	msg := in.fails("no space left on device", "--store", store, "add", "d@v2", src)
	if !strings.Contains(msg, "disk is full") {
		t.Errorf("no advice in %q", msg)
	}
	out := in.ok("--store", store, "versions", "d")
	if strings.Contains(out, "d@v2") {
		t.Fatalf("a version was named after a failed add:\n%s", out)
	}
	in.ok("--store", store, "gc")
	if out := in.ok("--store", store, "fsck"); !strings.Contains(out, "0 problems") {
		t.Fatalf("fsck: %s", out)
	}
	in.ok("--store", store, "export", "d@v1", t.TempDir()+"/o")
}

// TestUnreadableInput: a file the user may not read stops the add with a
// message naming it, and no version.
func TestUnreadableInput(t *testing.T) {
	base, err := os.MkdirTemp("", "mlfs-perm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	in := newInstance(t, filepath.Join(base, "home"))
	src := filepath.Join(base, "src")
	os.MkdirAll(src, 0o755)
	os.MkdirAll(in.home, 0o755)
	os.WriteFile(filepath.Join(src, "ok"), []byte("ok"), 0o644)
	os.WriteFile(filepath.Join(src, "secret"), []byte("no"), 0o000)
	if os.Getuid() == 0 {
		// Root reads everything; run as nobody to see a real EACCES.
		in.cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		os.Chown(in.home, 65534, 65534)
	}
	in.fails("secret: permission denied", "add", "p@v1", src)
	in.fails("has no versions", "versions", "p")
}
