// Command emulator starts a cloud-storage emulator (see package emulators)
// for scripts, outside of tests, and stops it again:
//
//	emulator start [-prefix P] s3|gcs|azure STATE_DIR
//	emulator stop STATE_DIR
//
// start runs the emulator in the background, in a session of its own, so
// that it outlives the command and a Ctrl-C in the script's terminal does
// not reach it; its data goes to STATE_DIR/data, its output to
// STATE_DIR/emulator.log and its pid to STATE_DIR/pid. Once it answers,
// start creates a bucket (for Azure, a container) with a random name and
// prints shell lines for eval: the URL for `mlfs remote add` (the bucket
// and the prefix P, default "demo"), the flags that go with it, the
// endpoint, and export lines of the credentials each cloud's SDK reads
// (AWS_*, STORAGE_EMULATOR_HOST, AZURE_STORAGE_CONNECTION_STRING). The
// same lines go to STATE_DIR/env (mode 0600), for another shell to source.
//
// stop kills the emulator's process group (SIGTERM, then SIGKILL after 5 s)
// and removes the pid file; with no emulator running there it does nothing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mlfs/mlfs/internal/emulators"
)

func usage() {
	fmt.Fprintln(os.Stderr, "usage: emulator start [-prefix P] s3|gcs|azure STATE_DIR\n       emulator stop STATE_DIR")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "start":
		fs := flag.NewFlagSet("start", flag.ExitOnError)
		prefix := fs.String("prefix", "demo", "the folder inside the bucket that the printed URL names")
		fs.Parse(os.Args[2:])
		if fs.NArg() != 2 {
			usage()
		}
		err = start(fs.Arg(0), fs.Arg(1), *prefix)
	case "stop":
		if len(os.Args) != 3 {
			usage()
		}
		err = stop(os.Args[2])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "emulator:", err)
		os.Exit(1)
	}
}

// The pid file holds the pid, then the binary's path, one a line; stop
// checks that the pid still runs that binary before it kills anything.
func pidFile(dir string) string { return filepath.Join(dir, "pid") }

func start(kind, dir, prefix string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if pid, _, ok := running(dir); ok {
		return fmt.Errorf("an emulator runs already with its state in %s (pid %d); stop it first: emulator stop %s", dir, pid, dir)
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	log := filepath.Join(dir, "emulator.log")
	s, err := emulators.StartOptions(kind, data, emulators.Options{LogFile: log, Detach: true})
	if err != nil {
		return err
	}
	fail := func(err error) error {
		s.Stop()
		os.Remove(pidFile(dir))
		return err
	}
	if err := writeFile(pidFile(dir), fmt.Sprintf("%d\n%s\n", s.Pid(), s.Bin), 0o644); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bucket, err := s.NewBucket(ctx)
	if err != nil {
		return fail(fmt.Errorf("%s: create a bucket: %w\noutput:\n%s", s.Name, err, s.Output()))
	}

	var url string
	var flags []string
	switch kind {
	case emulators.KindS3:
		url = "s3://" + bucket
		flags = []string{"--endpoint", s.S3.Endpoint, "--path-style", "--region", s.S3.Region}
	case emulators.KindGCS:
		url = "gs://" + bucket
	case emulators.KindAzure:
		url = "az://" + bucket
	}
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		url += "/" + prefix
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s (%s) at %s, pid %d, data in %s, log %s\n", s.Name, kind, s.Endpoint(), s.Pid(), data, log)
	fmt.Fprintf(&b, "emulator_kind=%s\n", kind)
	fmt.Fprintf(&b, "emulator_name=%s\n", s.Name)
	fmt.Fprintf(&b, "emulator_endpoint=%s\n", quote(s.Endpoint()))
	fmt.Fprintf(&b, "emulator_bucket=%s\n", bucket)
	fmt.Fprintf(&b, "emulator_url=%s\n", quote(url))
	fmt.Fprintf(&b, "emulator_flags=%s\n", quote(strings.Join(flags, " ")))
	var names []string
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%s\n", k, quote(v))
		names = append(names, k)
	}
	fmt.Fprintf(&b, "emulator_env=%s\n", quote(strings.Join(names, " ")))
	if err := writeFile(filepath.Join(dir, "env"), b.String(), 0o600); err != nil {
		return fail(err)
	}
	fmt.Print(b.String())
	return nil
}

// quote makes v one word for sh.
func quote(v string) string {
	if v != "" && strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:@,+-=") == "" {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// writeFile writes through a temporary file, so that a reader never sees
// half of it.
func writeFile(path, content string, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// running reads the pid file and reports whether that pid is alive and
// still runs the binary it names: a pid reused by another program since is
// not killed.
func running(dir string) (pid int, bin string, ok bool) {
	b, err := os.ReadFile(pidFile(dir))
	if err != nil {
		return 0, "", false
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	pid, err = strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 1 || len(lines) < 2 {
		return 0, "", false
	}
	bin = lines[1]
	return pid, bin, alive(pid, bin)
}

// alive: the process exists, is no zombie (whose parent, init in a
// container, may never reap it), and has bin in its command line (Azurite
// runs as "node .../azurite-blob ...").
func alive(pid int, bin string) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i < 0 || strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z") {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	for _, arg := range strings.Split(string(cmdline), "\x00") {
		if arg == bin {
			return true
		}
	}
	return false
}

func stop(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	pid, bin, ok := running(dir)
	if !ok {
		if err := os.Remove(pidFile(dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	// The emulator leads its own process group (setsid): the group's id
	// is its pid, and the kill reaches any child it started.
	syscall.Kill(-pid, syscall.SIGTERM)
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid, bin) {
		if time.Now().After(deadline) {
			syscall.Kill(-pid, syscall.SIGKILL)
			deadline = time.Now().Add(5 * time.Second)
			for alive(pid, bin) {
				if time.Now().After(deadline) {
					return fmt.Errorf("pid %d (%s) survives SIGKILL", pid, bin)
				}
				time.Sleep(20 * time.Millisecond)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return os.Remove(pidFile(dir))
}
