package badgerkv_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mlfs/mlfs/index"
	"github.com/mlfs/mlfs/index/badgerkv"
	"github.com/mlfs/mlfs/index/kvtest"
)

func open(t *testing.T, dir string) index.KV {
	t.Helper()
	kv, err := badgerkv.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestKV(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) index.KV { return open(t, t.TempDir()) })
}

func TestPersistent(t *testing.T) {
	kvtest.RunPersistent(t, open)
}

func TestOpenInUse(t *testing.T) {
	dir := t.TempDir()
	kv := open(t, dir)
	defer kv.Close()

	_, err := badgerkv.Open(dir, nil)
	if err == nil {
		t.Fatal("second Open of the same dir succeeded")
	}
	if !errors.Is(err, badgerkv.ErrInUse) {
		t.Errorf("error %v does not match ErrInUse", err)
	}
	want := "index " + dir + " is in use by another mlfs process (is the daemon running?)"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}

	// The lock is released on Close.
	if err := kv.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, dir).Close()
}

// recorder is a slog.Handler that keeps the levels of records it receives.
type recorder struct {
	mu     sync.Mutex
	levels map[slog.Level]int
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.levels[rec.Level]++
	if strings.HasSuffix(rec.Message, "\n") {
		panic("message not trimmed: " + rec.Message)
	}
	return nil
}

func TestLogger(t *testing.T) {
	rec := &recorder{levels: map[slog.Level]int{}}
	kv, err := badgerkv.Open(t.TempDir(), slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Close(); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.levels[slog.LevelDebug] == 0 {
		t.Errorf("no debug records from badger: %v", rec.levels)
	}
	for l, n := range rec.levels {
		if l != slog.LevelDebug && l != slog.LevelWarn {
			t.Errorf("%d records at level %v; badger logs only at debug or warn", n, l)
		}
	}
}

func TestOpenError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(dir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := badgerkv.Open(dir, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "open index "+dir+": ") {
		t.Errorf("Open(regular file) = %v, want error prefixed with dir", err)
	}
}
