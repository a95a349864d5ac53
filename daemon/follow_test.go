package daemon

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlfs/mlfs/index/memkv"
	"github.com/mlfs/mlfs/repo"
	"github.com/mlfs/mlfs/worktree"
)

// The status keeps errors and the warning of a snapshot made on a stale
// base, not the other warnings, which are many.
func TestStatusShowsStaleSnapshot(t *testing.T) {
	ring := newErrorRing(slog.NewTextHandler(io.Discard, nil))
	log := slog.New(ring)
	log.Warn("mount busy; retrying", "mount", "/mnt/ml")
	log.Warn(worktree.StaleSnapshot, "version", "ds@v5", "base", "ds@v3", "latest", "ds@v4", "latest made on", "hostA")
	log.Error("read a chunk", "err", "corrupt")
	got := ring.recent()
	if len(got) != 2 {
		t.Fatalf("status lines %+v, want the stale snapshot and the error", got)
	}
	w := got[0]
	for _, want := range []string{"WARN " + worktree.StaleSnapshot, "version=ds@v5", "base=ds@v3", "latest=ds@v4", "hostA"} {
		if !strings.Contains(w.Message, want) {
			t.Fatalf("status line %q does not say %q", w.Message, want)
		}
	}
	if w.Level != "WARN" || got[1].Level != "ERROR" || strings.HasPrefix(got[1].Message, "WARN") {
		t.Fatalf("levels of the status lines: %+v", got)
	}
}

// A look moves a clean tree to a newer version and tells the mount; a
// look that fails is logged once, not at every look.
func TestFollowerForgets(t *testing.T) {
	ctx := context.Background()
	r := repo.TestRepo(t)
	add := func(name, content string) {
		t.Helper()
		src := t.TempDir()
		if err := os.WriteFile(filepath.Join(src, "f"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Add(ctx, mustRef(t, name), src, repo.AddOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	add("ds@v1", "one")
	work := worktree.NewSet(memkv.New(), t.TempDir(), r, r.Store(), nil)
	tr, err := work.Get(ctx, "ds", false)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	var forgot []string
	f := &follower{work: work, forget: func(ds string) { forgot = append(forgot, ds) },
		log: slog.New(slog.NewTextHandler(logs, nil)), failed: map[string]string{}}
	f.once(ctx)
	if len(forgot) != 0 {
		t.Fatalf("a tree on the latest version was forgotten: %v", forgot)
	}
	add("ds@v2", "two")
	f.once(ctx)
	v2, err := r.Resolve(ctx, mustRef(t, "ds@v2"))
	if err != nil {
		t.Fatal(err)
	}
	if len(forgot) != 1 || forgot[0] != "ds" || tr.Base() != v2.ID {
		t.Fatalf("after ds@v2: forgotten %v, base %s, want ds forgotten on ds@v2", forgot, tr.Base().Short())
	}
	if out := logs.String(); !strings.Contains(out, "working tree follows the latest version") || !strings.Contains(out, "to=ds@v2") {
		t.Fatalf("the log does not tell the move:\n%s", out)
	}

	for range 3 {
		f.fail("ds", os.ErrDeadlineExceeded)
	}
	if n := strings.Count(logs.String(), "look for a newer version"); n != 1 {
		t.Fatalf("a failure repeated 3 times was logged %d times, want once", n)
	}
}
