package fs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/index/memkv"
	"github.com/mlfs/mlfs/repo"
	"github.com/mlfs/mlfs/tracking"
	"github.com/mlfs/mlfs/worktree"
)

// machine is one of several daemons sharing a store, as machines share a
// remote: its own index, run folders and mount.
type machine struct {
	mnt  string
	runs *tracking.Tracker
	repo *repo.Repo
	kv   *memkv.KV
	data string
	opt  tracking.Options
	stop func()
}

// newMachine mounts a machine on store st (kept in storeDir) that
// publishes and imports runs every `every`.
func newMachine(t *testing.T, st cas.Store, storeDir string, every time.Duration) *machine {
	t.Helper()
	kv := memkv.New()
	r := repo.New(st, kv, filepath.Join(storeDir, "lock"), nil)
	// As the daemon does: gc keeps what run folders read from the store.
	r.AddRoots("working trees", worktree.Roots(kv))
	m := &machine{repo: r, kv: kv, data: t.TempDir(), opt: tracking.Options{Publish: true, Import: true, ShareEvery: every}}
	m.start(t)
	t.Cleanup(func() { m.stop() })
	return m
}

func (m *machine) start(t *testing.T) {
	t.Helper()
	m.mnt, m.runs, m.stop = mountRunsWith(t, m.repo, m.kv, m.data, m.opt)
}

func (m *machine) share(t *testing.T) tracking.Shared {
	t.Helper()
	n, err := m.runs.Share(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// refs lists the refs of run id in the store.
func refs(t *testing.T, st cas.Store, id string) map[string]cas.ID {
	t.Helper()
	out := map[string]cas.ID{}
	must(t, st.ListRefs(context.Background(), "runs/"+id+"/", func(name string, v cas.ID) error { out[name] = v; return nil }))
	return out
}

// onlyRef returns the one ref of run id and its version.
func onlyRef(t *testing.T, st cas.Store, id string) (string, *object.Version) {
	t.Helper()
	rs := refs(t, st, id)
	if len(rs) != 1 {
		t.Fatalf("run %s has refs %v, want one", id, rs)
	}
	for name, vid := range rs {
		raw, err := st.Get(context.Background(), vid)
		must(t, err)
		v, err := object.DecodeVersion(raw)
		must(t, err)
		return name, v
	}
	panic("unreachable")
}

func search(t *testing.T, runs *tracking.Tracker, filter string) []*tracking.Info {
	t.Helper()
	res, err := tracking.Live{T: runs}.Search(context.Background(), tracking.SearchRequest{Filter: filter})
	must(t, err)
	return res.Runs
}

func points(t *testing.T, runs *tracking.Tracker, id, metric string) int64 {
	t.Helper()
	bs, err := tracking.Live{T: runs}.History(context.Background(), id, metric, 1000)
	must(t, err)
	var n int64
	for _, b := range bs {
		n += b.Count
	}
	return n
}

// A run a shell loop writes on one machine appears on the other within a
// few seconds, by the periodic publish and import alone, in every format,
// with its lineage; Share brings later writes over at once.
func TestRunsAcrossMachines(t *testing.T) {
	storeDir := t.TempDir()
	st := repo.TestStore(t, storeDir)
	a := newMachine(t, st, storeDir, 0) // the default period
	b := newMachine(t, st, storeDir, 0)
	add(t, a.repo, "iris@v1", sampleTree(t))

	must(t, os.Mkdir(filepath.Join(a.mnt, "runs", "r1"), 0o755))
	sh(t, a.mnt, `cat iris@v1/train/labels.csv > /dev/null`, "MLFS_RUN=r1")
	start := time.Now()
	sh(t, filepath.Join(a.mnt, "runs", "r1"), `
echo 0.01 > params/lr
echo '{"model": {"name": "svm"}}' > params.json
echo iris > tags/experiment
i=0; while [ $i -lt 100 ]; do echo "$i 0.$((99 - i))" >> metrics/loss; i=$((i+1)); done
i=0; while [ $i -lt 10 ]; do echo "{\"step\": $i, \"acc\": 0.$i}" >> metrics.jsonl; i=$((i+1)); done
printf 'step,val\n0,1.5\n1,2.5\n' > metrics.csv
echo 'not a number' >> metrics/bad
`)
	var got *tracking.Info
	waitForLong(t, 6*time.Second, func() bool {
		found := search(t, b.runs, "params.lr = '0.01' and tags.experiment = 'iris' and metrics.loss < 0.5")
		if len(found) == 1 && found[0].Metrics["loss"].Count == 100 && found[0].Metrics["acc"].Count == 10 {
			got = found[0]
			return true
		}
		return false
	})
	t.Logf("the run reached the other machine %v after its writes", time.Since(start).Round(10*time.Millisecond))
	if got.ID != "r1" || got.Status != tracking.Running || got.Params["model.name"] != "svm" || got.Metrics["val"].Count != 2 ||
		got.Host == "" || got.Start == 0 || got.Errors != 1 || len(got.Datasets) != 1 || got.Datasets[0].Ref != "iris@v1" {
		t.Fatalf("imported record: %+v", got)
	}
	d, err := tracking.Live{T: b.runs}.Show(context.Background(), "r1")
	must(t, err)
	if m := d.Info.Metrics["loss"]; m.LastStep != 99 || float64(m.Min) != 0 || float64(m.Max) != 0.99 {
		t.Fatalf("loss on the other machine: %+v", m)
	}
	if len(d.Errors.Listed) != 1 || d.Errors.Listed[0].File != "metrics/bad" {
		t.Fatalf("errors on the other machine: %+v", d.Errors)
	}
	if n := points(t, b.runs, "r1", "loss"); n != 100 {
		t.Fatalf("history of loss on the other machine: %d points", n)
	}
	run := filepath.Join(b.mnt, "runs", "r1")
	if got, want := readFile(t, filepath.Join(run, "metrics/loss")), readFile(t, filepath.Join(a.mnt, "runs/r1/metrics/loss")); got != want {
		t.Fatal("metrics/loss reads differently on the other machine")
	}
	var meta struct{ Status, Host string }
	must(t, json.Unmarshal([]byte(readFile(t, filepath.Join(run, "meta.json"))), &meta))
	if meta.Status != "running" || meta.Host != got.Host {
		t.Fatalf("meta.json on the other machine: %+v", meta)
	}

	// Further writes: published and imported at once by Share.
	sh(t, filepath.Join(a.mnt, "runs", "r1"), `i=100; while [ $i -lt 150 ]; do echo "$i 0.5" >> metrics/loss; i=$((i+1)); done`)
	a.share(t)
	b.share(t)
	if c := b.runs.Infos(); len(c) != 1 || c[0].Metrics["loss"].Count != 150 {
		t.Fatalf("after the second import: %+v", c)
	}
	if n := points(t, b.runs, "r1", "loss"); n != 150 {
		t.Fatalf("history after the second import: %d points", n)
	}
	if n := strings.Count(readFile(t, filepath.Join(run, "metrics/loss")), "\n"); n != 150 {
		t.Fatalf("metrics/loss on the other machine has %d lines after the second import", n)
	}
	// One ref per run, each publish the parent of the next.
	_, v := onlyRef(t, st, "r1")
	if v.Dataset != "runs" || v.Parent.IsZero() {
		t.Fatalf("published version: %+v", v)
	}
	// Nothing changed: nothing to do.
	if n := a.share(t); n != (tracking.Shared{}) {
		t.Fatalf("a share without changes: %+v", n)
	}
}

// An imported run is read-only; its artifacts read back byte for byte;
// an ended run is published at once; a restarted machine keeps its
// imports without importing again; gc on the publishing machine keeps
// what the published run needs.
func TestImportedRun(t *testing.T) {
	storeDir := t.TempDir()
	st := repo.TestStore(t, storeDir)
	// No periodic work: publishes come from Share, and from the run's end.
	a := newMachine(t, st, storeDir, time.Hour)
	b := newMachine(t, st, storeDir, time.Hour)
	ctx := context.Background()

	runA := filepath.Join(a.mnt, "runs", "m")
	must(t, os.Mkdir(runA, 0o755))
	sh(t, runA, `echo 1 >> metrics/loss; echo 2 >> metrics/loss; echo x > tags/t; mkdir -p artifacts/ckpt`)
	model := randomBytes(3<<20+17, 5)
	must(t, os.WriteFile(filepath.Join(runA, "artifacts/ckpt/model.bin"), model, 0o644))
	waitForLong(t, 10*time.Second, func() bool {
		d, err := tracking.Live{T: a.runs}.Show(ctx, "m")
		return err == nil && len(d.Artifacts) == 1 && d.Artifacts[0].ID != ""
	})
	if n := a.share(t); n.Published != 1 {
		t.Fatalf("publish: %+v", n)
	}
	if n := b.share(t); n.Imported != 1 {
		t.Fatalf("import: %+v", n)
	}
	runB := filepath.Join(b.mnt, "runs", "m")
	if got, err := os.ReadFile(filepath.Join(runB, "artifacts/ckpt/model.bin")); err != nil || !bytes.Equal(got, model) {
		t.Fatalf("the artifact on the other machine: %d bytes, %v", len(got), err)
	}
	d, err := tracking.Live{T: b.runs}.Show(ctx, "m")
	must(t, err)
	if len(d.Artifacts) != 1 || d.Artifacts[0].Path != "artifacts/ckpt/model.bin" || d.Artifacts[0].Size != int64(len(model)) {
		t.Fatalf("artifacts on the other machine: %+v", d.Artifacts)
	}

	// Read-only on the other machine.
	erofs := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s in an imported run: %v, want EROFS", what, err)
		}
	}
	erofs("write", os.WriteFile(filepath.Join(runB, "metrics/loss"), []byte("3\n"), 0o644))
	_, err = os.OpenFile(filepath.Join(runB, "metrics/loss"), os.O_WRONLY|os.O_APPEND, 0)
	erofs("append", err)
	erofs("create", os.WriteFile(filepath.Join(runB, "metrics/new"), []byte("3\n"), 0o644))
	erofs("create at the top", os.WriteFile(filepath.Join(runB, "notes"), []byte("x"), 0o644))
	erofs("mkdir", os.Mkdir(filepath.Join(runB, "metrics/sub"), 0o755))
	erofs("rename", os.Rename(filepath.Join(runB, "tags/t"), filepath.Join(runB, "tags/u")))
	erofs("rename at the top", os.Rename(filepath.Join(runB, "tags"), filepath.Join(runB, "tags2")))
	erofs("unlink", os.Remove(filepath.Join(runB, "artifacts/ckpt/model.bin")))
	erofs("rmdir", os.Remove(filepath.Join(runB, "artifacts/ckpt")))
	erofs("truncate", os.Truncate(filepath.Join(runB, "metrics/loss"), 0))
	erofs("chmod", os.Chmod(filepath.Join(runB, "metrics/loss"), 0o600))
	erofs("status", os.WriteFile(filepath.Join(runB, "status"), []byte("finished\n"), 0))
	erofs("unlink of status", os.Remove(filepath.Join(runB, "status")))
	if err := os.Mkdir(runB, 0o755); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("mkdir of an imported run: %v, want EEXIST", err)
	}
	if n := strings.Count(readFile(t, filepath.Join(runB, "metrics/loss")), "\n"); n != 2 {
		t.Fatalf("metrics/loss changed on the other machine: %d lines", n)
	}

	// The run ends: published at once, with no Share.
	first, _ := onlyRef(t, st, "m")
	sh(t, runA, `echo 3 >> metrics/loss; echo finished > status`)
	waitForLong(t, 2*time.Second, func() bool {
		name, v := onlyRef(t, st, "m")
		return name != first && strings.Contains(v.Message, `"status":"finished"`)
	})
	if n := b.share(t); n.Imported != 1 {
		t.Fatalf("import of the ended run: %+v", n)
	}
	in := b.runs.Infos()[0]
	if in.Status != tracking.Finished || in.End == 0 || in.Metrics["loss"].Count != 3 || in.Tags["t"] != "x" {
		t.Fatalf("the ended run on the other machine: %+v", in)
	}
	if got := readFile(t, filepath.Join(runB, "status")); got != "finished\n" {
		t.Fatalf("status on the other machine reads %q", got)
	}

	// A restart keeps the import and does not import it again.
	b.stop()
	b.start(t)
	runB = filepath.Join(b.mnt, "runs", "m")
	if n := b.share(t); n.Imported != 0 {
		t.Fatalf("a restarted machine imported unchanged runs again: %+v", n)
	}
	if found := search(t, b.runs, "status = 'finished' and metrics.loss = 3"); len(found) != 1 {
		t.Fatalf("after a restart: %+v", found)
	}
	if n := points(t, b.runs, "m", "loss"); n != 3 {
		t.Fatalf("history after a restart: %d points", n)
	}
	if err := os.WriteFile(filepath.Join(runB, "tags/t"), []byte("y"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write after a restart: %v, want EROFS", err)
	}

	// gc where the run was published keeps all it needs.
	if _, err := a.repo.GC(ctx, false); err != nil {
		t.Fatal(err)
	}
	fsck, err := a.repo.Fsck(ctx, func(p repo.Problem) { t.Errorf("fsck: %s", p) })
	must(t, err)
	if fsck.Runs != 1 || fsck.Versions != 0 || fsck.Files < 3 || fsck.Chunks == 0 {
		t.Fatalf("fsck read %+v; want the run's version and files", fsck)
	}
	if got, err := os.ReadFile(filepath.Join(runB, "artifacts/ckpt/model.bin")); err != nil || !bytes.Equal(got, model) {
		t.Fatalf("the artifact after gc: %d bytes, %v", len(got), err)
	}
	if got := readFile(t, filepath.Join(runB, "metrics/loss")); got != "1\n2\n3\n" {
		t.Fatalf("metrics/loss after gc: %q", got)
	}

	// Removed here, it stays removed until its own machine changes it.
	must(t, b.runs.Remove(ctx, "m", false))
	if n := b.share(t); n.Imported != 0 || b.runs.Has("m") {
		t.Fatalf("a run removed here was imported again: %+v", n)
	}
	sh(t, runA, `echo y > tags/t`)
	if n := a.share(t); n.Published != 1 {
		t.Fatalf("publish of a change just written: %+v", n)
	}
	if n := b.share(t); n.Imported != 1 {
		t.Fatalf("import of a changed run removed here: %+v", n)
	}
	if in := b.runs.Infos()[0]; in.Tags["t"] != "y" || in.Status != tracking.Finished {
		t.Fatalf("the run imported again: %+v", in)
	}
	if got := readFile(t, filepath.Join(runB, "tags/t")); got != "y\n" {
		t.Fatalf("tags/t imported again reads %q", got)
	}
}

// A run of the same id on both machines: each keeps its own, and the
// second to publish leaves the first's alone. A run id too long for a
// ref stays local.
func TestSameRunIDOnTwoMachines(t *testing.T) {
	storeDir := t.TempDir()
	st := repo.TestStore(t, storeDir)
	a := newMachine(t, st, storeDir, time.Hour)
	b := newMachine(t, st, storeDir, time.Hour)
	sh(t, a.mnt, `mkdir runs/dup; echo 1 >> runs/dup/metrics/a`)
	time.Sleep(5 * time.Millisecond) // another start time
	sh(t, b.mnt, `mkdir runs/dup; echo 1 >> runs/dup/metrics/b`)
	long := strings.Repeat("x", 200)
	sh(t, a.mnt, `mkdir runs/`+long+`; echo 1 >> runs/`+long+`/metrics/a`)
	info(t, a.runs, "dup", func(in *tracking.Info) bool { return in.Metrics["a"].Count == 1 })
	info(t, b.runs, "dup", func(in *tracking.Info) bool { return in.Metrics["b"].Count == 1 })
	a.share(t)
	b.share(t)
	a.share(t)
	for _, m := range []*machine{a, b} {
		if ids := m.runs.IDs(); m == b && len(ids) != 1 {
			t.Fatalf("runs on b: %v", ids)
		}
		r, err := m.runs.Get(context.Background(), "dup")
		must(t, err)
		if r.Imported() {
			t.Fatal("a local run was replaced by an import")
		}
	}
	if in := b.runs.Infos()[0]; in.Metrics["b"].Count != 1 || in.Metrics["a"].Count != 0 {
		t.Fatalf("b's own run changed: %+v", in)
	}
	name, v := onlyRef(t, st, "dup")
	if !strings.HasSuffix(name, "/0000000001") || !strings.Contains(v.Message, `"id":"dup"`) {
		t.Fatalf("the published dup is %s: %s", name, v.Message)
	}
	if len(refs(t, st, long)) != 0 {
		t.Fatal("a run id longer than a ref segment was published")
	}
	// Removing a published run removes it for everyone.
	must(t, a.runs.Remove(context.Background(), "dup", false))
	if rs := refs(t, st, "dup"); len(rs) != 0 {
		t.Fatalf("refs after removing the run: %v", rs)
	}
	if n := a.share(t); n.Imported != 0 {
		t.Fatalf("the removed run came back: %+v", n)
	}
}

// A program on the importing machine that reads the run, from inside it,
// while imports replace its files, never finds a file missing.
func TestReadsAcrossImports(t *testing.T) {
	storeDir := t.TempDir()
	st := repo.TestStore(t, storeDir)
	a := newMachine(t, st, storeDir, time.Hour)
	b := newMachine(t, st, storeDir, time.Hour)
	runA := filepath.Join(a.mnt, "runs", "live")
	must(t, os.Mkdir(runA, 0o755))
	sh(t, runA, `echo 0 >> metrics/loss`)
	a.share(t)
	b.share(t)
	reader := exec.Command("sh", "-c", `cd "$0/metrics" || exit 2
while [ ! -e "$1" ]; do cat loss > /dev/null || exit 1; ls > /dev/null || exit 1; done`, filepath.Join(b.mnt, "runs", "live"), filepath.Join(t.TempDir(), "stop"))
	var out bytes.Buffer
	reader.Stdout, reader.Stderr = &out, &out
	must(t, reader.Start())
	for i := 1; i <= 10; i++ {
		sh(t, runA, fmt.Sprintf(`echo %d >> metrics/loss`, i))
		a.share(t)
		if n := b.share(t); n.Imported != 1 {
			t.Fatalf("import %d: %+v", i, n)
		}
	}
	must(t, os.WriteFile(reader.Args[len(reader.Args)-1], nil, 0o644))
	if err := reader.Wait(); err != nil {
		t.Fatalf("the reader failed across imports: %v\n%s", err, out.String())
	}
	if got := strings.Count(readFile(t, filepath.Join(b.mnt, "runs/live/metrics/loss")), "\n"); got != 11 {
		t.Fatalf("after the imports metrics/loss has %d lines", got)
	}
}
