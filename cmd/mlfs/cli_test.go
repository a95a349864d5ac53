package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlfs/mlfs/config"
	"github.com/mlfs/mlfs/daemon"
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
	dir  string // working folder of mlfs; "" for the test's
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
	cmd.Dir = in.dir
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

// serveInstance starts a daemon in this process for in's XDG folders, as
// `mlfs daemon` will, and returns its log. It stops at the end of the test.
func serveInstance(t *testing.T, in *instance) *syncBuffer {
	t.Helper()
	env := map[string]string{}
	for _, kv := range in.env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	r, err := daemon.OpenRepo(context.Background(), cfg, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := daemon.Listen(cfg.Paths.Socket)
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Serve(ctx, ln, r, slog.New(slog.NewTextHandler(logs, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("close the daemon's repo: %v", err)
		}
	})
	return logs
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// step is one mlfs run, its output made comparable across instances.
type step struct {
	args           string
	stdout, stderr string
	code           int
}

var (
	shortIDs  = regexp.MustCompile(`\b[0-9a-f]{12}\b`)
	timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`)
)

// workflow runs the README's commands and their error cases in in, and
// returns what each printed, with in's folder, ids and times replaced.
func workflow(t *testing.T, in *instance) []step {
	src := filepath.Join(in.home, "src")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "iris.csv"), []byte("a,b\n1,2\n"), 0o644)
	os.WriteFile(filepath.Join(src, "sub", "notes"), []byte("n"), 0o644)
	in.dir = in.home // so that relative paths work; the client makes them absolute
	var steps []step
	norm := func(s string) string {
		s = strings.ReplaceAll(s, in.home, "$HOME")
		return timestamp.ReplaceAllString(shortIDs.ReplaceAllString(s, "<id>"), "<time>")
	}
	run := func(args ...string) {
		t.Helper()
		out, errOut, code := in.run(args...)
		steps = append(steps, step{norm(strings.Join(args, " ")), norm(out), norm(errOut), code})
	}
	run("init")
	run("add", "iris@v1", "src", "-m", "first cut")
	os.WriteFile(filepath.Join(src, "iris.csv"), []byte("a,b\n1,2\n3,4\n"), 0o644)
	os.WriteFile(filepath.Join(src, "README"), []byte("notes"), 0o644)
	os.Remove(filepath.Join(src, "sub", "notes"))
	if err := syscall.Mkfifo(filepath.Join(src, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Old enough for the index to remember them, so the next add of the
	// same tree reads none of them again.
	hourAgo := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(src, "iris.csv"), hourAgo, hourAgo)
	os.Chtimes(filepath.Join(src, "README"), hourAgo, hourAgo)
	run("add", "iris@v2", src) // warns about the fifo
	run("add", "iris@v3", "src")
	run("versions", "iris")
	run("diff", "iris@v1", "iris@v2")
	run("diff", "iris@v2", "iris@v3")
	run("export", "iris@latest", "out")
	run("export", "iris@v1", filepath.Join(in.home, "out1"))
	run("fsck")
	run("gc", "--dry-run")
	run("gc")
	// The error cases.
	run("add", "iris@v1", "src")
	run("export", "iris@v7", "y")
	run("add", "iris@latest", "src")
	run("add", "iris@v4", "src/nope")
	run("export", "iris@v1", "src")
	run("versions", "mnist")
	run("versions", "runs")
	run("diff", "iris@v1", "iris@v9")
	run("export", "iris", "z")
	run("add", "mnist@v1", "src/pipe")
	return steps
}

// TestCLISameWithDaemon runs one workflow twice, without a daemon and with
// one serving the instance, and compares what mlfs prints and its exit
// codes: SPEC section 5, "both paths give the same answers".
func TestCLISameWithDaemon(t *testing.T) {
	local := newInstance(t, "")
	served := newInstance(t, "")
	os.MkdirAll(filepath.Join(served.home, "data/mlfs"), 0o755)
	logs := serveInstance(t, served)

	want := workflow(t, local)
	got := workflow(t, served)
	if len(got) != len(want) {
		t.Fatalf("%d steps with a daemon, %d without", len(got), len(want))
	}
	for i := range want {
		if testing.Verbose() {
			t.Logf("$ mlfs %s  (exit %d)\n%s%s", want[i].args, want[i].code, want[i].stdout, want[i].stderr)
		}
		if got[i] != want[i] {
			t.Errorf("mlfs %s differs\nwithout a daemon: exit %d\n%s%s\nwith a daemon: exit %d\n%s%s",
				want[i].args, want[i].code, want[i].stdout, want[i].stderr, got[i].code, got[i].stdout, got[i].stderr)
		}
	}
	// The workflow did what it should, so agreeing means something.
	codes := map[string]int{}
	for _, s := range want {
		codes[s.args] = s.code
	}
	for args, code := range map[string]int{"add iris@v1 src -m first cut": 0, "versions iris": 0, "gc": 0,
		"add iris@v1 src": 1, "versions mnist": 1, "export iris@v7 y": 1} {
		if codes[args] != code {
			t.Errorf("mlfs %s: exit %d, want %d", args, codes[args], code)
		}
	}
	for _, s := range want {
		if s.args == "add iris@v3 src" && !strings.Contains(s.stdout, "2 unchanged files not read again") {
			t.Errorf("re-add: %s", s.stdout)
		}
		if s.args == "add iris@v2 $HOME/src" && !strings.Contains(s.stderr, "warning: $HOME/src/pipe: skipped") {
			t.Errorf("add with a fifo: %q", s.stderr)
		}
	}
	for _, in := range []*instance{local, served} {
		if b, _ := os.ReadFile(filepath.Join(in.home, "out", "iris.csv")); string(b) != "a,b\n1,2\n3,4\n" {
			t.Errorf("exported %q", b)
		}
	}
	// And the daemon did the work.
	if n := strings.Count(logs.String(), "msg=add "); n != 3 {
		t.Errorf("the daemon logged %d adds, want 3:\n%s", n, logs)
	}
	if _, errOut, _ := served.run("-v", "versions", "iris"); !strings.Contains(errOut, "using the daemon") {
		t.Errorf("--verbose does not tell the daemon was used: %q", errOut)
	}
	if _, errOut, _ := local.run("-v", "versions", "iris"); !strings.Contains(errOut, "no daemon") {
		t.Errorf("--verbose does not tell no daemon was found: %q", errOut)
	}
	// Another store than the daemon's is opened directly.
	other := t.TempDir()
	if _, errOut, code := served.run("-v", "--store", other, "gc"); code != 0 || !strings.Contains(errOut, "the daemon serves another store") {
		t.Errorf("--store with a daemon running: exit %d %q", code, errOut)
	}
}

// TestCLIInterruptSameWithDaemon interrupts an add (SIGINT, as Ctrl-C)
// with and without a daemon: the same message, exit code and no version;
// through the daemon, the daemon's add stops too.
func TestCLIInterruptSameWithDaemon(t *testing.T) {
	local := newInstance(t, "")
	served := newInstance(t, "")
	os.MkdirAll(filepath.Join(served.home, "data/mlfs"), 0o755)
	logs := serveInstance(t, served)
	src := t.TempDir()
	for i := 0; i < 40; i++ {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("part-%02d.bin", i)), 8<<20)
	}
	interrupt := func(in *instance) (string, int) {
		cmd := exec.Command(binary, "add", "big@v1", src)
		cmd.Env = in.env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		objects := filepath.Join(in.home, "data/mlfs/store/objects")
		deadline := time.Now().Add(30 * time.Second)
		for {
			if packs, _ := filepath.Glob(filepath.Join(objects, "*", "*")); len(packs) >= 2 {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("add wrote nothing within 30s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		return stderr.String(), cmd.ProcessState.ExitCode()
	}
	wantErr, wantCode := interrupt(local)
	gotErr, gotCode := interrupt(served)
	if gotErr != wantErr || gotCode != wantCode || wantCode != 1 || !strings.Contains(wantErr, "interrupted") {
		t.Errorf("interrupted add\nwithout a daemon: exit %d %q\nwith a daemon: exit %d %q", wantCode, wantErr, gotCode, gotErr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "add failed") {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's add did not stop:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, in := range []*instance{local, served} {
		in.fails("has no versions", "versions", "big")
		if out := in.ok("fsck"); !strings.Contains(out, "0 problems") {
			t.Errorf("fsck: %s", out)
		}
	}
}
