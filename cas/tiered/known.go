package tiered

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mlfs/mlfs/cas"
)

// known records which refs the remote has had, as far as this machine
// knows: those it published there and those it got from there, with the
// id the remote had for each. It is what tells a ref that another machine
// removed from the remote (recorded here, absent there: remove it here
// too) from one that was never published (absent there, not recorded:
// keep it, Push publishes it).
//
// On disk it is a folder with a file per ref (refs/<name>, holding the
// hex id), so that recording one ref writes one small file, as a live
// run's publish every few seconds needs; and a file "adopted" once the
// local refs that the remote already had were recorded (see
// Store.adopt). Without a folder the record lives in memory only.
type known struct {
	dir string // "" keeps the record in memory only

	mu      sync.Mutex
	ids     map[string]cas.ID
	adopted bool
}

// knownAdopted marks a record that holds the refs of the local store that
// the remote had when it was first made.
const knownAdopted = "adopted"

// openKnown loads the record in dir (which need not exist yet).
func openKnown(dir string) (*known, error) {
	k := &known{dir: dir, ids: map[string]cas.ID{}}
	if dir == "" {
		return k, nil
	}
	if _, err := os.Stat(filepath.Join(dir, knownAdopted)); err == nil {
		k.adopted = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("record of the remote's refs %s: %w", dir, err)
	}
	if err := k.load(); err != nil {
		return nil, fmt.Errorf("record of the remote's refs %s: %w", dir, err)
	}
	return k, nil
}

// load reads every ref file under dir/refs.
func (k *known) load() error {
	base := filepath.Join(k.dir, "refs")
	err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(base, path)
		name := filepath.ToSlash(rel)
		if cas.CheckRefName(name) != nil {
			return nil // a temp file, or a stray one
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		id, err := cas.ParseID(strings.TrimSpace(string(b)))
		if err != nil {
			return nil // torn by a crash: as if never recorded, which keeps the ref
		}
		k.ids[name] = id
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// get returns the id the remote had for name, if it had name.
func (k *known) get(name string) (cas.ID, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id, ok := k.ids[name]
	return id, ok
}

// all returns a copy of the record.
func (k *known) all() map[string]cas.ID {
	k.mu.Lock()
	defer k.mu.Unlock()
	return maps.Clone(k.ids)
}

// isAdopted reports whether the record was made already (see Store.adopt).
func (k *known) isAdopted() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.adopted
}

// set records that the remote has name at id.
func (k *known) set(name string, id cas.ID) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if old, ok := k.ids[name]; ok && old == id {
		return nil
	}
	if err := k.write(name, id); err != nil {
		return fmt.Errorf("record ref %s as on the remote: %w", name, err)
	}
	k.ids[name] = id
	return nil
}

// drop forgets name: the remote no longer has it.
func (k *known) drop(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.ids[name]; !ok {
		return nil
	}
	delete(k.ids, name)
	if k.dir == "" {
		return nil
	}
	err := os.Remove(k.path(name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("forget ref %s as on the remote: %w", name, err)
	}
	return nil
}

// markAdopted notes on disk that the record was made.
func (k *known) markAdopted() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.adopted = true
	if k.dir == "" {
		return nil
	}
	if err := os.MkdirAll(k.dir, 0o755); err != nil {
		return fmt.Errorf("record of the remote's refs: %w", err)
	}
	return os.WriteFile(filepath.Join(k.dir, knownAdopted), nil, 0o644)
}

func (k *known) path(name string) string {
	return filepath.Join(k.dir, "refs", filepath.FromSlash(name))
}

// write puts name's file in place whole: a temp file, synced, renamed
// over it (a ref's id changes when the remote's does). k.mu is held.
func (k *known) write(name string, id cas.ID) error {
	if k.dir == "" {
		return nil
	}
	final := k.path(name)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	// A leading dot keeps a torn temp file from passing for a ref (see load).
	tmp := filepath.Join(filepath.Dir(final), ".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(id.String() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
