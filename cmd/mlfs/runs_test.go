package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlfs/mlfs/tracking"
	"github.com/mlfs/mlfs/tracking/query"
)

// runsJSON returns `mlfs runs --json` filtered.
func (in *instance) runsJSON(filter string) []tracking.Info {
	in.t.Helper()
	var out []tracking.Info
	if err := json.Unmarshal([]byte(in.ok("runs", "--json", "--filter", filter)), &out); err != nil {
		in.t.Fatal(err)
	}
	return out
}

// A run logged from a shell loop and one from Python are found with
// mlfs runs --filter, sorted, shown and compared; through the daemon and
// without it, the answers are the same.
func TestRunsCLI(t *testing.T) {
	needFUSE(t)
	in := newInstance(t, "")
	mnt := in.mount("")
	runs := filepath.Join(mnt, "runs")
	shell := exec.Command("sh", "-ec", `
mkdir runs/shell1
cd runs/shell1
echo 0.1 > params/lr
echo shell > tags/experiment
for i in 0 1 2 3 4 5 6 7 8 9; do echo "$i 0.$i" >> metrics/accuracy; done
echo finished > status
`)
	shell.Dir = mnt
	if out, err := shell.CombinedOutput(); err != nil {
		t.Fatalf("shell run: %v\n%s", err, out)
	}
	py := exec.Command("/usr/bin/python3", "-c", `
import json, os, sys
run = os.path.join(sys.argv[1], "py1")
os.mkdir(run)
with open(os.path.join(run, "params", "lr"), "w") as f:
    f.write("0.01")
with open(os.path.join(run, "metrics.jsonl"), "a") as f:
    for epoch in range(5):
        f.write(json.dumps({"epoch": epoch, "accuracy": [0.9, 0.91, 0.92, 0.93, 0.94][epoch], "loss": 1 / (epoch + 1)}) + "\n")
with open(os.path.join(run, "status"), "w") as f:
    f.write("finished\n")
`, runs)
	if out, err := py.CombinedOutput(); err != nil {
		t.Fatalf("python run: %v\n%s", err, out)
	}
	// Visible within a second of the write.
	found := in.runsJSON("metrics.accuracy > 0.9")
	if len(found) != 1 || found[0].ID != "py1" || found[0].Status != "finished" || float64(found[0].Metrics["accuracy"].Last) != 0.94 {
		t.Fatalf("filter metrics.accuracy > 0.9: %+v", found)
	}
	if got := in.runsJSON("params.lr = '0.1' and tags.experiment = 'shell'"); len(got) != 1 || got[0].ID != "shell1" {
		t.Fatalf("filter on params and tags: %+v", got)
	}
	table := in.ok("runs", "--sort", "metrics.accuracy desc")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "py1 ") || !strings.HasPrefix(lines[2], "shell1 ") ||
		!strings.Contains(lines[0], "metrics.accuracy") {
		t.Fatalf("sorted table:\n%s", table)
	}
	// --columns picks exactly the fields it names, in that order.
	picked := in.ok("runs", "--sort", "metrics.accuracy desc", "--columns", "id,host,status")
	host, _ := os.Hostname()
	wantPicked := [][]string{{"RUN", "HOST", "STATUS"}, {"py1", host, "finished"}, {"shell1", host, "finished"}}
	if got := fields(picked); !equalRows(got, wantPicked) {
		t.Fatalf("runs --columns id,host,status:\n%s\nwant the rows %q", picked, wantPicked)
	}
	picked = in.ok("runs", "--sort", "id asc", "--columns", "metrics.accuracy, params.lr")
	if got := fields(picked); !equalRows(got, [][]string{{"metrics.accuracy", "params.lr"}, {"0.94", "0.01"}, {"0.9", "0.1"}}) {
		t.Fatalf("runs --columns metrics.accuracy,params.lr:\n%s", picked)
	}
	in.fails("--columns", "runs", "--columns", "id,nosuch")
	show := in.ok("runs", "show", "py1")
	for _, want := range []string{"status      finished", "lr", "0.01", "accuracy", "loss"} {
		if !strings.Contains(show, want) {
			t.Fatalf("runs show lacks %q:\n%s", want, show)
		}
	}
	cmp := in.ok("runs", "compare", "py1", "shell1")
	if !strings.Contains(cmp, "params.lr") || !strings.Contains(cmp, "metrics.accuracy") || !strings.Contains(cmp, "0.94") {
		t.Fatalf("compare:\n%s", cmp)
	}
	hist := in.ok("runs", "show", "shell1", "--metric", "accuracy", "--points", "5")
	if n := len(strings.Split(strings.TrimSpace(hist), "\n")); n < 2 || n > 6 {
		t.Fatalf("history in at most 5 buckets:\n%s", hist)
	}
	in.fails("filter", "runs", "--filter", "metrics.accuracy >")
	in.fails("no such run", "runs", "show", "nope")

	// The same answers without the daemon.
	withDaemon := []string{in.ok("runs", "--json"), in.ok("runs", "show", "py1"), in.ok("runs", "compare", "py1", "shell1")}
	in.ok("umount", mnt)
	without := []string{in.ok("runs", "--json"), in.ok("runs", "show", "py1"), in.ok("runs", "compare", "py1", "shell1")}
	for i := range withDaemon {
		if withDaemon[i] != without[i] {
			t.Errorf("answer %d differs without the daemon:\n%s\n---\n%s", i, withDaemon[i], without[i])
		}
	}
	in.ok("runs", "rm", "shell1")
	if got := in.runsJSON(""); len(got) != 1 {
		t.Fatalf("after rm: %d runs", len(got))
	}
	in.mount(mnt)
	if _, err := os.Stat(filepath.Join(runs, "shell1")); !os.IsNotExist(err) {
		t.Fatalf("a removed run is still in the mount: %v", err)
	}
	in.ok("runs", "rm", "py1")
	if _, err := os.Stat(filepath.Join(runs, "py1")); !os.IsNotExist(err) {
		t.Fatalf("a run removed through the daemon is still in the mount: %v", err)
	}
}

// fields splits a table into its rows' fields.
func fields(table string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(table), "\n") {
		rows = append(rows, strings.Fields(line))
	}
	return rows
}

func equalRows(a, b [][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if strings.Join(a[i], "\x00") != strings.Join(b[i], "\x00") {
			return false
		}
	}
	return true
}

// --columns shows exactly the columns it names, in its order, attributes
// included; without it the table shows the attributes, then the fields of
// the filter and sort, then params and metrics. The help says so.
func TestRunsColumns(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.Local).UnixMilli()
	runs := []*tracking.Info{
		{ID: "r2", Experiment: "iris", Status: "running", Start: start, Host: "gpu2", User: "ann",
			Params: map[string]string{"lr": "0.1"}, Metrics: map[string]tracking.Metric{"loss": {Last: 0.25}}},
		{ID: "r1", Experiment: "iris", Status: "finished", Start: start, End: start + 90_000, Host: "gpu1",
			Params: map[string]string{"lr": "0.01"}, Datasets: []tracking.Lineage{{Ref: "iris@v1"}}},
	}
	table := func(columns string) [][]string {
		t.Helper()
		cols, err := parseColumns(columns)
		if err != nil {
			t.Fatalf("parseColumns(%q): %v", columns, err)
		}
		if cols == nil {
			var more []query.Field
			more, _ = defaultColumns(runs, "", "")
			cols = append(slices.Clone(attributeColumns), more...)
		}
		var b strings.Builder
		if err := runsTable(&b, runs, cols); err != nil {
			t.Fatal(err)
		}
		return fields(b.String())
	}
	for columns, want := range map[string][][]string{
		"id,host,status":           {{"RUN", "HOST", "STATUS"}, {"r2", "gpu2", "running"}, {"r1", "gpu1", "finished"}},
		"status, id":               {{"STATUS", "RUN"}, {"running", "r2"}, {"finished", "r1"}},
		"params.lr,metrics.loss":   {{"params.lr", "metrics.loss"}, {"0.1", "0.25"}, {"0.01", "-"}},
		"run_id,user,dataset":      {{"RUN", "USER", "DATASETS"}, {"r2", "ann", "-"}, {"r1", "-", "iris@v1"}},
		"duration,end_time,errors": {{"DURATION", "ENDED", "ERRORS"}, nil, {"1m30s", "2026-12-01", "10:01:30", "0"}},
	} {
		got := table(columns)
		if columns == "duration,end_time,errors" {
			// A running run's duration grows; its end is unset.
			if len(got) == 3 && len(got[1]) == 3 && got[1][1] == "-" {
				got[1] = nil
			}
		}
		if !equalRows(got, want) {
			t.Errorf("--columns %s:\n got %q\nwant %q", columns, got, want)
		}
	}
	def := table("")
	if want := []string{"RUN", "EXPERIMENT", "STATUS", "STARTED", "DURATION", "DATASETS", "params.lr", "metrics.loss"}; !equalRows(def[:1], [][]string{want}) {
		t.Errorf("the default columns: %q, want %q", def[0], want)
	}
	for _, bad := range []string{"id,nosuch", "id,,status", "metrics."} {
		if _, err := parseColumns(bad); err == nil || !strings.Contains(err.Error(), "--columns") {
			t.Errorf("parseColumns(%q) = %v, want an error naming --columns", bad, err)
		}
	}

	var help strings.Builder
	root := newRoot()
	root.SetOut(&help)
	root.SetArgs([]string{"runs", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if h := strings.Join(strings.Fields(help.String()), " "); !strings.Contains(h, "--columns shows exactly the fields it names, in that order") ||
		!strings.Contains(h, "show exactly these fields, in this order") {
		t.Errorf("runs --help does not say what --columns does:\n%s", help.String())
	}
}

// Points flushed by a writer that keeps its file open survive a kill -9
// of the daemon: after a restart the index holds every line the file
// holds, and the writer's program saw no error.
func TestRunPointsSurviveKill(t *testing.T) {
	needFUSE(t)
	in := newInstance(t, "")
	mnt := in.mount("")
	run := filepath.Join(mnt, "runs", "k9")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(run, "metrics/loss"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	const n = 20000
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "%d %g\n", i, 1/float64(i+1))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	pid := in.daemonPID()
	// Right after the writes, before a commit could have run.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	f.Close()
	waitGone(t, pid)
	in.mount(mnt)
	b, err := os.ReadFile(filepath.Join(run, "metrics/loss"))
	if err != nil || strings.Count(string(b), "\n") != n {
		t.Fatalf("metrics/loss after kill -9: %d lines, %v", strings.Count(string(b), "\n"), err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := in.runsJSON("")
		if len(got) == 1 && got[0].Metrics["loss"].Count == n && got[0].Metrics["loss"].LastStep == n-1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after kill -9 and restart the index holds %+v, want %d points", got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
