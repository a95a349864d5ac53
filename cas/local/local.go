// Package local is a cas.Store in a directory on a local filesystem.
//
// # Layout
//
//	mlfs-store            format marker
//	objects/ab/abcd…      one file per object, fanned out by the first two
//	                      hex digits of its id
//	refs/<name>           a ref: the hex id and a newline; "/" in a name
//	                      is a folder
//	tmp/                  objects and refs being written
//
// # Atomic and durable
//
// No object ever appears under its final name half written: Put writes it to
// tmp/, fsyncs it, renames it into objects/ and fsyncs the folder, so when
// Put returns the object survives a crash. A crash mid-Put leaves at most a
// temp file, which the next Open removes once it is an hour old (gc removes
// them all). That costs a disk flush per object, which is why mlfs stores
// chunks in packs (cas/pack) of many megabytes: objects here are big.
//
// Refs are created with link(2) of a complete, synced temp file onto the
// final name, which fails if the name exists: create-if-absent with exactly
// one winner, and never a half-written ref.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mlfs/mlfs/cas"
)

const (
	marker = "mlfs-store"
	format = "mlfs store 1\n"

	// commitBytes is how many bytes of pending objects trigger a commit.
	commitBytes = 64 << 20
	// staleTemp is the age after which Open removes leftover temp files.
	staleTemp = time.Hour
)

// Store is a cas.Store in a directory.
type Store struct {
	root string
	dir  *os.File // root, for syncfs

}

var _ cas.Store = (*Store)(nil)

// Open opens the store in dir, creating it if dir is empty or absent.
func Open(dir string) (*Store, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	if err := initDir(dir); err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	s := &Store{root: dir, dir: d}
	s.removeTemps(staleTemp)
	return s, nil
}

func initDir(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, marker))
	switch {
	case err == nil:
		if string(b) != format {
			return fmt.Errorf("unknown store format %q (upgrade mlfs)", strings.TrimSpace(string(b)))
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("folder is not empty and is not an mlfs store")
	}
	for i := 0; i < 256; i++ {
		if err := os.MkdirAll(filepath.Join(dir, "objects", fmt.Sprintf("%02x", i)), 0o755); err != nil {
			return err
		}
	}
	for _, sub := range []string{"refs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	if err := writeFileSync(filepath.Join(dir, marker), []byte(format)); err != nil {
		return err
	}
	return syncDir(dir)
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

// ObjectPath returns where the object id lives once committed.
func (s *Store) ObjectPath(id cas.ID) string {
	h := id.String()
	return filepath.Join(s.root, "objects", h[:2], h)
}

// open opens the object's file.
func (s *Store) open(ctx context.Context, id cas.ID) (*os.File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.ObjectPath(id))
	return f, wrapObj(id, err)
}

func wrapObj(id cas.ID, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("object %s: %w", id, cas.ErrNotFound)
	default:
		return fmt.Errorf("object %s: %w", id, err)
	}
}

func (s *Store) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	f, err := s.open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, wrapObj(id, err)
	}
	if err := id.Verify(b); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return b, nil
}

func (s *Store) GetRange(ctx context.Context, id cas.ID, off, length int64) ([]byte, error) {
	f, err := s.open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, wrapObj(id, err)
	}
	lo, hi, err := cas.ClampRange(id, fi.Size(), off, length)
	if err != nil {
		return nil, err
	}
	b := make([]byte, hi-lo)
	if _, err := f.ReadAt(b, lo); err != nil && !(errors.Is(err, io.EOF) && len(b) == 0) {
		return nil, wrapObj(id, err)
	}
	return b, nil
}

func (s *Store) Stat(ctx context.Context, id cas.ID) (int64, error) {
	f, err := s.open(ctx, id)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, wrapObj(id, err)
	}
	return fi.Size(), nil
}

func (s *Store) Put(ctx context.Context, id cas.ID, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	final := s.ObjectPath(id)
	if _, err := os.Lstat(final); err == nil {
		return nil
	}
	tmp, err := s.writeTemp(id.String(), data)
	if err != nil {
		return fmt.Errorf("put object %s in %s: %w", id, s.root, err)
	}
	// Concurrent puts of one id each rename their own complete copy over
	// the name: the last one wins, and every one of them is whole.
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("put object %s in %s: %w", id, s.root, err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("put object %s in %s: %w", id, s.root, err)
	}
	return nil
}

// writeTemp writes data to a new, synced file in tmp/ and returns its path.
func (s *Store) writeTemp(prefix string, data []byte) (string, error) {
	var rnd [6]byte
	rand.Read(rnd[:])
	path := filepath.Join(s.root, "tmp", prefix+"."+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}

func (s *Store) List(ctx context.Context, fn func(cas.ID, int64) error) error {
	for i := 0; i < 256; i++ {
		dir := filepath.Join(s.root, "objects", fmt.Sprintf("%02x", i))
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			id, err := cas.ParseID(e.Name())
			if err != nil {
				continue // not an object: ignore stray files
			}
			info, err := e.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return err
			}
			if err := fn(id, info.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) Delete(ctx context.Context, id cas.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Remove(s.ObjectPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete object %s: %w", id, err)
	}
	return nil
}

func (s *Store) refPath(name string) string {
	return filepath.Join(s.root, "refs", filepath.FromSlash(name))
}

func (s *Store) CreateRef(ctx context.Context, name string, id cas.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := cas.CheckRefName(name); err != nil {
		return err
	}
	final := s.refPath(name)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return fmt.Errorf("create ref %s: %w", name, err)
	}
	tmp, err := s.writeTemp("ref", []byte(id.String()+"\n"))
	if err != nil {
		return fmt.Errorf("create ref %s: %w", name, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("ref %s: %w", name, cas.ErrExists)
		}
		return fmt.Errorf("create ref %s: %w", name, err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("create ref %s: %w", name, err)
	}
	return nil
}

func (s *Store) GetRef(ctx context.Context, name string) (cas.ID, error) {
	if err := ctx.Err(); err != nil {
		return cas.ID{}, err
	}
	if err := cas.CheckRefName(name); err != nil {
		return cas.ID{}, err
	}
	return readRef(s.refPath(name), name)
}

func readRef(path, name string) (cas.ID, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EISDIR) {
		return cas.ID{}, fmt.Errorf("ref %s: %w", name, cas.ErrNotFound)
	}
	if err != nil {
		return cas.ID{}, fmt.Errorf("ref %s: %w", name, err)
	}
	id, err := cas.ParseID(strings.TrimSuffix(string(b), "\n"))
	if err != nil {
		return cas.ID{}, fmt.Errorf("ref %s (%s): %w", name, path, cas.ErrCorrupt)
	}
	return id, nil
}

func (s *Store) ListRefs(ctx context.Context, prefix string, fn func(string, cas.ID) error) error {
	var names []string
	if err := s.ListRefNames(ctx, prefix, func(name string) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return err
	}
	return cas.ReadRefs(ctx, names, func(_ context.Context, n string) (cas.ID, error) { return readRef(s.refPath(n), n) }, fn)
}

// ListRefNames lists the names of refs under prefix without reading them
// (see cas.RefNamer).
func (s *Store) ListRefNames(ctx context.Context, prefix string, fn func(string) error) error {
	base := filepath.Join(s.root, "refs")
	err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(base, path)
		name := filepath.ToSlash(rel)
		if strings.HasPrefix(name, prefix) && cas.CheckRefName(name) == nil {
			return fn(name)
		}
		return ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("list refs in %s: %w", s.root, err)
	}
	return nil
}

func (s *Store) DeleteRef(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := cas.CheckRefName(name); err != nil {
		return err
	}
	path := s.refPath(name)
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("delete ref %s: %w", name, err)
	}
	return syncDir(filepath.Dir(path))
}

// RemoveTemps removes temp files older than age (all of them for 0). Only
// call it with 0 when no other process writes to the store.
func (s *Store) RemoveTemps(age time.Duration) int { return s.removeTemps(age) }

func (s *Store) removeTemps(age time.Duration) int {
	dir := filepath.Join(s.root, "tmp")
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < age {
			continue
		}
		if os.Remove(filepath.Join(dir, e.Name())) == nil {
			n++
		}
	}
	return n
}

// Close releases the store.
func (s *Store) Close() error { return s.dir.Close() }

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
