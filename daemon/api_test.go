package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/local"
	"github.com/mlfs/mlfs/cas/pack"
	"github.com/mlfs/mlfs/config"
	"github.com/mlfs/mlfs/repo"
)

// testConfig is the config of a separate instance under home.
func testConfig(t *testing.T, home string) *config.Config {
	t.Helper()
	env := map[string]string{"HOME": home, "XDG_CONFIG_HOME": home + "/config",
		"XDG_DATA_HOME": home + "/data", "XDG_CACHE_HOME": home + "/cache"}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// logBuffer collects the daemon's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits until the log holds s.
func (l *logBuffer) waitFor(t *testing.T, s string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(l.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not log %q within %v; log:\n%s", s, within, l.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type daemonT struct {
	cfg  *config.Config
	r    *Repo
	c    *Client
	logs *logBuffer
	stop func() // stops serving; idempotent
}

// startDaemon opens a repo under a temp folder and serves it on its socket.
func startDaemon(t *testing.T) *daemonT {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	r, err := OpenRepo(context.Background(), cfg, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(cfg.Paths.Socket)
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, r, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}()
	d := &daemonT{cfg: cfg, r: r, logs: logs}
	var once sync.Once
	d.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		if d.c != nil {
			d.c.Close()
		}
		d.stop()
		r.Close()
	})
	if d.c, err = Dial(cfg.Paths.Socket); err != nil {
		t.Fatal(err)
	}
	return d
}

func mustRef(t *testing.T, s string) repo.Ref {
	t.Helper()
	ref, err := repo.ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// listing describes a tree: per path its type, mode, size, mtime and bytes
// or link target.
func listing(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		desc := fmt.Sprintf("%v %d", fi.Mode(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			desc += " " + string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc = fmt.Sprintf("%v -> %s", fi.Mode(), target)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameError checks that the daemon's error reads and matches like the
// local one.
func sameError(t *testing.T, what string, remote, local error, sentinels ...error) {
	t.Helper()
	if remote == nil || local == nil {
		t.Fatalf("%s: remote error %v, local error %v; want both", what, remote, local)
	}
	if remote.Error() != local.Error() {
		t.Errorf("%s: daemon says %q, local %q", what, remote, local)
	}
	for _, s := range sentinels {
		if !errors.Is(remote, s) || !errors.Is(local, s) {
			t.Errorf("%s: errors.Is(%v): daemon %v, local %v", what, s, errors.Is(remote, s), errors.Is(local, s))
		}
	}
}

// TestAPIMatchesRepo runs every call through the daemon and directly on
// the repo it serves, and compares results and errors.
func TestAPIMatchesRepo(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	base := t.TempDir()
	src := filepath.Join(base, "src")
	write(t, filepath.Join(src, "iris.csv"), "a,b\n1,2\n")
	write(t, filepath.Join(src, "sub/deep/x.bin"), strings.Repeat("x", 200<<10))
	os.Mkdir(filepath.Join(src, "empty"), 0o755)
	os.Symlink("iris.csv", filepath.Join(src, "link"))
	os.Chmod(filepath.Join(src, "sub/deep/x.bin"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(src, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}

	// add through the daemon, with a relative path: the client makes it
	// absolute against its own working folder.
	t.Chdir(base)
	var warnings []string
	var progressed int64
	res, err := d.c.Add(ctx, mustRef(t, "iris@v1"), "src", repo.AddOptions{
		Message:  "first cut",
		Progress: func(bytes, files int64) { progressed = bytes },
		Warn:     func(path, reason string) { warnings = append(warnings, path+": "+reason) },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(src, "pipe") + ": skipped: a fifo is not a file, folder or symlink"}
	if !reflect.DeepEqual(warnings, want) {
		t.Errorf("warnings %q, want %q", warnings, want)
	}
	if res.Files != 2 || res.Bytes != 8+200<<10 || res.Skipped != 1 || progressed != res.Bytes || res.NewChunks == 0 {
		t.Errorf("add result %+v %+v, progress %d", res, *res.Version, progressed)
	}
	v1, err := d.r.Resolve(ctx, mustRef(t, "iris@v1"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.VersionInfo, v1) {
		t.Errorf("add returned %+v %+v, the repo has %+v %+v", res.VersionInfo, *res.Version, v1, *v1.Version)
	}

	// A second version, added directly.
	write(t, filepath.Join(src, "iris.csv"), "a,b\n1,2\n3,4\n")
	write(t, filepath.Join(src, "README"), "notes")
	os.Remove(filepath.Join(src, "link"))
	// Old enough for the index to remember them (see repo's racyWindow).
	hourAgo := time.Now().Add(-time.Hour)
	for _, f := range []string{"iris.csv", "README", "sub/deep/x.bin"} {
		os.Chtimes(filepath.Join(src, f), hourAgo, hourAgo)
	}
	if _, err := d.r.Add(ctx, mustRef(t, "iris@v2"), src, repo.AddOptions{}); err != nil {
		t.Fatal(err)
	}
	// The same tree again through the daemon: its index knows the files.
	res3, err := d.c.Add(ctx, mustRef(t, "iris@v3"), src, repo.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res3.Reused == 0 || res3.NewChunks != 0 {
		t.Errorf("re-add through the daemon: %d files reused, %d new chunks; want the index to be used", res3.Reused, res3.NewChunks)
	}

	got, err := d.c.Versions(ctx, "iris")
	if err != nil {
		t.Fatal(err)
	}
	direct, _ := d.r.Versions(ctx, "iris")
	if len(got) != 3 || !reflect.DeepEqual(got, direct) {
		t.Errorf("versions: daemon %v, repo %v", got, direct)
	}
	for _, name := range []string{"iris@v1", "iris@latest", "iris@" + v1.ID.String()[:10]} {
		got, err := d.c.Resolve(ctx, mustRef(t, name))
		want, werr := d.r.Resolve(ctx, mustRef(t, name))
		if err != nil || werr != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("resolve %s: daemon %+v %v, repo %+v %v", name, got, err, want, werr)
		}
	}
	changes, err := d.c.Diff(ctx, mustRef(t, "iris@v1"), mustRef(t, "iris@v2"))
	directChanges, _ := d.r.Diff(ctx, mustRef(t, "iris@v1"), mustRef(t, "iris@v2"))
	if err != nil || len(changes) != 3 || !reflect.DeepEqual(changes, directChanges) {
		t.Errorf("diff: daemon %v %v, repo %v", changes, err, directChanges)
	}

	// export, relative dir too
	ev, err := d.c.Export(ctx, mustRef(t, "iris@v1"), "out-daemon", repo.ExportOptions{Progress: func(bytes, files int64) { progressed = bytes }})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ev, v1) || progressed != v1.Bytes {
		t.Errorf("export returned %+v (progress %d), want %+v", ev, progressed, v1)
	}
	if _, err := d.r.Export(ctx, mustRef(t, "iris@v1"), filepath.Join(base, "out-direct"), repo.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	a, b := listing(t, filepath.Join(base, "out-daemon")), listing(t, filepath.Join(base, "out-direct"))
	if len(a) != 6 || !reflect.DeepEqual(a, b) {
		t.Errorf("exports differ:\ndaemon %v\nrepo   %v", a, b)
	}

	st, err := d.c.Fsck(ctx, func(p repo.Problem) { t.Errorf("problem %v", p) })
	directSt, _ := d.r.Fsck(ctx, nil)
	if err != nil || st != directSt || st.Versions != 3 {
		t.Errorf("fsck: daemon %+v %v, repo %+v", st, err, directSt)
	}
	gst, err := d.c.GC(ctx, true)
	directGst, _ := d.r.GC(ctx, true)
	if err != nil || gst != directGst {
		t.Errorf("gc -n: daemon %+v %v, repo %+v", gst, err, directGst)
	}
	if _, err := d.c.GC(ctx, false); err != nil {
		t.Fatal(err)
	}

	// Errors read the same and match the same sentinels.
	_, err = d.c.Resolve(ctx, mustRef(t, "iris@v9"))
	_, lerr := d.r.Resolve(ctx, mustRef(t, "iris@v9"))
	sameError(t, "resolve iris@v9", err, lerr, repo.ErrNoVersion)
	_, err = d.c.Add(ctx, mustRef(t, "iris@v1"), src, repo.AddOptions{})
	_, lerr = d.r.Add(ctx, mustRef(t, "iris@v1"), src, repo.AddOptions{})
	sameError(t, "add iris@v1 again", err, lerr, cas.ErrExists)
	_, err = d.c.Add(ctx, mustRef(t, "iris@v5"), filepath.Join(src, "nope"), repo.AddOptions{})
	_, lerr = d.r.Add(ctx, mustRef(t, "iris@v5"), filepath.Join(src, "nope"), repo.AddOptions{})
	sameError(t, "add a missing path", err, lerr, fs.ErrNotExist)
	_, err = d.c.Add(ctx, mustRef(t, "iris@latest"), src, repo.AddOptions{})
	_, lerr = d.r.Add(ctx, mustRef(t, "iris@latest"), src, repo.AddOptions{})
	sameError(t, "add iris@latest", err, lerr)
	if !strings.Contains(err.Error(), "reserved") || !errors.As(err, new(*Error)) || err.(*Error).Kind != KindInvalid {
		t.Errorf("add iris@latest: %#v", err)
	}
	_, err = d.c.Export(ctx, mustRef(t, "iris@v1"), src, repo.ExportOptions{})
	_, lerr = d.r.Export(ctx, mustRef(t, "iris@v1"), src, repo.ExportOptions{})
	sameError(t, "export into a full folder", err, lerr)
	_, err = d.c.Export(ctx, mustRef(t, "mnist@v1"), filepath.Join(base, "o2"), repo.ExportOptions{})
	_, lerr = d.r.Export(ctx, mustRef(t, "mnist@v1"), filepath.Join(base, "o3"), repo.ExportOptions{})
	sameError(t, "export a missing version", err, lerr, repo.ErrNoVersion)
	_, err = d.c.Diff(ctx, mustRef(t, "iris@v1"), mustRef(t, "iris@v8"))
	_, lerr = d.r.Diff(ctx, mustRef(t, "iris@v1"), mustRef(t, "iris@v8"))
	sameError(t, "diff with a missing version", err, lerr, repo.ErrNoVersion)
	_, err = d.c.Versions(ctx, "runs")
	_, lerr = d.r.Versions(ctx, "runs")
	sameError(t, "versions runs", err, lerr)
	if vs, err := d.c.Versions(ctx, "mnist"); err != nil || len(vs) != 0 {
		t.Errorf("versions of an unknown dataset: %v %v", vs, err)
	}

	// A damaged chunk: fsck streams the same problems either way.
	ps := d.r.Store().(*pack.Store)
	var chunk cas.ID
	d.r.Store().(cas.Lister).List(ctx, func(id cas.ID, size int64) error {
		if size == 200<<10 || size > 16<<10 && chunk.IsZero() {
			chunk = id
		}
		return nil
	})
	p, off, _, ok := ps.Locate(chunk)
	if !ok {
		t.Fatal("no chunk to damage")
	}
	path := ps.Backend().(*local.Store).ObjectPath(p)
	os.Chmod(path, 0o644)
	pb, _ := os.ReadFile(path)
	pb[off+3] ^= 0x40
	os.WriteFile(path, pb, 0o644)
	var remote, direct2 []string
	st, err = d.c.Fsck(ctx, func(p repo.Problem) { remote = append(remote, p.String()) })
	directSt, _ = d.r.Fsck(ctx, func(p repo.Problem) { direct2 = append(direct2, p.String()) })
	if err != nil || st != directSt || st.Problems == 0 || !reflect.DeepEqual(remote, direct2) {
		t.Errorf("fsck of a damaged store: daemon %+v %v %q, repo %+v %q", st, err, remote, directSt, direct2)
	}
}

// TestAPICancelAdd cancels a long add from the client: the daemon stops
// it, and no version is named.
func TestAPICancelAdd(t *testing.T) {
	d := startDaemon(t)
	src := t.TempDir()
	const files, size = 24, 12 << 20 // 288 MiB
	buf := make([]byte, size)
	for i := range files {
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("part-%02d", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen int64
	start := time.Now()
	_, err := d.c.Add(ctx, mustRef(t, "big@v1"), src, repo.AddOptions{Progress: func(bytes, _ int64) {
		seen = bytes
		cancel() // as Ctrl-C does, once the add is under way
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled add returned %v", err)
	}
	if seen == 0 || seen >= files*size {
		t.Fatalf("canceled after %d of %d bytes", seen, files*size)
	}
	// The daemon's add ends, with an error, soon after.
	d.logs.waitFor(t, "add failed", 10*time.Second)
	t.Logf("canceled after %d MiB; the daemon's add ended within %v", seen>>20, time.Since(start).Round(time.Millisecond))
	if !strings.Contains(d.logs.String(), "context canceled") {
		t.Errorf("the daemon's add failed for another reason:\n%s", d.logs)
	}
	bg := context.Background()
	if vs, err := d.r.Versions(bg, "big"); err != nil || len(vs) != 0 {
		t.Fatalf("after a canceled add: versions %v %v", vs, err)
	}
	// The add let go of the store lock (gc could run), and the store is
	// sound. That later adds and gc work is TestAPIAddAfterCanceledAdd.
	lock, err := os.OpenFile(filepath.Join(d.cfg.Store, "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("the canceled add still holds the store lock: %v", err)
	}
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if st, err := d.c.Fsck(bg, nil); err != nil || st.Problems != 0 {
		t.Fatalf("fsck: %+v %v", st, err)
	}
}

// staleSocket leaves a socket file that nothing listens on, as a killed
// daemon does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mlfs.sock")
	if _, err := Dial(path); err != ErrNoDaemon {
		t.Fatalf("dial without a socket: %v, want ErrNoDaemon", err)
	}
	staleSocket(t, path)
	if _, err := Dial(path); err != ErrNoDaemon {
		t.Fatalf("dial a stale socket: %v, want ErrNoDaemon", err)
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v, want a socket with mode 0600", fi.Mode(), err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".sock*")); len(leftovers) > 0 {
		t.Errorf("left behind %v", leftovers)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	c.Close()
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("close left the socket: %v", err)
	}
}

func TestListenRefusesLiveDaemon(t *testing.T) {
	d := startDaemon(t)
	path := d.cfg.Paths.Socket
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another mlfs daemon is running") {
		t.Fatalf("second listen: %v", err)
	}
	// The first still serves.
	if _, err := d.c.Versions(context.Background(), "iris"); err != nil {
		t.Fatal(err)
	}
	// A live listener that holds no lock (some other program) is refused too.
	other := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", other)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := Listen(other); err == nil || !strings.Contains(err.Error(), "already serving") {
		t.Fatalf("listen over a live socket: %v", err)
	}
	notSock := filepath.Join(t.TempDir(), "f")
	write(t, notSock, "x")
	if _, err := Listen(notSock); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("listen over a file: %v", err)
	}
	// Once the first stops, its socket is gone and a new daemon may start.
	d.stop()
	if _, err := Dial(path); err != ErrNoDaemon {
		t.Fatalf("dial after stop: %v", err)
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("listen after the first daemon stopped: %v", err)
	}
	ln.Close()
}

// The peer check needs two users: the test, as root, runs a copy of
// itself as nobody. helperEnv selects what the copy does.
const helperEnv = "MLFS_DAEMON_TEST_HELPER"

// TestHelperProcess is not a test: it is the other process of
// TestPeerCredentials.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "dial":
		_, err := Dial(os.Getenv("MLFS_TEST_SOCKET"))
		fmt.Println("dial:", err)
	case "serve":
		cfg := testConfig(t, os.Getenv("MLFS_TEST_HOME"))
		r, err := OpenRepo(context.Background(), cfg, true, nil)
		if err != nil {
			fmt.Println("open:", err)
			return
		}
		defer r.Close()
		ln, err := Listen(cfg.Paths.Socket)
		if err != nil {
			fmt.Println("listen:", err)
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { io.Copy(io.Discard, os.Stdin); cancel() }() // serve until stdin closes
		fmt.Println("ready")
		Serve(ctx, ln, r, nil)
	}
}

func TestPeerCredentials(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("NOT RUN: checking callers of another uid needs root to run as nobody; CI runs as root")
	}
	const nobody = 65534
	base, err := os.MkdirTemp("", "mlfs-peer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	self := filepath.Join(base, "daemon.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(self, b, 0o755); err != nil {
		t.Fatal(err)
	}
	helper := func(mode string, env ...string) *exec.Cmd {
		cmd := exec.Command(self, "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), append(env, helperEnv+"="+mode)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		cmd.Dir = base
		return cmd
	}

	// 1. A root daemon refuses nobody, even when the socket lets it in.
	d := startDaemon(t)
	os.Chmod(d.cfg.Paths.Socket, 0o666)
	// Let nobody reach the socket: open the test's folders, not /tmp.
	for dir := filepath.Dir(d.cfg.Paths.Socket); dir != os.TempDir() && dir != "/"; dir = filepath.Dir(dir) {
		os.Chmod(dir, 0o755)
	}
	out, _ := helper("dial", "MLFS_TEST_SOCKET="+d.cfg.Paths.Socket).CombinedOutput()
	if want := fmt.Sprintf("uid %d may not use this daemon; it serves only root", nobody); !strings.Contains(string(out), want) {
		t.Errorf("nobody dialing root's daemon:\n%s\nwant %q", out, want)
	}
	if !strings.Contains(d.logs.String(), "refused a caller") {
		t.Errorf("the refusal is not logged:\n%s", d.logs)
	}

	// 2. A daemon running as nobody serves root, but not add or export:
	// it would open root's paths with nobody's rights.
	home := filepath.Join(base, "home")
	os.Mkdir(home, 0o755)
	os.Chown(home, nobody, nobody)
	cmd := helper("serve", "MLFS_TEST_HOME="+home)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line := make([]byte, 64)
	n, _ := stdout.Read(line)
	if !strings.Contains(string(line[:n]), "ready") {
		t.Fatalf("the helper daemon says %q", line[:n])
	}
	c, err := Dial(testConfig(t, home).Paths.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.UID() != nobody {
		t.Fatalf("daemon uid %d", c.UID())
	}
	ctx := context.Background()
	if _, err := c.Versions(ctx, "iris"); err != nil {
		t.Fatalf("root may list: %v", err)
	}
	src := t.TempDir()
	write(t, filepath.Join(src, "f"), "x")
	want := fmt.Sprintf("the daemon runs as uid %d and opens paths with that uid's rights, so it does this only for uid %d (you are uid 0); run mlfs as that user", nobody, nobody)
	_, err = c.Add(ctx, mustRef(t, "iris@v1"), src, repo.AddOptions{})
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("root's add through nobody's daemon: %v", err)
	}
	_, err = c.Export(ctx, mustRef(t, "iris@v1"), filepath.Join(src, "out"), repo.ExportOptions{})
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("root's export through nobody's daemon: %v", err)
	}
	if _, err := os.Stat(filepath.Join(src, "out")); err == nil {
		t.Error("the refused export created its folder")
	}
}

// TestAPIAddAfterCanceledAdd: an add canceled while packs are being
// written must not break the daemon for the adds after it.
func TestAPIAddAfterCanceledAdd(t *testing.T) {
	d := startDaemon(t)
	src := t.TempDir()
	buf := make([]byte, 12<<20)
	for i := range 24 {
		rand.Read(buf)
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("part-%02d", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	small := t.TempDir()
	write(t, filepath.Join(small, "f"), "x")
	for i := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := d.c.Add(ctx, mustRef(t, fmt.Sprintf("big@v%d", i)), src, repo.AddOptions{Progress: func(b, _ int64) {
			if b > 40<<20 { // packs sealed and being written
				cancel()
			}
		}})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled add: %v", err)
		}
		if _, err := d.c.Add(context.Background(), mustRef(t, fmt.Sprintf("small@v%d", i)), small, repo.AddOptions{}); err != nil {
			t.Fatalf("add after a canceled add: %v", err)
		}
		if _, err := d.c.GC(context.Background(), false); err != nil {
			t.Fatalf("gc after a canceled add: %v", err)
		}
	}
	if _, err := d.c.Add(context.Background(), mustRef(t, "big@v1"), src, repo.AddOptions{}); err != nil {
		t.Fatalf("the canceled add, again: %v", err)
	}
}
