package fs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/index"
	"github.com/mlfs/mlfs/index/memkv"
	"github.com/mlfs/mlfs/repo"
	"github.com/mlfs/mlfs/tracking"
	"github.com/mlfs/mlfs/worktree"
)

// mountRuns serves r with run tracking under a temp dir until the test
// ends, and returns the mount and its tracker.
func mountRuns(t *testing.T, r *repo.Repo, killedAfter time.Duration) (string, *tracking.Tracker) {
	t.Helper()
	dir, runs, stop := mountRunsOn(t, r, memkv.New(), t.TempDir(), killedAfter)
	t.Cleanup(stop)
	return dir, runs
}

// mountRunsOn mounts r with runs kept in kv and dataDir; stop unmounts
// and closes the tracker.
func mountRunsOn(t *testing.T, r *repo.Repo, kv index.KV, dataDir string, killedAfter time.Duration) (string, *tracking.Tracker, func()) {
	t.Helper()
	return mountRunsWith(t, r, kv, dataDir, tracking.Options{KilledAfter: killedAfter})
}

// mountRunsWith is mountRunsOn with the tracker's options (their store,
// index, folders and log filled in).
func mountRunsWith(t *testing.T, r *repo.Repo, kv index.KV, dataDir string, opt tracking.Options) (string, *tracking.Tracker, func()) {
	t.Helper()
	canMount(t)
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	work := worktree.NewSet(kv, filepath.Join(dataDir, "work"), r, r.Store(), log)
	opt.KV, opt.DataDir, opt.Repo, opt.Objects, opt.Log = kv, filepath.Join(dataDir, "runs"), r, r.Store(), log
	runs, err := tracking.Open(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	root := New(Options{Repo: r, Objects: r.Store(), Work: work, Runs: runs, Log: log})
	server, err := Mount(dir, root, MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	return dir, runs, func() {
		if stopped {
			return
		}
		stopped = true
		if err := server.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		runs.Close()
	}
}

// sh runs script in dir. The shell changes into dir itself: a child
// that does so between fork and exec (cmd.Dir) can deadlock a process that
// serves the mount, as the forking thread cannot be stopped for the
// collector while the child waits on this very mount.
func sh(t *testing.T, dir, script string, env ...string) string {
	t.Helper()
	cmd := exec.Command("sh", "-ec", `cd "$0"; `+script, dir)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sh -c %q: %v\n%s", script, err, out)
	}
	return string(out)
}

// info waits until cond holds for the run's record, at most 2 s: what a
// program writes is visible within a second.
func info(t *testing.T, runs *tracking.Tracker, id string, cond func(*tracking.Info) bool) *tracking.Info {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		r, err := runs.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		in := r.Info()
		if cond(in) {
			return in
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(in, "", " ")
			t.Fatalf("run %s not as expected within 2s:\n%s", id, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A run logged from a shell loop: params, tags, metric lines, status.
func TestRunFromShell(t *testing.T) {
	mnt, runs := mountRuns(t, repo.TestRepo(t), 0)
	run := filepath.Join(mnt, "runs", "r1")
	must(t, os.Mkdir(run, 0o755))
	for _, d := range []string{"params", "metrics", "tags", "artifacts"} {
		if fi, err := os.Stat(filepath.Join(run, d)); err != nil || !fi.IsDir() {
			t.Fatalf("%s/ missing in a new run: %v", d, err)
		}
	}
	sh(t, run, `
echo 0.01 > params/lr
echo svm > params/model
echo iris > tags/experiment
i=0; while [ $i -lt 50 ]; do echo "$i 0.$((99 - i))" >> metrics/loss; i=$((i+1)); done
mkdir -p metrics/train
echo 0.5 >> metrics/train/acc
echo 0.75 >> metrics/train/acc
`)
	in := info(t, runs, "r1", func(in *tracking.Info) bool {
		return in.Metrics["loss"].Count == 50 && in.Metrics["train/acc"].Count == 2
	})
	if in.Params["lr"] != "0.01" || in.Params["model"] != "svm" || in.Experiment != "iris" || in.Status != "running" {
		t.Fatalf("record: %+v", in)
	}
	if m := in.Metrics["loss"]; m.LastStep != 49 || float64(m.Last) != 0.50 || float64(m.Min) != 0.50 || float64(m.Max) != 0.99 {
		t.Fatalf("loss summary %+v", m)
	}
	if m := in.Metrics["train/acc"]; m.LastStep != 1 || float64(m.Last) != 0.75 {
		t.Fatalf("train/acc: steps from 0 when missing: %+v", m)
	}
	lines := strings.Count(readFile(t, filepath.Join(run, "metrics/loss")), "\n")
	if lines != 50 {
		t.Fatalf("metrics/loss reads back %d lines", lines)
	}
	if got := readFile(t, filepath.Join(run, "status")); got != "running\n" {
		t.Fatalf("status reads %q", got)
	}
	sh(t, run, `echo finished > status`)
	if got := readFile(t, filepath.Join(run, "status")); got != "finished\n" {
		t.Fatalf("status after finishing reads %q", got)
	}
	var meta struct {
		ID, Status, Experiment string
		End                    string `json:"end_time"`
	}
	must(t, json.Unmarshal([]byte(readFile(t, filepath.Join(run, "meta.json"))), &meta))
	if meta.ID != "r1" || meta.Status != "finished" || meta.End == "" || meta.Experiment != "iris" {
		t.Fatalf("meta.json: %+v", meta)
	}
	var sum struct {
		Params  map[string]string
		Metrics map[string]tracking.Metric
	}
	must(t, json.Unmarshal([]byte(readFile(t, filepath.Join(run, "summary.json"))), &sum))
	if sum.Params["model"] != "svm" || sum.Metrics["loss"].Count != 50 {
		t.Fatalf("summary.json: %+v", sum)
	}
	if err := os.WriteFile(filepath.Join(run, "status"), []byte("done\n"), 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("writing a bad status: %v, want EINVAL", err)
	}
	for _, f := range []string{"meta.json", "summary.json", "errors"} {
		if err := os.WriteFile(filepath.Join(run, f), []byte("x"), 0); err == nil {
			t.Fatalf("%s is writable", f)
		}
		// Unlink gives way (rm -rf goes on) and changes nothing.
		must(t, os.Remove(filepath.Join(run, f)))
		if _, err := os.Stat(filepath.Join(run, f)); err != nil {
			t.Fatalf("%s after unlink: %v", f, err)
		}
	}
	// A status written in two writes, without a newline, is set at close.
	sf, err := os.OpenFile(filepath.Join(run, "status"), os.O_WRONLY|os.O_TRUNC, 0)
	must(t, err)
	sf.WriteString("runn")
	sf.WriteString("ing")
	must(t, sf.Close())
	if got := readFile(t, filepath.Join(run, "status")); got != "running\n" {
		t.Fatalf("status after two writes reads %q", got)
	}
	ents, err := os.ReadDir(run)
	must(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "artifacts errors meta.json metrics params status summary.json tags" {
		t.Fatalf("run folder lists %q", got)
	}
}

func TestRunNames(t *testing.T) {
	mnt, runs_ := mountRuns(t, repo.TestRepo(t), 0)
	runs := filepath.Join(mnt, "runs")
	for _, bad := range []string{".hidden", "-x", "a b", strings.Repeat("a", 257), "é"} {
		if err := os.Mkdir(filepath.Join(runs, bad), 0o755); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("mkdir runs/%q: %v, want EINVAL", bad, err)
		}
	}
	must(t, os.Mkdir(filepath.Join(runs, "ok-1.2_x"), 0o755))
	if err := os.Mkdir(filepath.Join(runs, "ok-1.2_x"), 0o755); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("second mkdir: %v, want EEXIST", err)
	}
	must(t, os.WriteFile(filepath.Join(runs, "ok-1.2_x/params/p"), []byte("1"), 0o644))
	if err := os.Remove(filepath.Join(runs, "ok-1.2_x")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("rmdir of a run with files: %v, want ENOTEMPTY", err)
	}
	ents, _ := os.ReadDir(runs)
	if len(ents) != 1 || ents[0].Name() != "ok-1.2_x" {
		t.Fatalf("runs/ lists %v", ents)
	}
	// rm -rf of a run folder removes the run, as mlfs runs rm does.
	must(t, os.Mkdir(filepath.Join(runs, "gone"), 0o755))
	sh(t, runs, "echo 1 >> gone/metrics/m; echo x > gone/tags/t; rm -rf gone")
	if _, err := os.Stat(filepath.Join(runs, "gone")); !os.IsNotExist(err) {
		t.Fatalf("after rm -rf: %v", err)
	}
	if _, err := runs_.Get(context.Background(), "gone"); !errors.Is(err, tracking.ErrNoRun) {
		t.Fatalf("the tracker still has the removed run: %v", err)
	}
	// A bad metric key is reported, not indexed.
	must(t, os.WriteFile(filepath.Join(runs, "ok-1.2_x/metrics/a..b"), []byte("1\n"), 0o644))
	waitFor(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(runs, "ok-1.2_x/errors"))
		return strings.Contains(string(b), "metrics/a..b")
	})
}

// Python writes the JSON lines, a Lightning-shaped metrics.csv and
// nested params; bad lines land in errors and the rest is indexed.
func TestRunFormatsFromPython(t *testing.T) {
	mnt, runs := mountRuns(t, repo.TestRepo(t), 0)
	run := filepath.Join(mnt, "runs", "py")
	must(t, os.Mkdir(run, 0o755))
	script := `
import csv, json, os, sys
run = sys.argv[1]
with open(os.path.join(run, "metrics.jsonl"), "a") as f:
    for step in range(20):
        f.write(json.dumps({"step": step, "loss": 1.0 / (step + 1), "acc": step / 20}) + "\n")
        f.flush()
    f.write("not json\n")
    f.write(json.dumps({"epoch": 99, "loss": 0.01}) + "\r\n")
with open(os.path.join(run, "metrics.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["epoch", "step", "train_loss", "val_acc"])
    for step in range(10):
        w.writerow([step // 5, step, 0.5 - step * 0.01, ""])
        if step % 5 == 4:
            w.writerow([step // 5, step, "", 0.8 + step * 0.01])
    w.writerow([2, 10, "oops", ""])
with open(os.path.join(run, "params.json"), "w") as f:
    json.dump({"model": {"name": "svm", "C": 1.5}, "seed": 7}, f)
with open(os.path.join(run, "params.yaml"), "w") as f:
    f.write("optimizer:\n  name: adam\n  betas: [0.9, 0.999]\n")
# A checkpoint saved as torch.save does, through a temp file and os.replace.
import pickle
model = {"weights": list(range(100000)), "bias": 0.5}
tmp = os.path.join(run, "artifacts", "model.pkl.tmp")
with open(tmp, "wb") as f:
    pickle.dump(model, f)
os.replace(tmp, os.path.join(run, "artifacts", "model.pkl"))
with open(os.path.join(run, "artifacts", "model.pkl"), "rb") as f:
    assert pickle.load(f) == model
`
	py := exec.Command(python(t), "-c", script, run)
	if out, err := py.CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	in := info(t, runs, "py", func(in *tracking.Info) bool {
		return in.Metrics["loss"].Count == 21 && in.Metrics["val_acc"].Count == 2 && in.Params["optimizer.name"] == "adam"
	})
	if m := in.Metrics["loss"]; m.LastStep != 99 || float64(m.Last) != 0.01 {
		t.Fatalf("loss from jsonl with epoch as step: %+v", m)
	}
	if m := in.Metrics["train_loss"]; m.Count != 10 || m.LastStep != 9 {
		t.Fatalf("train_loss from csv: %+v", m)
	}
	if m := in.Metrics["val_acc"]; m.LastStep != 9 || float64(m.Last) != 0.89 {
		t.Fatalf("val_acc from csv (empty cells skipped): %+v", m)
	}
	if in.Params["model.name"] != "svm" || in.Params["model.C"] != "1.5" || in.Params["seed"] != "7" || in.Params["optimizer.betas"] != "[0.9,0.999]" {
		t.Fatalf("params: %v", in.Params)
	}
	errs := readFile(t, filepath.Join(run, "errors"))
	if !strings.Contains(errs, "metrics.jsonl:21:") || !strings.Contains(errs, "metrics.csv:") || !strings.Contains(errs, "train_loss") {
		t.Fatalf("errors file:\n%s", errs)
	}
	if b := readFile(t, filepath.Join(run, "metrics.jsonl")); !strings.Contains(b, "not json\n") {
		t.Fatal("a bad line is not kept in the file")
	}
	// The checkpoint is stored and reads back, now from the store.
	waitForLong(t, 10*time.Second, func() bool {
		d, err := tracking.Live{T: runs}.Show(context.Background(), "py")
		return err == nil && len(d.Artifacts) == 1 && d.Artifacts[0].ID != "" && d.Artifacts[0].Path == "artifacts/model.pkl"
	})
	check := exec.Command(python(t), "-c", `
import pickle, sys
with open(sys.argv[1], "rb") as f:
    m = pickle.load(f)
assert m["weights"][-1] == 99999 and m["bias"] == 0.5
`, filepath.Join(run, "artifacts", "model.pkl"))
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("the stored checkpoint does not unpickle: %v\n%s", err, out)
	}
}

// Lines split across writes, appends from two processes at once, a
// rewrite from the start, and a line of several MiB.
func TestRunStreams(t *testing.T) {
	mnt, runs := mountRuns(t, repo.TestRepo(t), 0)
	run := filepath.Join(mnt, "runs", "s")
	must(t, os.Mkdir(run, 0o755))

	f, err := os.OpenFile(filepath.Join(run, "metrics/split"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(t, err)
	for _, part := range []string{"3 0.", "25\n4", " 0.5", "\n"} {
		_, err := f.WriteString(part)
		must(t, err)
		time.Sleep(30 * time.Millisecond) // each its own FUSE write, parsed apart
	}
	must(t, f.Close())
	in := info(t, runs, "s", func(in *tracking.Info) bool { return in.Metrics["split"].Count == 2 })
	if m := in.Metrics["split"]; float64(m.Min) != 0.25 || float64(m.Max) != 0.5 || m.LastStep != 4 {
		t.Fatalf("split lines: %+v", m)
	}

	// Two processes appending with O_APPEND, as the ranks of one job.
	sh(t, run, `
( i=0; while [ $i -lt 300 ]; do echo "$i 1" >> metrics/ranks; i=$((i+1)); done ) &
( i=0; while [ $i -lt 300 ]; do echo "$i 2" >> metrics/ranks; i=$((i+1)); done ) &
wait`)
	info(t, runs, "s", func(in *tracking.Info) bool { return in.Metrics["ranks"].Count == 600 })
	for _, l := range strings.Split(strings.TrimSpace(readFile(t, filepath.Join(run, "metrics/ranks"))), "\n") {
		if !strings.HasSuffix(l, " 1") && !strings.HasSuffix(l, " 2") {
			t.Fatalf("interleaved line %q", l)
		}
	}

	// Truncated and rewritten: parsed again from the start.
	must(t, os.WriteFile(filepath.Join(run, "metrics/split"), []byte("0 9\n1 8\n2 7\n"), 0o644))
	info(t, runs, "s", func(in *tracking.Info) bool {
		m := in.Metrics["split"]
		return m.Count == 3 && float64(m.Min) == 7 && float64(m.Max) == 9
	})

	// A 5 MiB line: reported, skipped, the lines around it indexed.
	f, err = os.OpenFile(filepath.Join(run, "metrics/long"), os.O_CREATE|os.O_WRONLY, 0o644)
	must(t, err)
	f.WriteString("0 1\n")
	f.Write(bytes.Repeat([]byte("7"), 5<<20))
	f.WriteString("\n2 3\n")
	must(t, f.Close())
	in = info(t, runs, "s", func(in *tracking.Info) bool { return in.Metrics["long"].Count == 2 })
	if !strings.Contains(readFile(t, filepath.Join(run, "errors")), "metrics/long:2:") {
		t.Fatal("the long line is not in errors")
	}
	if fi, _ := os.Stat(filepath.Join(run, "metrics/long")); fi.Size() != 5<<20+9 {
		t.Fatalf("metrics/long holds %d bytes", fi.Size())
	}
}

// A process with MLFS_RUN set that reads a version is recorded in the
// run's meta.json.
func TestLineage(t *testing.T) {
	r := repo.TestRepo(t)
	add(t, r, "ds@v1", sampleTree(t))
	mnt, runs := mountRuns(t, r, 0)
	must(t, os.Mkdir(filepath.Join(mnt, "runs", "train1"), 0o755))
	sh(t, mnt, `cat ds@v1/train/labels.csv > /dev/null`, "MLFS_RUN=train1")
	sh(t, mnt, `cat ds@v1/run.sh > /dev/null`) // no MLFS_RUN: not recorded
	in := info(t, runs, "train1", func(in *tracking.Info) bool { return len(in.Datasets) > 0 })
	if len(in.Datasets) != 1 || in.Datasets[0].Ref != "ds@v1" || len(in.Datasets[0].ID) != 64 {
		t.Fatalf("datasets: %+v", in.Datasets)
	}
	if !strings.Contains(readFile(t, filepath.Join(mnt, "runs/train1/meta.json")), `"ref": "ds@v1"`) {
		t.Fatal("meta.json does not list ds@v1")
	}
}

// A run whose writer died is marked killed after the configured time.
func TestKilledRun(t *testing.T) {
	mnt, runs := mountRuns(t, repo.TestRepo(t), 1500*time.Millisecond)
	run := filepath.Join(mnt, "runs", "k")
	must(t, os.Mkdir(run, 0o755))
	cmd := exec.Command("sh", "-c", `cd "$0" && echo 1 >> metrics/x && exec sleep 60`, run)
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill() })
	time.Sleep(2500 * time.Millisecond)
	if s := runs.Infos()[0].Status; s != "running" {
		t.Fatalf("status %s while its writer lives", s)
	}
	// The writer was sh (echo is a builtin), now sleep: it still lives.
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for runs.Infos()[0].Status != "killed" {
		if time.Now().After(deadline) {
			t.Fatalf("status %s 10s after its writer died", runs.Infos()[0].Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := readFile(t, filepath.Join(run, "status")); got != "killed\n" {
		t.Fatalf("status file reads %q", got)
	}
	sh(t, run, "echo 2 >> metrics/x")
	info(t, runs, "k", func(in *tracking.Info) bool { return in.Status == "running" })
}

// Checkpoints: ten saves of a model that changes 5% each cost about 1.5
// models in the store; every way of saving reads back what was saved.
func TestArtifacts(t *testing.T) {
	r := repo.TestRepo(t)
	mnt, runs := mountRuns(t, r, 0)
	run := filepath.Join(mnt, "runs", "ckpt")
	must(t, os.Mkdir(run, 0o755))
	const size = 8 << 20
	model := randomBytes(size, 1)
	before := storeBytes(t, r)
	for i := 0; i < 10; i++ {
		// Change 5% of the model, in one place, as a fine-tuned layer.
		copy(model[i*size/20:], randomBytes(size/20, uint64(100+i)))
		path := filepath.Join(run, "artifacts", fmt.Sprintf("model-%d.pt", i))
		switch i % 3 {
		case 0: // a new file
			must(t, os.WriteFile(path, model, 0o644))
		case 1: // through a temp file and os.replace
			tmp := filepath.Join(run, "artifacts", ".tmp")
			must(t, os.WriteFile(tmp, model, 0o644))
			must(t, os.Rename(tmp, path))
		case 2: // saved twice to the same name
			must(t, os.WriteFile(path, model[:size/2], 0o644))
			must(t, os.WriteFile(path, model, 0o644))
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, model) {
			t.Fatalf("checkpoint %d reads back wrong (%v)", i, err)
		}
	}
	// Wait until every checkpoint is stored (the storer runs after close).
	rr, _ := runs.Get(context.Background(), "ckpt")
	waitForLong(t, 20*time.Second, func() bool {
		d, err := tracking.Live{T: runs}.Show(context.Background(), "ckpt")
		if err != nil {
			return false
		}
		n := 0
		for _, a := range d.Artifacts {
			if a.ID != "" {
				n++
			}
		}
		return n == 10
	})
	_ = rr
	grown := storeBytes(t, r) - before
	ratio := float64(grown) / size
	t.Logf("10 checkpoints of %d MiB, 5%% changed each: the store grew %.2f models", size>>20, ratio)
	if ratio > 2.0 {
		t.Fatalf("10 checkpoints cost %.2f models in the store, want about 1.5", ratio)
	}
	got, err := os.ReadFile(filepath.Join(run, "artifacts/model-9.pt"))
	if err != nil || !bytes.Equal(got, model) {
		t.Fatalf("a stored checkpoint reads back wrong (%v)", err)
	}
	// A file saved elsewhere in the run and moved into artifacts/ is
	// stored too.
	must(t, os.WriteFile(filepath.Join(run, "best.tmp"), model[:size/4], 0o644))
	must(t, os.Rename(filepath.Join(run, "best.tmp"), filepath.Join(run, "artifacts/best.pt")))
	waitForLong(t, 20*time.Second, func() bool {
		d, err := tracking.Live{T: runs}.Show(context.Background(), "ckpt")
		if err != nil {
			return false
		}
		for _, a := range d.Artifacts {
			if a.Path == "artifacts/best.pt" {
				return a.ID != ""
			}
		}
		return false
	})
}

func waitForLong(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func storeBytes(t *testing.T, r *repo.Repo) int64 {
	t.Helper()
	var n int64
	must(t, r.Store().List(context.Background(), func(_ cas.ID, size int64) error { n += size; return nil }))
	return n
}

// A TensorBoard-style writer keeps one file open and flushes records
// while another process tails it by offset: the tailer sees every
// flushed byte, and each append costs only its bytes.
func TestTailWhileWriting(t *testing.T) {
	mnt, runs := mountRuns(t, repo.TestRepo(t), 0)
	run := filepath.Join(mnt, "runs", "tb")
	must(t, os.Mkdir(run, 0o755))
	path := filepath.Join(run, "metrics/loss")
	w, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(t, err)
	defer w.Close()
	rd, err := os.Open(path)
	must(t, err)
	defer rd.Close()
	var seen []byte
	var want bytes.Buffer
	for step := 0; step < 200; step++ {
		rec := fmt.Sprintf("%d %g\n", step, 1/float64(step+1))
		want.WriteString(rec)
		_, err := w.WriteString(rec)
		must(t, err)
		if step%10 == 9 {
			must(t, w.Sync())
			buf := make([]byte, 64<<10)
			for {
				n, err := rd.ReadAt(buf, int64(len(seen)))
				seen = append(seen, buf[:n]...)
				if n == 0 || err != nil {
					break
				}
			}
			if !bytes.Equal(seen, want.Bytes()) {
				t.Fatalf("after step %d the tailer saw %d bytes, want %d", step, len(seen), want.Len())
			}
		}
	}
	info(t, runs, "tb", func(in *tracking.Info) bool { return in.Metrics["loss"].Count == 200 })
	// Each append cost only its own bytes: the parser read the file once.
	if st := runs.Stats(); st.BytesRead != int64(want.Len()) {
		t.Fatalf("parsing %d bytes of appends read %d bytes", want.Len(), st.BytesRead)
	}

	// A writer killed with SIGKILL loses nothing it flushed.
	py := exec.Command(python(t), "-c", `
import os, sys, time
with open(sys.argv[1], "a") as f:
    for step in range(1000):
        f.write("%d %f\n" % (step, 1.0 / (step + 1)))
        if step % 100 == 99:
            f.flush()
    print("flushed", flush=True)
    f.write("999999 1\n")  # buffered, never flushed
    time.sleep(60)
`, filepath.Join(run, "metrics/killed"))
	out, err := py.StdoutPipe()
	must(t, err)
	must(t, py.Start())
	line := make([]byte, 8)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "flushed\n" {
		t.Fatalf("python: %q %v", line, err)
	}
	py.Process.Kill()
	py.Wait()
	in := info(t, runs, "tb", func(in *tracking.Info) bool { return in.Metrics["killed"].Count == 1000 })
	if m := in.Metrics["killed"]; m.LastStep != 999 {
		t.Fatalf("after the writer's kill -9: %+v", m)
	}
}

// A new daemon carries on where the last one stopped: records, errors,
// implicit steps and artifacts left unstored.
func TestRunsAcrossRestart(t *testing.T) {
	r := repo.TestRepo(t)
	kv, data := memkv.New(), t.TempDir()
	mnt, runs, stop := mountRunsOn(t, r, kv, data, 0)
	run := filepath.Join(mnt, "runs", "again")
	must(t, os.Mkdir(run, 0o755))
	sh(t, run, `printf '0.5\n0.4\nbad\n' >> metrics/loss; echo 3 > params/depth`)
	info(t, runs, "again", func(in *tracking.Info) bool { return in.Metrics["loss"].Count == 2 && in.Errors == 1 })
	stop()

	mnt, runs, stop = mountRunsOn(t, r, kv, data, 0)
	defer stop()
	run = filepath.Join(mnt, "runs", "again")
	in := info(t, runs, "again", func(in *tracking.Info) bool { return true })
	if in.Metrics["loss"].Count != 2 || in.Params["depth"] != "3" || in.Errors != 1 {
		t.Fatalf("after a restart: %+v", in)
	}
	if !strings.Contains(readFile(t, filepath.Join(run, "errors")), "metrics/loss:3:") {
		t.Fatal("errors lost in the restart")
	}
	sh(t, run, `echo 0.3 >> metrics/loss`)
	in = info(t, runs, "again", func(in *tracking.Info) bool { return in.Metrics["loss"].Count == 3 })
	if m := in.Metrics["loss"]; m.LastStep != 2 || float64(m.Last) != 0.3 {
		t.Fatalf("the implicit step did not carry on: %+v", m)
	}
	hist, err := tracking.Live{T: runs}.History(context.Background(), "again", "loss", 10)
	if err != nil || len(hist) != 3 || float64(hist[0].Min) != 0.5 || hist[2].LastStep != 2 {
		t.Fatalf("history after a restart: %+v %v", hist, err)
	}
}

// A flood of bad lines is counted in full; the errors file lists the
// first of each file and says how many more there were.
func TestRunErrorFlood(t *testing.T) {
	mnt, runs := mountRuns(t, repo.TestRepo(t), 0)
	run := filepath.Join(mnt, "runs", "flood")
	must(t, os.Mkdir(run, 0o755))
	sh(t, run, `i=0; while [ $i -lt 150 ]; do echo "x$i"; i=$((i+1)); done > metrics/bad; echo "nope" > metrics/other`)
	in := info(t, runs, "flood", func(in *tracking.Info) bool { return in.Errors == 151 })
	_ = in
	lines := strings.Split(strings.TrimSpace(readFile(t, filepath.Join(run, "errors"))), "\n")
	if len(lines) != 102 || lines[100] != "metrics/other:1: \"nope\": not a number" || lines[101] != "metrics/bad: 50 more rejected lines, not listed" {
		t.Fatalf("errors file: %d lines, ending %q", len(lines), lines[max(len(lines)-2, 0):])
	}
}

// runs/ has the time of its last change: the run made in it, not 1970.
func TestRunsFolderTime(t *testing.T) {
	mnt, _ := mountRuns(t, repo.TestRepo(t), 0)
	runs := filepath.Join(mnt, "runs")
	before := time.Now()
	must(t, os.Mkdir(filepath.Join(runs, "r1"), 0o755))
	fi, err := os.Stat(runs) // the kernel asks again after a mkdir in it
	must(t, err)
	if fi.ModTime().Before(before) {
		t.Fatalf("runs/ after a run was made in it: mtime %v, want at least %v", fi.ModTime(), before)
	}
}
