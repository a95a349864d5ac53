package worktree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
)

// Handle is an open file of the tree. Its reads see every write made
// through any handle of the same file, as on a local disk; once the file
// is unlinked or replaced they see the bytes it had then.
type Handle struct {
	t     *Tree
	ino   uint64
	write bool

	mu sync.Mutex // guards what follows; taken after t.mu
	// f is a descriptor of the file's data file (generation gen), once
	// the handle has needed one. Older descriptors, of data files that a
	// snapshot dropped, stay open in old until Close, as a read may be
	// using them.
	f   *os.File
	gen uint64
	old []*os.File
	// gone is the content the file had when it left the tree (Local:
	// in f), set by detach.
	gone   *Content
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
	}
	if n.local() {
		if h.f, err = os.OpenFile(t.dataPath(ino), os.O_RDWR, 0); err != nil {
			return nil, fmt.Errorf("working tree %s: open data of %s: %w", t.dataset, n.Name, err)
		}
		h.gen = n.gen
	}
	if write {
		t.writers[ino]++
	}
	// A read handle registers under the read lock: handles has its own
	// lock for that, taken by every user below t.mu.
	t.handlesMu.Lock()
	hs := t.handles[ino]
	if hs == nil {
		hs = map[*Handle]struct{}{}
		t.handles[ino] = hs
	}
	hs[h] = struct{}{}
	t.handlesMu.Unlock()
	return h, nil
}

// Content tells where the file's bytes are now. A handle opened when the
// file was clean switches to the local file once someone writes to it.
func (h *Handle) Content() (Content, error) {
	t := h.t
	t.mu.RLock()
	defer t.mu.RUnlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone != nil {
		if !h.gone.Local {
			return *h.gone, nil
		}
		return h.localContent()
	}
	n, err := t.get(h.ino)
	if err != nil {
		return Content{}, err
	}
	if !n.local() {
		return Content{ID: n.Origin, Size: n.Size}, nil
	}
	if h.f == nil || h.gen != n.gen {
		f, err := os.OpenFile(t.dataPath(h.ino), os.O_RDWR, 0)
		if err != nil {
			return Content{}, fmt.Errorf("working tree %s: open data of %s: %w", t.dataset, n.Name, err)
		}
		if h.f != nil {
			h.old = append(h.old, h.f)
		}
		h.f, h.gen = f, n.gen
	}
	return h.localContent()
}

func (h *Handle) localContent() (Content, error) {
	fi, err := h.f.Stat()
	if err != nil {
		return Content{}, err
	}
	return Content{Local: true, Size: fi.Size()}, nil
}

// detach keeps what the handle reads when n leaves the tree. t.mu is
// held exclusively.
func (h *Handle) detach(n *node) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.gone != nil {
		return
	}
	if !n.local() {
		h.gone = &Content{ID: n.Origin, Size: n.Size}
		return
	}
	if h.f == nil || h.gen != n.gen {
		f, err := os.OpenFile(h.t.dataPath(n.ino), os.O_RDWR, 0)
		if err != nil {
			// Reads will fail with EBADF; the tree goes on.
			h.t.log.Error("keep the data of a removed file open", "dataset", h.t.dataset, "file", n.Name, "err", err)
			h.gone = &Content{Local: true}
			return
		}
		if h.f != nil {
			h.old = append(h.old, h.f)
		}
		h.f, h.gen = f, n.gen
	}
	h.gone = &Content{Local: true}
}

func (h *Handle) file() *os.File {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.f
}

// ReadAt reads the local data file. Call it when Content says Local; at
// the end of the file it returns fewer bytes, and no error.
func (h *Handle) ReadAt(p []byte, off int64) (int, error) {
	h.t.mu.RLock()
	defer h.t.mu.RUnlock()
	f := h.file()
	if f == nil {
		return 0, syscall.EBADF
	}
	n, err := f.ReadAt(p, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// WriteAt writes p at off; the bytes are in the kernel when it returns.
func (h *Handle) WriteAt(p []byte, off int64) (int, error) {
	h.t.mu.RLock()
	defer h.t.mu.RUnlock()
	f := h.file()
	if !h.write || f == nil {
		return 0, syscall.EBADF
	}
	return f.WriteAt(p, off)
}

// Sync makes the file's bytes and the tree's records durable.
func (h *Handle) Sync() error {
	if f := h.file(); f != nil {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return h.t.syncKV()
}

// syncKV makes the index's committed writes durable, if it can.
func (t *Tree) syncKV() error {
	if s, ok := t.kv.(interface{ Sync() error }); ok {
		return s.Sync()
	}
	return nil
}

// Close releases the handle.
func (h *Handle) Close() error {
	t := h.t
	t.mu.Lock()
	defer t.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	if h.write {
		if t.writers[h.ino]--; t.writers[h.ino] <= 0 {
			delete(t.writers, h.ino)
			t.settle()
		}
	}
	t.handlesMu.Lock()
	if hs := t.handles[h.ino]; hs != nil {
		delete(hs, h)
		if len(hs) == 0 {
			delete(t.handles, h.ino)
		}
	}
	t.handlesMu.Unlock()
	var err error
	for _, f := range append(h.old, h.f) {
		if f != nil {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	}
	h.f, h.old = nil, nil
	return err
}
