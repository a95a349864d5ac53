package local_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/castest"
	"github.com/mlfs/mlfs/cas/local"
)

func open(t *testing.T, dir string) *local.Store {
	t.Helper()
	s, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	castest.Run(t, castest.Harness{
		New: func(t *testing.T) cas.Store { return open(t, t.TempDir()) },
		Corrupt: func(t *testing.T, s cas.Store, id cas.ID) {
			p := s.(*local.Store).ObjectPath(id)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 1
			os.Chmod(p, 0o644)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		Reopen: func(t *testing.T, s cas.Store) cas.Store {
			root := s.(*local.Store).Root()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, root)
		},
	})
}

func TestRefusesForeignFolder(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	if _, err := local.Open(dir); err == nil {
		t.Fatal("opened a non-empty folder that is not a store")
	}
}

// What a crash mid-Put leaves (a temp file) is never an object, and is
// cleaned up: by Open once it is old, by RemoveTemps(0) at once.
func TestCrashLeftoversAreNotObjects(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	data := []byte("whole")
	id := cas.Sum(data)
	half := filepath.Join(dir, "tmp", id.String()+".abc")
	os.WriteFile(half, data[:2], 0o444)
	if _, err := s.Get(context.Background(), id); err == nil {
		t.Fatal("a temp file was served as an object")
	}
	n := 0
	s.List(context.Background(), func(cas.ID, int64) error { n++; return nil })
	if n != 0 {
		t.Fatalf("listed %d objects", n)
	}
	s.Close()
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(half, old, old)
	s = open(t, dir)
	defer s.Close()
	if _, err := os.Stat(half); err == nil {
		t.Fatal("Open kept an hour-old temp file")
	}
	os.WriteFile(half, data[:2], 0o444)
	if s.RemoveTemps(0) != 1 {
		t.Fatal("RemoveTemps(0) did not remove the fresh temp file")
	}
}
