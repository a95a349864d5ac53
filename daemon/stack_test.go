package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/mlfs/mlfs/repo"
)

// Closing a repo with a remote logs the requests made to it, at debug
// level, for mlfs -v.
func TestCloseLogsRemoteRequests(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Remote = "file://" + t.TempDir()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := OpenRepo(context.Background(), cfg, false, log)
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("some rows\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add(context.Background(), mustRef(t, "ds@v1"), src, repo.AddOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`msg="remote requests" remote=\S+ .*create_ref=1 .*put=[1-9].* total=[1-9]`)
	if !line.MatchString(logs.String()) {
		t.Fatalf("no line of the remote's requests at close; log:\n%s", logs.String())
	}
}
