package worktree

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
)

// Handle is an open file of the tree. Its reads see every write made
// through any handle of the same file, as on a local disk.
type Handle struct {
	t      *Tree
	ino    uint64
	write  bool
	f      *os.File // the local data file, once the file has one
	closed bool
}

// Content says where the bytes of a file are right now: in the local data
// file, or in the store as file object ID.
type Content struct {
	Local bool
	ID    cas.ID
	Size  int64
}

// Open opens file ino. For writing, a clean file is first copied into a
// local data file (or just emptied, with trunc).
func (t *Tree) Open(ctx context.Context, ino uint64, write, trunc bool) (*Handle, error) {
	if write || trunc {
		t.mu.Lock()
		defer t.mu.Unlock()
	} else {
		t.mu.RLock()
		defer t.mu.RUnlock()
	}
	n, err := t.get(ino)
	if err != nil {
		return nil, err
	}
	switch n.Type {
	case object.TypeDir:
		return nil, syscall.EISDIR
	case object.TypeSymlink:
		return nil, syscall.ELOOP
	}
	h := &Handle{t: t, ino: ino, write: write}
	if write || trunc {
		if err := t.makeLocal(ctx, n, trunc); err != nil {
			return nil, err
		}
		if trunc {
			if err := os.Truncate(t.dataPath(ino), 0); err != nil {
				return nil, err
			}
			b := t.kv.NewBatch()
			defer b.Cancel()
			if err := t.dirty(b, n); err != nil {
				return nil, err
			}
			if err := b.Commit(); err != nil {
				return nil, err
			}
		}
		if write {
			t.writers[ino]++
		}
	}
	if n.local() {
		if h.f, err = os.OpenFile(t.dataPath(ino), os.O_RDWR, 0); err != nil {
			if write {
				t.writers[ino]--
			}
			return nil, fmt.Errorf("working tree %s: open data of %s: %w", t.dataset, n.Name, err)
		}
	}
	return h, nil
}

// Content tells where the file's bytes are now. A handle opened when the
// file was clean switches to the local file once someone writes to it.
func (h *Handle) Content() (Content, error) {
	t := h.t
	t.mu.RLock()
	defer t.mu.RUnlock()
	n, err := t.get(h.ino)
	if err != nil {
		if h.f != nil { // unlinked while open: the data file lives on
			fi, err := h.f.Stat()
			if err != nil {
				return Content{}, err
			}
			return Content{Local: true, Size: fi.Size()}, nil
		}
		return Content{}, err
	}
	if n.local() {
		if h.f == nil {
			f, err := os.OpenFile(t.dataPath(h.ino), os.O_RDWR, 0)
			if err != nil {
				return Content{}, err
			}
			h.f = f
		}
		fi, err := h.f.Stat()
		if err != nil {
			return Content{}, err
		}
		return Content{Local: true, Size: fi.Size()}, nil
	}
	return Content{ID: n.Origin, Size: n.Size}, nil
}

// ReadAt reads the local data file. Call it when Content says Local.
func (h *Handle) ReadAt(p []byte, off int64) (int, error) {
	h.t.mu.RLock()
	defer h.t.mu.RUnlock()
	if h.f == nil {
		return 0, syscall.EBADF
	}
	n, err := h.f.ReadAt(p, off)
	if n > 0 || err == nil {
		return n, nil
	}
	if err.Error() == "EOF" || n == 0 {
		return 0, nil
	}
	return n, err
}

// WriteAt writes p at off; the bytes are in the kernel when it returns.
func (h *Handle) WriteAt(p []byte, off int64) (int, error) {
	if !h.write || h.f == nil {
		return 0, syscall.EBADF
	}
	h.t.mu.RLock()
	defer h.t.mu.RUnlock()
	return h.f.WriteAt(p, off)
}

// Sync makes the file's bytes and the tree's records durable.
func (h *Handle) Sync() error {
	if h.f != nil {
		if err := h.f.Sync(); err != nil {
			return err
		}
	}
	if s, ok := h.t.kv.(interface{ Sync() error }); ok {
		return s.Sync()
	}
	return nil
}

// Close releases the handle.
func (h *Handle) Close() error {
	t := h.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	if h.write {
		if t.writers[h.ino]--; t.writers[h.ino] <= 0 {
			delete(t.writers, h.ino)
		}
	}
	if h.f != nil {
		return h.f.Close()
	}
	return nil
}
