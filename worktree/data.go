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

// Open opens file ino. A clean file opened for writing stays clean, its
// bytes in the store, until the first write through the handle copies it
// into a local data file (see WriteAt), so that a handle that writes
// nothing changes nothing: the tree stays its base version, and follows
// newer ones once the handle is closed. With trunc a file that is not
// empty is emptied now, which is a change.
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
	// Emptying a clean empty file changes nothing.
	if trunc && (n.local() || n.Size > 0) {
		if err := t.makeLocal(ctx, n, true); err != nil {
			return nil, err
		}
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
// The first write to a clean file copies it into a local data file (the
// file, and the tree, are changed from then on), under the tree's lock
// held exclusively; later writes take it shared.
func (h *Handle) WriteAt(p []byte, off int64) (int, error) {
	t := h.t
	t.mu.RLock()
	f, err := h.writeFile(false)
	if err != nil || f != nil {
		defer t.mu.RUnlock()
		if err != nil {
			return 0, err
		}
		return f.WriteAt(p, off)
	}
	t.mu.RUnlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if f, err = h.writeFile(true); err != nil {
		return 0, err
	}
	return f.WriteAt(p, off)
}

// writeFile returns the descriptor of the data file that a write through
// the handle goes to. With the tree's lock held shared (!exclusive) it
// returns nil and no error when the file is clean: the caller retakes the
// lock exclusively, and writeFile then makes the file local. The copy
// out of the store is not bound by the caller's context: WriteAt has
// none, and an interrupted copy would fail a write that the file's
// content allows.
func (h *Handle) writeFile(exclusive bool) (*os.File, error) {
	t := h.t
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.write || h.closed {
		return nil, syscall.EBADF
	}
	if h.gone != nil {
		if h.gone.Local {
			if h.f == nil {
				return nil, syscall.EBADF
			}
			return h.f, nil
		}
		if !exclusive {
			return nil, nil
		}
		// Removed from the tree, unchanged: as to a removed file on a
		// disk, writes go to the handle's own copy, which nothing else
		// sees.
		f, err := t.privateCopy(context.Background(), h.gone.ID)
		if err != nil {
			return nil, err
		}
		h.f, h.gone = f, &Content{Local: true}
		return f, nil
	}
	n, err := t.get(h.ino)
	if err != nil {
		return nil, err
	}
	if !n.local() {
		if !exclusive {
			return nil, nil
		}
		if err := t.makeLocal(context.Background(), n, false); err != nil {
			return nil, err
		}
	}
	if h.f == nil || h.gen != n.gen {
		f, err := os.OpenFile(t.dataPath(h.ino), os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("working tree %s: open data of %s: %w", t.dataset, n.Name, err)
		}
		if h.f != nil {
			h.old = append(h.old, h.f)
		}
		h.f, h.gen = f, n.gen
	}
	return h.f, nil
}

// privateCopy returns a removed file holding the bytes of file object id.
// t.mu is held exclusively.
func (t *Tree) privateCopy(ctx context.Context, id cas.ID) (*os.File, error) {
	f, err := os.CreateTemp(t.dataDir, "removed-*")
	if err != nil {
		return nil, fmt.Errorf("working tree %s: copy a removed file: %w", t.dataset, err)
	}
	os.Remove(f.Name())
	if !id.IsZero() {
		if err := t.copyOut(ctx, id, f); err != nil {
			f.Close()
			t.log.Error("copy a removed file of the working tree out of the store", "dataset", t.dataset, "err", err)
			return nil, syscall.EIO
		}
	}
	return f, nil
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
