package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlfs/mlfs/internal/emulators"
)

// remoteKind makes a fresh bucket on one kind of remote and says how an
// instance reaches it: the arguments of `mlfs remote add` after the name,
// and the environment its SDK reads credentials from.
type remoteKind struct {
	name string
	make func(t *testing.T) (args []string, env []string)
}

var remoteKinds = []remoteKind{
	{"file", func(t *testing.T) ([]string, []string) {
		return []string{"file://" + t.TempDir()}, nil
	}},
	{"s3", func(t *testing.T) ([]string, []string) {
		s := emulators.S3(t)
		return []string{"s3://" + s.NewBucket(t) + "/team", "--endpoint", s.Endpoint, "--path-style"},
			[]string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey, "AWS_REGION=" + s.Region}
	}},
	{"gcs", func(t *testing.T) ([]string, []string) {
		s := emulators.GCS(t)
		return []string{"gs://" + s.NewBucket(t) + "/team"}, []string{"STORAGE_EMULATOR_HOST=" + s.Host}
	}},
	{"azure", func(t *testing.T) ([]string, []string) {
		s := emulators.Azure(t)
		return []string{"az://" + s.NewContainer(t) + "/team"}, []string{"AZURE_STORAGE_CONNECTION_STRING=" + s.ConnectionString}
	}},
}

// machines makes two instances ("machines": separate XDG folders, so
// separate local stores, indexes and caches) that share one remote.
func machines(t *testing.T, kind remoteKind) (a, b *instance) {
	args, env := kind.make(t)
	a, b = newInstance(t, ""), newInstance(t, "")
	for _, in := range []*instance{a, b} {
		in.env = append(in.env, env...)
		in.ok(append([]string{"remote", "add", "team"}, args...)...)
	}
	return a, b
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// Two machines on one remote: a version made on one appears on the other
// within seconds and reads back the same; a name made on both at once goes
// to one of them; versions made without a daemon are published too.
func TestTwoMachines(t *testing.T) {
	needFUSE(t)
	for _, kind := range remoteKinds {
		t.Run(kind.name, func(t *testing.T) {
			a, b := machines(t, kind)
			ma, mb := a.mount(""), b.mount("")

			data := make([]byte, 3<<20+17)
			for i := range data {
				data[i] = byte(i * 31 / 7)
			}
			must(t, os.Mkdir(filepath.Join(ma, "iris"), 0o755))
			must(t, os.WriteFile(filepath.Join(ma, "iris/iris.csv"), []byte("a,b\n1,2\n"), 0o644))
			must(t, os.MkdirAll(filepath.Join(ma, "iris/img/0"), 0o755))
			must(t, os.WriteFile(filepath.Join(ma, "iris/img/0/big.bin"), data, 0o644))
			must(t, os.Mkdir(filepath.Join(ma, "iris@v1"), 0o755))

			took := waitFor(t, "iris@v1 on the second machine", 5*time.Second, func() bool {
				_, err := os.Stat(filepath.Join(mb, "iris@v1"))
				return err == nil
			})
			t.Logf("iris@v1 visible on the second machine after %v", took.Round(time.Millisecond))
			got, err := os.ReadFile(filepath.Join(mb, "iris@v1/img/0/big.bin"))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("big.bin on the second machine: %v (same bytes: %v)", err, bytes.Equal(got, data))
			}
			if got, _ := os.ReadFile(filepath.Join(mb, "iris@v1/iris.csv")); string(got) != "a,b\n1,2\n" {
				t.Fatalf("iris.csv on the second machine: %q", got)
			}
			if out := b.ok("versions", "iris"); !strings.Contains(out, "iris@v1") {
				t.Fatalf("versions on the second machine:\n%s", out)
			}

			// The same new name on both machines at once: one wins, the
			// other gets EEXIST, and both then read the winner's.
			// The second machine's working tree of iris starts from the
			// version the first one made.
			if got, err := os.ReadFile(filepath.Join(mb, "iris/iris.csv")); err != nil || string(got) != "a,b\n1,2\n" {
				t.Fatalf("the second machine's working tree of iris: %q %v", got, err)
			}
			must(t, os.WriteFile(filepath.Join(ma, "iris/who"), []byte("a"), 0o644))
			must(t, os.WriteFile(filepath.Join(mb, "iris/who"), []byte("b"), 0o644))
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, m := range []string{ma, mb} {
				wg.Add(1)
				go func() { defer wg.Done(); errs[i] = os.Mkdir(filepath.Join(m, "iris@v2"), 0o755) }()
			}
			wg.Wait()
			won := 0
			for i, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, syscall.EEXIST):
					log, _ := os.ReadFile(filepath.Join([]*instance{a, b}[i].home, "data/mlfs/daemon.log"))
					t.Fatalf("mkdir iris@v2 on machine %d: %v, want success or EEXIST; its daemon's log:\n%s", i, err, log)
				}
			}
			if won != 1 {
				t.Fatalf("mkdir iris@v2 succeeded on %d machines, want 1 (errors %v)", won, errs)
			}
			var seen []string
			for _, m := range []string{ma, mb} {
				waitFor(t, "iris@v2 everywhere", 5*time.Second, func() bool {
					_, err := os.Stat(filepath.Join(m, "iris@v2"))
					return err == nil
				})
				w, err := os.ReadFile(filepath.Join(m, "iris@v2/who"))
				must(t, err)
				seen = append(seen, string(w))
			}
			if seen[0] != seen[1] {
				t.Fatalf("the machines read different iris@v2: %q", seen)
			}

			// A run on the first machine shows on the second, with its
			// metrics and its model, read-only.
			run := filepath.Join(ma, "runs/train-1")
			must(t, os.Mkdir(run, 0o755))
			must(t, os.WriteFile(filepath.Join(run, "params/lr"), []byte("0.01\n"), 0o644))
			must(t, os.WriteFile(filepath.Join(run, "metrics/loss"), []byte("0.9\n0.5\n0.25\n"), 0o644))
			model := data[:1<<20+5]
			must(t, os.WriteFile(filepath.Join(run, "artifacts/model.bin"), model, 0o644))
			must(t, os.WriteFile(filepath.Join(run, "status"), []byte("finished\n"), 0o644))
			took = waitFor(t, "run train-1 on the second machine", 5*time.Second, func() bool {
				out, _, _ := b.run("runs", "--filter", "params.lr = '0.01'")
				return strings.Contains(out, "train-1") && strings.Contains(out, "finished")
			})
			t.Logf("run train-1 visible on the second machine after %v", took.Round(time.Millisecond))
			if out := b.ok("runs", "show", "train-1"); !strings.Contains(out, "loss") || !strings.Contains(out, "0.25") {
				t.Fatalf("runs show train-1 on the second machine:\n%s", out)
			}
			if got, err := os.ReadFile(filepath.Join(mb, "runs/train-1/artifacts/model.bin")); err != nil || !bytes.Equal(got, model) {
				t.Fatalf("the model on the second machine: %v (same bytes: %v)", err, bytes.Equal(got, model))
			}
			if err := os.WriteFile(filepath.Join(mb, "runs/train-1/metrics/loss"), []byte("1\n"), 0o644); !errors.Is(err, syscall.EROFS) {
				t.Fatalf("writing into the imported run: %v, want EROFS", err)
			}

			// Idle, the second machine keeps looking at the remote (it lists
			// the names) but reads no ref it has read before.
			before := remoteCounts(t, b)
			time.Sleep(3 * time.Second)
			after := remoteCounts(t, b)
			if after["list_refs"] <= before["list_refs"] {
				t.Errorf("the idle second machine did not look at the remote in 3 s: %v then %v", before, after)
			}
			if after["get_ref"] != before["get_ref"] || after["get"]+after["get_range"] != before["get"]+before["get_range"] {
				t.Errorf("the idle second machine read refs or objects again: %v then %v", before, after)
			}

			// Without a daemon: add publishes at once; pull records it.
			a.ok("umount", ma)
			src := t.TempDir()
			must(t, os.WriteFile(filepath.Join(src, "x.txt"), []byte("made offline\n"), 0o644))
			a.ok("add", "notes@v1", src)
			out := b.ok("pull")
			if !strings.Contains(out, "pulled from") {
				t.Fatalf("pull: %s", out)
			}
			waitFor(t, "notes@v1 on the second machine", 5*time.Second, func() bool {
				got, err := os.ReadFile(filepath.Join(mb, "notes@v1/x.txt"))
				return err == nil && string(got) == "made offline\n"
			})
		})
	}
}

// A version made before the remote was set up is published by push; a
// name the remote has for other content is reported as a conflict.
func TestPushAfterTheFact(t *testing.T) {
	kind := remoteKinds[0]
	args, env := kind.make(t)
	a, b := newInstance(t, ""), newInstance(t, "")
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("from a\n"), 0o644))
	a.ok("add", "ds@v1", src)
	a.ok("add", "ds@v2", src)
	b.fails("no remote is configured", "push")
	for _, in := range []*instance{a, b} {
		in.env = append(in.env, env...)
		in.ok(append([]string{"remote", "add", "team"}, args...)...)
	}
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("from b\n"), 0o644))
	b.ok("add", "ds@v2", src) // published at once: b's ds@v2 wins the name
	_, errOut, code := a.run("push")
	if code != 1 {
		t.Fatalf("push with a conflict: exit %d, want 1\n%s", code, errOut)
	}
	out, _, _ := a.run("push")
	if !strings.Contains(out, "CONFLICT ds@v2") {
		t.Fatalf("push does not report the conflict on ds@v2:\n%s", out)
	}
	b.ok("pull")
	if out := b.ok("versions", "ds"); !strings.Contains(out, "ds@v1") {
		t.Fatalf("ds@v1 from before the remote is not on b after a's push:\n%s", out)
	}
	dst := t.TempDir()
	b.ok("export", "ds@v1", dst)
	if got, _ := os.ReadFile(filepath.Join(dst, "f")); string(got) != "from a\n" {
		t.Fatalf("ds@v1 on b: %q", got)
	}
	out = a.ok("remote", "ls")
	if !strings.Contains(out, "* ") || !strings.Contains(out, "team") {
		t.Fatalf("remote ls:\n%s", out)
	}
}

// remoteCounts reads the remote's request counts from mlfs status.
func remoteCounts(t *testing.T, in *instance) map[string]int {
	t.Helper()
	out := in.ok("status")
	m := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "remote ") {
			continue
		}
		_, list, ok := strings.Cut(line, "(")
		if !ok {
			t.Fatalf("no request counts in %q", line)
		}
		for _, kv := range strings.Split(strings.TrimSuffix(list, ")"), ", ") {
			var op string
			var n int
			if _, err := fmt.Sscanf(kv, "%s %d", &op, &n); err != nil {
				t.Fatalf("request count %q in %q: %v", kv, line, err)
			}
			m[op] = n
		}
		return m
	}
	t.Fatalf("mlfs status shows no remote:\n%s", out)
	return nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fsck --remote checks the remote's copy: a byte flipped in a pack on the
// remote is found there, while this machine's own copy stays good.
func TestFsckRemoteFindsCorruption(t *testing.T) {
	bucket := t.TempDir()
	a := newInstance(t, "")
	a.ok("remote", "add", "team", "file://"+bucket)
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "weights.bin"), 2<<20)
	a.ok("add", "model@v1", src)
	if out := a.ok("fsck", "--remote"); !strings.Contains(out, ": 0 problems") {
		t.Fatalf("fsck --remote before the damage:\n%s", out)
	}
	var biggest string
	var size int64
	filepath.Walk(filepath.Join(bucket, "objects"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > size {
			biggest, size = p, fi.Size()
		}
		return nil
	})
	if size < 1<<20 {
		t.Fatalf("no pack on the remote holds the file (biggest %d bytes)", size)
	}
	b, err := os.ReadFile(biggest)
	must(t, err)
	b[len(b)/3] ^= 0x40
	os.Chmod(biggest, 0o644)
	must(t, os.WriteFile(biggest, b, 0o644))

	out, _, code := a.run("fsck", "--remote")
	if code != 1 || !strings.Contains(out, "BAD ") {
		t.Fatalf("fsck --remote after the damage: exit %d\n%s", code, out)
	}
	if out := a.ok("fsck"); !strings.Contains(out, ": 0 problems") {
		t.Fatalf("the local copy should be good:\n%s", out)
	}
	// A second machine reading the damaged object gets an error, not the
	// wrong bytes.
	bm := newInstance(t, "")
	bm.ok("remote", "add", "team", "file://"+bucket)
	_, errOut, code := bm.run("export", "model@v1", t.TempDir())
	if code == 0 || !strings.Contains(errOut, "corrupt") {
		t.Fatalf("export of the damaged version on another machine: exit %d, %s", code, errOut)
	}
}

// A machine whose remote is out of reach goes on with what it has: the
// versions it pulled read in full, the others fail naming the remote, a
// snapshot fails with EIO, and all works again once the remote is back.
func TestRemoteOutOfReach(t *testing.T) {
	needFUSE(t)
	bucket := filepath.Join(t.TempDir(), "bucket")
	must(t, os.Mkdir(bucket, 0o755))
	a, b := newInstance(t, ""), newInstance(t, "")
	for _, in := range []*instance{a, b} {
		in.ok("remote", "add", "team", "file://"+bucket)
	}
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "train.bin"), 3<<20)
	a.ok("add", "ds@v1", src)
	writeRandom(t, filepath.Join(src, "train.bin"), 3<<20)
	a.ok("add", "ds@v2", src)
	want, err := os.ReadFile(filepath.Join(src, "train.bin"))
	must(t, err)

	out := b.ok("pull", "ds@v2")
	if !strings.Contains(out, "copied here: ") || strings.Contains(out, "copied here: 0 objects") {
		t.Fatalf("pull ds@v2:\n%s", out)
	}
	must(t, os.Rename(bucket, bucket+".away")) // the share is gone

	dst := t.TempDir()
	b.ok("export", "ds@v2", dst)
	if got, _ := os.ReadFile(filepath.Join(dst, "train.bin")); !bytes.Equal(got, want) {
		t.Fatal("ds@v2, pulled, does not read back offline")
	}
	_, errOut, code := b.run("export", "ds@v1", t.TempDir())
	if code == 0 || !strings.Contains(errOut, "out of reach") {
		t.Fatalf("export of ds@v1 (not pulled) with the remote gone: exit %d, %s", code, errOut)
	}

	mb := b.mount("")
	if got, err := os.ReadFile(filepath.Join(mb, "ds@v2/train.bin")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ds@v2 through the mount, offline: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(mb, "ds/new.txt"), []byte("offline edit\n"), 0o644))
	if err := os.Mkdir(filepath.Join(mb, "ds@v3"), 0o755); !errors.Is(err, syscall.EIO) {
		t.Fatalf("a snapshot with the remote gone: %v, want EIO", err)
	}
	if out := b.ok("status"); !strings.Contains(out, "out of reach") {
		t.Fatalf("mlfs status does not say why:\n%s", out)
	}

	must(t, os.Rename(bucket+".away", bucket)) // back
	waitFor(t, "a snapshot once the remote is back", 15*time.Second, func() bool {
		return os.Mkdir(filepath.Join(mb, "ds@v3"), 0o755) == nil
	})
	a.ok("pull")
	dst = t.TempDir()
	a.ok("export", "ds@v3", dst)
	if got, _ := os.ReadFile(filepath.Join(dst, "new.txt")); string(got) != "offline edit\n" {
		t.Fatalf("ds@v3 on the first machine: %q", got)
	}
}

// A remote that refuses the credentials stops the mount with the reason,
// and the secret is nowhere in what mlfs prints or logs.
func TestWrongCredentials(t *testing.T) {
	needFUSE(t)
	s := emulators.S3(t)
	bucket := s.NewBucket(t)
	in := newInstance(t, "")
	const wrong = "wrong-secret-0123456789"
	in.env = append(in.env, "AWS_ACCESS_KEY_ID="+s.AccessKey, "AWS_SECRET_ACCESS_KEY="+wrong, "AWS_REGION="+s.Region)
	url := "s3://" + bucket + "/team"
	errOut := in.fails("Forbidden", "remote", "add", "team", url, "--endpoint", s.Endpoint, "--path-style")
	// It says what to check, and each layer says what it knows once: the
	// remote's name, then its URL.
	if !strings.HasPrefix(errOut, "mlfs: remote team: "+url+": refused: check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ") ||
		strings.Count(errOut, bucket) != 1 || !strings.Contains(errOut, "AWS_PROFILE") {
		t.Errorf("remote add with a wrong secret:\n%s", errOut)
	}
	// versitygw answers 404 for an unknown access key id: that is not only
	// a missing bucket.
	unknown := newInstance(t, "")
	unknown.env = append(unknown.env, "AWS_ACCESS_KEY_ID=AKIDUNKNOWN0123456789", "AWS_SECRET_ACCESS_KEY="+wrong, "AWS_REGION="+s.Region)
	unknownOut := unknown.fails("no such bucket, or credentials it does not accept: ", "remote", "add", "team", url, "--endpoint", s.Endpoint, "--path-style")
	if !strings.HasPrefix(unknownOut, "mlfs: remote team: "+url+": ") || strings.Count(unknownOut, bucket) != 1 || !strings.Contains(unknownOut, "AWS_ACCESS_KEY_ID") {
		t.Errorf("remote add with an unknown access key id:\n%s", unknownOut)
	}
	in.ok("remote", "add", "team", url, "--endpoint", s.Endpoint, "--path-style", "--no-check")
	_, mountErr, code := in.run("mount", filepath.Join(in.home, "ml"))
	if code == 0 {
		in.run("umount", filepath.Join(in.home, "ml"))
		t.Fatal("mount succeeded with credentials the remote refuses")
	}
	t.Logf("remote add, wrong secret: %s", errOut)
	t.Logf("remote add, unknown key: %s", unknownOut)
	t.Logf("mount: %s", mountErr)
	log, _ := os.ReadFile(filepath.Join(in.home, "data/mlfs/daemon.log"))
	for what, text := range map[string]string{"remote add": errOut + unknownOut, "mount": mountErr, "the daemon log": string(log)} {
		if strings.Contains(text, wrong) {
			t.Errorf("%s shows the secret: %s", what, text)
		}
	}
	if !strings.Contains(mountErr+string(log), "Forbidden") || !strings.Contains(mountErr, "check the credentials (AWS_ACCESS_KEY_ID") {
		t.Errorf("the mount's failure does not say why:\n%s\n%s", mountErr, log)
	}
}

// A bucket name that its cloud would refuse is named at once, with the
// rule, instead of ending in a DNS error; nothing is written.
func TestRemoteBadBucketName(t *testing.T) {
	in := newInstance(t, "")
	for url, want := range map[string]string{
		"s3://Bad_Bucket!/x":   `mlfs: remote s3://Bad_Bucket!/x: bucket name "Bad_Bucket!": S3 takes 3 to 63 lowercase letters`,
		"gs://ab/x":            `bucket name "ab": GCS takes`,
		"az://ml--data/x":      `container name "ml--data": Azure takes`,
		"s3://localhost:9000/": "goes in the endpoint",
	} {
		in.fails(want, "remote", "add", "team", url)
	}
	if out := in.ok("remote", "ls"); !strings.Contains(out, "no remotes") {
		t.Fatalf("remote ls after refused adds:\n%s", out)
	}
}

// A pull says what is new: the versions, not the refs of runs (a live run
// on another machine publishes a new one every few seconds), and a pull
// with nothing new says so.
func TestPullSaysWhatIsNew(t *testing.T) {
	needFUSE(t)
	bucket := t.TempDir()
	a, b := newInstance(t, ""), newInstance(t, "")
	for _, in := range []*instance{a, b} {
		in.ok("remote", "add", "team", "file://"+bucket)
	}
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("x\n"), 0o644))
	a.ok("add", "ds@v1", src)
	if out := b.ok("pull"); !strings.Contains(out, ": 1 new version\n") {
		t.Fatalf("the first pull:\n%s", out)
	}
	if out := b.ok("pull"); !strings.Contains(out, ": nothing new\n") {
		t.Fatalf("a second pull, with nothing new:\n%s", out)
	}

	// A run goes on on a: each change is published under a new ref.
	run := filepath.Join(a.mount(""), "runs/train-1")
	must(t, os.Mkdir(run, 0o755))
	runRefs := filepath.Join(bucket, "refs/runs/train-1")
	for i := 1; i <= 2; i++ {
		must(t, os.WriteFile(filepath.Join(run, "metrics/loss"), []byte(strings.Repeat("0.5\n", i)), 0o644))
		waitFor(t, fmt.Sprintf("publish %d of the run", i), 20*time.Second, func() bool {
			_, err := os.Stat(filepath.Join(runRefs, fmt.Sprintf("%010d", i)))
			return err == nil
		})
		if out := b.ok("pull"); !strings.Contains(out, ": nothing new\n") {
			t.Fatalf("a pull after publish %d of a run (no new version; b has no daemon to import runs):\n%s", i, out)
		}
	}
}

// Removing the remote the daemon uses says that it is now unset, and
// leaves a config that names no removed remote; removing another says
// nothing.
func TestRemoteRmDaemonsRemote(t *testing.T) {
	in := newInstance(t, "")
	in.ok("remote", "add", "team", "file://"+t.TempDir())
	in.ok("remote", "add", "lab", "file://"+t.TempDir())
	out := in.ok("remote", "rm", "team")
	if !strings.Contains(out, "removed team, the remote the daemon uses: no remote is set now") || !strings.Contains(out, `remote = "lab"`) {
		t.Fatalf("remote rm of the daemon's remote:\n%s", out)
	}
	cfg, err := os.ReadFile(filepath.Join(in.home, "config/mlfs/config.toml"))
	must(t, err)
	if strings.Contains(string(cfg), "remote = ") {
		t.Fatalf("the config still sets a remote after its removal:\n%s", cfg)
	}
	if out := in.ok("remote", "ls"); strings.Contains(out, "*") || !strings.Contains(out, "lab") {
		t.Fatalf("remote ls after rm:\n%s", out)
	}
	in.fails("no remote is configured", "push")
	if out := in.ok("remote", "rm", "lab"); out != "" {
		t.Fatalf("remote rm of a remote the daemon does not use: %q, want nothing", out)
	}
	in.fails("no remote team", "remote", "rm", "team")
}
