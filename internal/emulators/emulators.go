// Package emulators starts real cloud-storage emulators as separate
// processes: versitygw for S3, fake-gcs-server for GCS and Azurite for
// Azure Blob Storage. Tests use them through S3, GCS and Azure; scripts
// (the demo) through Start and the command in cmd/emulator.
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
// serves a whole test. Start and StartOptions do the same without a test:
// the caller stops the server (Server.Stop), or, for a detached one, kills
// its process group.
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
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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

// The kinds of emulator, as Start takes them.
const (
	KindS3    = "s3"    // versitygw
	KindGCS   = "gcs"   // fake-gcs-server
	KindAzure = "azure" // azurite-blob
)

// Kinds lists every kind Start knows.
var Kinds = []string{KindS3, KindGCS, KindAzure}

// binaries names each kind's program: its name on PATH and its path under
// the tools folder.
var binaries = map[string]struct{ name, rel string }{
	KindS3:    {"versitygw", "bin/versitygw"},
	KindGCS:   {"fake-gcs-server", "bin/fake-gcs-server"},
	KindAzure: {"azurite-blob", "azurite/node_modules/.bin/azurite-blob"},
}

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

// ErrNotInstalled is wrapped by the error Find returns when the emulator is
// neither under the tools folder nor on PATH.
var ErrNotInstalled = errors.New("emulator not installed")

// lookup returns the path of an emulator binary: rel under the tools
// folder, else name on PATH.
func lookup(name, rel string) (string, error) {
	p := filepath.Join(toolsDir(), rel)
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: %s not found (looked for %s, then on PATH); install the emulators with: bash scripts/emulators install", ErrNotInstalled, name, p)
}

// Find returns the path of the binary of an emulator kind (KindS3,
// KindGCS, KindAzure), as the tests and Start run it.
func Find(kind string) (string, error) {
	b, ok := binaries[kind]
	if !ok {
		return "", unknownKind(kind)
	}
	return lookup(b.name, b.rel)
}

func unknownKind(kind string) error {
	return fmt.Errorf("unknown emulator kind %q (want one of %s)", kind, strings.Join(Kinds, ", "))
}

// find returns the path of an emulator binary for a test. When there is
// none it skips the test, or fails it under MLFS_REQUIRE_EMULATORS=1.
func find(t testing.TB, name, rel string) string {
	t.Helper()
	p, err := lookup(name, rel)
	if err == nil {
		return p
	}
	msg := "emulator " + strings.TrimPrefix(err.Error(), ErrNotInstalled.Error()+": ")
	if os.Getenv("MLFS_REQUIRE_EMULATORS") == "1" {
		t.Fatalf("%s (MLFS_REQUIRE_EMULATORS=1, so this is a failure)", msg)
	}
	t.Skipf("SKIPPED, NOT TESTED: %s (set MLFS_REQUIRE_EMULATORS=1 to fail instead)", msg)
	return ""
}

// freePort returns a port on 127.0.0.1 that was free a moment ago. Another
// process may take it before the emulator binds it; startProcess retries
// then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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
	return tailText(w.buf)
}

func tailText(b []byte) string {
	if len(bytes.TrimSpace(b)) == 0 {
		return "(no output)"
	}
	return string(bytes.TrimSpace(b))
}

// fileTail returns the last max bytes of a log file.
func fileTail(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no output: " + err.Error() + ")"
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		f.Seek(fi.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return tailText(b)
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

// Options change how StartOptions runs an emulator.
type Options struct {
	// LogFile, when set, receives the process's output (appended to);
	// otherwise the last 64 KiB of it are kept in memory for Output.
	LogFile string
	// Detach starts the process in a session of its own (setsid) with no
	// pipe to the caller, so that it runs on after the caller exits and a
	// signal to the caller's terminal does not reach it. Its process
	// group's id is its pid: kill -- -PID stops it.
	Detach bool
}

// process is a running emulator.
type process struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	output  func() string
}

// kill kills the process group and waits for the process.
func (p *process) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// startProcess runs the emulator on a free port with its data in dir and
// returns once it answers. A process that exits because its port was
// taken meanwhile is started again on another.
func startProcess(sp spec, dir string, o Options) (*process, int, error) {
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, 0, err
		}
		p, err := launch(sp, port, dir, o)
		if err == nil {
			return p, port, nil
		}
		out := "(no output)"
		if p != nil {
			out = p.output()
		}
		if o := strings.ToLower(out); attempt < 3 && (strings.Contains(o, "in use") || strings.Contains(o, "eaddrinuse")) {
			continue
		}
		return nil, 0, fmt.Errorf("%s did not start: %v\ncommand: %s %s\noutput:\n%s", sp.name, err, sp.bin, strings.Join(sp.args(port, dir), " "), out)
	}
}

// launch starts the process and waits until it answers, or exits, or
// StartTimeout passes. On an error the process has gone; the returned
// process, if any, still gives its output.
func launch(sp spec, port int, dir string, o Options) (*process, error) {
	cmd := exec.Command(sp.bin, sp.args(port, dir)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), sp.env...)
	p := &process{name: sp.name, cmd: cmd, exited: make(chan struct{})}
	if o.LogFile != "" {
		// The file itself, not a pipe: a pipe would break (and the
		// emulator with it) once a detached caller exits.
		f, err := os.OpenFile(o.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
		p.output = func() string { return fileTail(o.LogFile, 64<<10) }
	} else {
		out := &tail{max: 64 << 10}
		cmd.Stdout, cmd.Stderr = out, out
		p.output = out.String
	}
	if o.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		// A group of its own, so that the kill reaches any child it starts.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()

	url := "http://127.0.0.1:" + strconv.Itoa(port) + sp.probe
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(StartTimeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			return p, nil
		}
		select {
		case <-p.exited:
			return p, fmt.Errorf("exited before answering (%v)", p.waitErr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return p, fmt.Errorf("no answer at %s within %s (last: %v)", url, StartTimeout, err)
		}
	}
}

// start runs the emulator for a test on a free port with its data in a
// t.TempDir() and returns the port once it answers; the process is killed
// in t.Cleanup.
func start(t testing.TB, sp spec) int {
	t.Helper()
	dir := t.TempDir() // before the kill below is registered, so removed after it
	p, port, err := startProcess(sp, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-p.exited:
			t.Errorf("%s exited during the test (%v); output:\n%s", sp.name, p.waitErr, p.output())
			return
		default:
		}
		p.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", sp.name, p.output())
		}
	})
	return port
}

// Server is an emulator started by Start. One of S3, GCS and Azure is set,
// by Kind.
type Server struct {
	Kind string // KindS3, KindGCS or KindAzure
	Name string // the program: versitygw, fake-gcs-server, azurite-blob
	Bin  string // its path
	Dir  string // its data
	Port int    // on 127.0.0.1

	S3    S3Server
	GCS   GCSServer
	Azure AzureServer

	p *process
}

// Start runs an emulator of a kind (KindS3, KindGCS, KindAzure) on a free
// port of 127.0.0.1 with its data in dir (which must exist), and returns
// once it answers. The caller stops it with Stop.
func Start(kind, dir string) (*Server, error) {
	return StartOptions(kind, dir, Options{})
}

// StartOptions is Start with Options: a log file, or a process detached
// from the caller.
func StartOptions(kind, dir string, o Options) (*Server, error) {
	bin, err := Find(kind)
	if err != nil {
		return nil, err
	}
	s := &Server{Kind: kind, Name: binaries[kind].name, Bin: bin, Dir: dir}
	var sp spec
	switch kind {
	case KindS3:
		s.S3 = newS3Server()
		sp = s3Spec(bin, s.S3)
	case KindGCS:
		sp = gcsSpec(bin)
	case KindAzure:
		sp = azureSpec(bin)
	}
	p, port, err := startProcess(sp, dir, o)
	if err != nil {
		return nil, err
	}
	s.p, s.Port = p, port
	switch kind {
	case KindS3:
		s.S3.Endpoint = s3Endpoint(port)
	case KindGCS:
		s.GCS = gcsServer(port)
	case KindAzure:
		s.Azure = azureServer(port)
	}
	return s, nil
}

// Pid is the emulator's process id; with Options.Detach also its process
// group's.
func (s *Server) Pid() int { return s.p.cmd.Process.Pid }

// Output is the end of the emulator's output so far.
func (s *Server) Output() string { return s.p.output() }

// Exited is closed when the process has exited (as long as the caller
// that started it runs).
func (s *Server) Exited() <-chan struct{} { return s.p.exited }

// Stop kills the emulator's process group and waits for it. It reports an
// emulator that had exited by itself, with its output.
func (s *Server) Stop() error {
	select {
	case <-s.p.exited:
		return fmt.Errorf("%s had exited (%v); output:\n%s", s.Name, s.p.waitErr, s.p.output())
	default:
	}
	s.p.kill()
	return nil
}

// Endpoint is the URL that clients reach the emulator at: versitygw's
// service URL, fake-gcs-server's JSON API base, or Azurite's account blob
// endpoint.
func (s *Server) Endpoint() string {
	switch s.Kind {
	case KindS3:
		return s.S3.Endpoint
	case KindGCS:
		return s.GCS.Endpoint
	default:
		return s.Azure.Endpoint
	}
}

// NewBucket creates a bucket (an Azure container) with a random name and
// returns the name.
func (s *Server) NewBucket(ctx context.Context) (string, error) {
	name := RandomName()
	var err error
	switch s.Kind {
	case KindS3:
		err = s.S3.CreateBucket(ctx, name)
	case KindGCS:
		err = s.GCS.CreateBucket(ctx, name)
	default:
		err = s.Azure.CreateContainer(ctx, name)
	}
	return name, err
}

// Env is the environment each cloud's SDK reads to reach the server:
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION for S3,
// STORAGE_EMULATOR_HOST for GCS, AZURE_STORAGE_CONNECTION_STRING for
// Azure; as NAME=VALUE.
func (s *Server) Env() []string {
	switch s.Kind {
	case KindS3:
		return s.S3.Env()
	case KindGCS:
		return s.GCS.Env()
	default:
		return s.Azure.Env()
	}
}
