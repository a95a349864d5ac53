package local_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

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

// Objects are never visible under their final name before they are whole:
// a Put that has not been committed lives only in tmp/.
func TestUncommittedObjectsStayInTmp(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	data := []byte("pending")
	id := cas.Sum(data)
	if err := s.Put(context.Background(), id, data); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.ObjectPath(id)); err == nil {
		t.Fatal("object renamed into place before a commit")
	}
	if got, err := s.Get(context.Background(), id); err != nil || string(got) != "pending" {
		t.Fatalf("pending object not readable: %v", err)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.ObjectPath(id)); err != nil {
		t.Fatalf("object not in place after Sync: %v", err)
	}
}
