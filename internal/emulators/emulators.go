// Package emulators starts real cloud-storage emulators as separate
// processes for tests: versitygw for S3, fake-gcs-server for GCS and
// Azurite for Azure Blob Storage.
//
// In-process fakes (gofakes3, fakestorage) are fast but share the test's
// address space and skip much of the wire: versitygw checks request
// signatures, and Azurite is what Microsoft ships for local development.
// Running the same binaries a user would run proves the backends against
// the protocol, not against a library's idea of it.
//
// Each of S3, GCS and Azure starts its own process on a free port of
// 127.0.0.1 with its data in t.TempDir(), waits until it answers HTTP, and
// kills it in t.Cleanup; the process's output is in the message when it
// does not come up, and in the test log when the test fails. Tests make a
// fresh bucket or container (with a random name) per store, so one process
// serves a whole test.
//
// The binaries come from scripts/emulators install, which puts them under
// $MLFS_TOOLS (default: .tools in the repo root): $MLFS_TOOLS/bin/versitygw,
// $MLFS_TOOLS/bin/fake-gcs-server and
// $MLFS_TOOLS/azurite/node_modules/.bin/azurite-blob; PATH is searched
// after that. A missing binary skips the test with a message saying how to
// install it, unless MLFS_REQUIRE_EMULATORS=1 (as in CI), which makes it a
// failure, so that no emulator test can be skipped there unnoticed.
package emulators

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartTimeout bounds how long an emulator may take to answer.
const StartTimeout = 20 * time.Second

// RandomName returns a name that is valid for an S3 or GCS bucket and an
// Azure container alike: "mlfs-" and 16 lowercase hex digits.
func RandomName() string {
	var b [8]byte
	rand.Read(b[:])
	return "mlfs-" + hex.EncodeToString(b[:])
}

var (
	rootOnce sync.Once
	rootDir  string
)

// repoRoot is the nearest folder above the working directory (a package
// folder, under go test) that holds go.mod.
func repoRoot() string {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return
			}
			dir = parent
		}
	})
	return rootDir
}

// toolsDir is $MLFS_TOOLS, relative to the repo root like in
// scripts/emulators, or <repo root>/.tools.
func toolsDir() string {
	d := os.Getenv("MLFS_TOOLS")
	if d == "" {
		d = ".tools"
	}
	if !filepath.IsAbs(d) && repoRoot() != "" {
		d = filepath.Join(repoRoot(), d)
	}
	return d
}

// find returns the path of an emulator binary: rel under the tools folder,
// else name on PATH. When there is neither it skips the test, or fails it
// under MLFS_REQUIRE_EMULATORS=1.
func find(t testing.TB, name, rel string) string {
	t.Helper()
	p := filepath.Join(toolsDir(), rel)
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := fmt.Sprintf("emulator %s not found (looked for %s, then on PATH); install the emulators with: bash scripts/emulators install", name, p)
	if os.Getenv("MLFS_REQUIRE_EMULATORS") == "1" {
		t.Fatalf("%s (MLFS_REQUIRE_EMULATORS=1, so this is a failure)", msg)
	}
	t.Skipf("SKIPPED, NOT TESTED: %s (set MLFS_REQUIRE_EMULATORS=1 to fail instead)", msg)
	return ""
}

// freePort returns a port on 127.0.0.1 that was free a moment ago. Another
// process may take it before the emulator binds it; start retries then.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tail keeps the last max bytes written to it; a process's output goes
// there.
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(p), nil
}

func (w *tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return "(no output)"
	}
	return string(bytes.TrimSpace(w.buf))
}

// spec says how to run one emulator.
type spec struct {
	name string
	bin  string
	// args gives the command line for a port and a data folder.
	args func(port int, dir string) []string
	env  []string
	// probe is a URL path that the emulator answers once it is ready;
	// any HTTP response will do.
	probe string
}

// start runs the emulator on a free port and returns the port once it
// answers. A process that exits because its port was taken meanwhile is
// started again on another.
func start(t testing.TB, sp spec) int {
	t.Helper()
	dir := t.TempDir() // before the kill below is registered, so removed after it
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		out := &tail{max: 64 << 10}
		err := run(t, sp, port, dir, out)
		if err == nil {
			return port
		}
		if o := strings.ToLower(out.String()); attempt < 3 && (strings.Contains(o, "in use") || strings.Contains(o, "eaddrinuse")) {
			continue
		}
		t.Fatalf("%s did not start: %v\ncommand: %s %s\noutput:\n%s", sp.name, err, sp.bin, strings.Join(sp.args(port, dir), " "), out)
	}
}

// run starts the process and waits until it answers, or exits, or
// StartTimeout passes. On success the process is killed in t.Cleanup.
func run(t testing.TB, sp spec, port int, dir string, out *tail) error {
	cmd := exec.Command(sp.bin, sp.args(port, dir)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), sp.env...)
	cmd.Stdout, cmd.Stderr = out, out
	// A group of its own, so that the kill reaches any child it starts.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	kill := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}

	url := "http://127.0.0.1:" + strconv.Itoa(port) + sp.probe
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(StartTimeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before answering (%v)", waitErr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			kill()
			return fmt.Errorf("no answer at %s within %s (last: %v)", url, StartTimeout, err)
		}
	}
	t.Cleanup(func() {
		select {
		case <-exited:
			t.Errorf("%s exited during the test (%v); output:\n%s", sp.name, waitErr, out)
			return
		default:
		}
		kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", sp.name, out)
		}
	})
	return nil
}
