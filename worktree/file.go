package worktree

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/index"
	"github.com/mlfs/mlfs/repo"
)

// Path returns the slash-separated path of node ino from the tree's top
// ("" for the top itself).
func (t *Tree) Path(ino uint64) (string, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var parts []string
	for ino != RootIno {
		n, err := t.get(ino)
		if err != nil {
			return "", err
		}
		parts = append(parts, n.Name)
		ino = n.Parent
		if len(parts) > 4096 {
			return "", fmt.Errorf("working tree %s: node %d: %w: path loops", t.dataset, ino, ErrMalformed)
		}
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, "/"), nil
}

// Writing reports whether file ino has a handle open for writing.
func (t *Tree) Writing(ino uint64) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.writers[ino] > 0
}

// SyncData makes the local bytes of file ino durable (nothing to do for a
// file whose bytes are in the store).
func (t *Tree) SyncData(ino uint64) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n, err := t.get(ino)
	if err != nil || !n.local() {
		return err
	}
	f, err := os.OpenFile(t.dataPath(ino), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// StoreFile stores changed file ino in the store through w and, when it
// did not change meanwhile and nothing has it open for writing, makes it
// clean: its bytes are then read from the store and its local copy goes.
// It returns the file object's id and whether the file is clean now.
//
// The file is chunked without the tree's lock, so a large file does not
// stop the tree; a write that lands meanwhile is seen by comparing the
// data file before and after, and the file just stays changed.
func (t *Tree) StoreFile(ctx context.Context, ino uint64, w *repo.Writer) (cas.ID, bool, error) {
	t.mu.RLock()
	n, err := t.get(ino)
	if err == nil && n.Type != object.TypeFile {
		err = syscall.EISDIR
	}
	if err != nil {
		t.mu.RUnlock()
		return cas.ID{}, false, err
	}
	if !n.local() {
		id := n.Origin
		t.mu.RUnlock()
		return id, true, nil
	}
	path, gen := t.dataPath(ino), n.gen
	before, err := os.Stat(path)
	t.mu.RUnlock()
	if err != nil {
		return cas.ID{}, false, err
	}
	id, size, err := w.PutFile(path)
	if err != nil {
		return cas.ID{}, false, fmt.Errorf("store %s: %w", n.Name, err)
	}
	if err := w.Flush(ctx); err != nil {
		return cas.ID{}, false, fmt.Errorf("store %s: %w", n.Name, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err = t.get(ino)
	if err != nil {
		return id, false, nil // removed meanwhile
	}
	after, err := os.Stat(path)
	if err != nil || !n.local() || n.gen != gen || t.writers[ino] > 0 || !sameFile(before, after) || after.Size() != size {
		return id, false, nil
	}
	to := *n
	to.Flags = to.Flags&^flagLocal | flagClean
	to.Origin, to.Size, to.MTime = id, size, after.ModTime().UnixNano()
	b := t.kv.NewBatch()
	defer b.Cancel()
	b.Set(t.nodeKey(ino), to.encode())
	if err := b.Commit(); err != nil {
		return id, false, err
	}
	*n = to
	// As after a snapshot: the record that no longer names the data file
	// must be durable before the file goes.
	if t.syncKV() == nil {
		os.Remove(path)
	}
	return id, true, nil
}

func sameFile(a, b os.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return false
	}
	return sa.Ino == sb.Ino && sa.Size == sb.Size && sa.Mtim == sb.Mtim && sa.Ctim == sb.Ctim
}

// Walk calls fn for every node below folder ino (not ino itself), parents
// before children, in name order, with its path relative to ino. If fn
// returns SkipDir for a folder, Walk does not go into it.
func (t *Tree) Walk(ctx context.Context, ino uint64, fn func(path string, a Attr) error) error {
	ents, err := t.ReadDir(ctx, ino)
	if err != nil {
		return err
	}
	return t.walk(ctx, "", ents, fn)
}

// SkipDir is returned by a Walk callback to skip a folder.
var SkipDir = errors.New("skip this folder")

func (t *Tree) walk(ctx context.Context, prefix string, ents []DirEntry, fn func(string, Attr) error) error {
	for _, e := range ents {
		a, err := t.GetAttr(e.Ino)
		if errors.Is(err, syscall.ENOENT) {
			continue // removed meanwhile
		}
		if err != nil {
			return err
		}
		p := prefix + e.Name
		err = fn(p, a)
		if errors.Is(err, SkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		if a.Type == object.TypeDir {
			sub, err := t.ReadDir(ctx, e.Ino)
			if errors.Is(err, syscall.ENOENT) {
				continue
			}
			if err != nil {
				return err
			}
			if err := t.walk(ctx, p+"/", sub, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// Remove deletes the working tree named name from kv, and its local data
// under dataDir. The tree must not be open.
func Remove(kv index.KV, name, dataDir string) error {
	b := kv.NewBatch()
	defer func() { b.Cancel() }()
	n := 0
	err := kv.Scan([]byte("wt/"+name+"/"), func(k, _ []byte) error {
		n++
		if n%10000 == 0 {
			if err := b.Commit(); err != nil {
				return err
			}
			b = kv.NewBatch()
		}
		return b.Delete(k)
	})
	if err == nil {
		err = b.Commit()
	}
	if err != nil {
		return fmt.Errorf("remove working tree %s: %w", name, err)
	}
	if err := os.RemoveAll(dataDir); err != nil {
		return fmt.Errorf("remove working tree %s: %w", name, err)
	}
	return nil
}
