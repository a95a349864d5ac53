package worktree

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"syscall"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/index"
	"github.com/mlfs/mlfs/repo"
)

// ErrChanged means a checkout would drop changes not in any version.
var ErrChanged = errors.New("the working tree has changes that are in no version")

// SnapshotResult describes a snapshot.
type SnapshotResult struct {
	repo.VersionInfo
	// Stored counts the changed files chunked and stored; NewBytes the
	// chunk bytes the store did not have.
	Stored   int
	NewBytes int64
}

// Snapshot makes the tree as it is now the version ref (its parent is the
// tree's base) and carries on from it. It fails with an error wrapping
// cas.ErrExists, and changes nothing, if the name is taken.
func (t *Tree) Snapshot(ctx context.Context, r *repo.Repo, ref repo.Ref, message string) (*SnapshotResult, error) {
	if ref.Dataset != t.dataset {
		return nil, fmt.Errorf("snapshot %s of the working tree of %s", ref, t.dataset)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	w, err := r.NewWriter(ctx)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	s := &snapshot{t: t, ctx: ctx, w: w}
	root, err := t.get(RootIno)
	if err != nil {
		return nil, err
	}
	id, err := s.dir(root)
	if err != nil {
		return nil, err
	}
	vi, err := w.Commit(ref, id, t.meta.Base, message)
	if err != nil {
		return nil, err
	}
	// The version exists: the walked nodes are clean now.
	b := t.kv.NewBatch()
	defer b.Cancel()
	m := t.meta
	m.Base = vi.ID
	b.Set(t.key("meta"), m.encode())
	for _, u := range s.updates {
		u.n.Flags |= flagClean
		u.n.Origin = u.id
		if u.drop {
			u.n.Flags &^= flagLocal
			u.n.Size, u.n.MTime = u.size, u.mtime
		}
		b.Set(t.nodeKey(u.n.ino), u.n.encode())
	}
	if err := b.Commit(); err != nil {
		// The version is whole; only the bookkeeping of what is clean was
		// lost, and the next snapshot will store the same objects again.
		t.log.Error("record a snapshot in the working tree", "version", ref.String(), "err", err)
	} else {
		t.meta = m
		for _, u := range s.updates {
			if u.drop {
				os.Remove(t.dataPath(u.n.ino))
			}
		}
	}
	return &SnapshotResult{VersionInfo: vi, Stored: s.stored, NewBytes: w.NewBytes()}, nil
}

type snapshot struct {
	t       *Tree
	ctx     context.Context
	w       *repo.Writer
	updates []update
	stored  int
}

// update is what a node becomes once the version is committed.
type update struct {
	n     *node
	id    cas.ID
	drop  bool // the local data file is no longer needed
	size  int64
	mtime int64
}

// dir stores the tree of folder n, walking only what changed.
func (s *snapshot) dir(n *node) (cas.ID, error) {
	t := s.t
	if n.clean() {
		files, bytes, err := t.counts(s.ctx, n.Origin)
		if err != nil {
			return cas.ID{}, err
		}
		s.w.Count(files, bytes)
		return n.Origin, nil
	}
	d, err := t.dir(s.ctx, n.ino)
	if err != nil {
		return cas.ID{}, err
	}
	names := make([]string, 0, len(d.children))
	for name := range d.children {
		names = append(names, name)
	}
	sort.Strings(names)
	tree := &object.Tree{Entries: make([]object.Entry, 0, len(names))}
	for _, name := range names {
		c, err := t.get(d.children[name])
		if err != nil {
			return cas.ID{}, err
		}
		e := object.Entry{Name: name, Type: c.Type, Perm: c.Perm, MTime: c.MTime}
		switch c.Type {
		case object.TypeSymlink:
			e.Target = c.Target
		case object.TypeDir:
			if e.ID, err = s.dir(c); err != nil {
				return cas.ID{}, err
			}
		case object.TypeFile:
			if err := s.file(c, &e); err != nil {
				return cas.ID{}, err
			}
		}
		tree.Entries = append(tree.Entries, e)
	}
	id, err := s.w.PutTree(tree)
	if err != nil {
		return cas.ID{}, fmt.Errorf("snapshot %s: %w", t.dataset, err)
	}
	if err := t.saveCounts(id, tree); err != nil {
		return cas.ID{}, err
	}
	s.updates = append(s.updates, update{n: d, id: id})
	return id, nil
}

// file fills e for file c, storing its bytes if they changed.
func (s *snapshot) file(c *node, e *object.Entry) error {
	t := s.t
	if !c.local() {
		e.ID, e.Size = c.Origin, c.Size
		s.w.Count(1, c.Size)
		return nil
	}
	path := t.dataPath(c.ino)
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("snapshot %s: %s: %w", t.dataset, c.Name, err)
	}
	id, size, err := s.w.PutFile(path)
	if err != nil {
		return fmt.Errorf("snapshot %s: %s: %w", t.dataset, c.Name, err)
	}
	s.stored++
	e.ID, e.Size, e.MTime = id, size, fi.ModTime().UnixNano()
	if t.writers[c.ino] > 0 {
		// Still open for writing: it stays dirty so that later writes go
		// into the next snapshot.
		return nil
	}
	s.updates = append(s.updates, update{n: c, id: id, drop: true, size: size, mtime: e.MTime})
	return nil
}

// counts returns the files and bytes below tree id, from the index or by
// walking its trees once (tree ids never change meaning, so it is kept).
func (t *Tree) counts(ctx context.Context, id cas.ID) (int64, int64, error) {
	key := []byte("tc/" + string(id[:]))
	if b, err := t.kv.Get(key); err == nil {
		files, n1 := binary.Uvarint(b)
		bytes, n2 := binary.Uvarint(b[max(n1, 0):])
		if n1 > 0 && n2 > 0 {
			return int64(files), int64(bytes), nil
		}
	} else if !errors.Is(err, index.ErrNotFound) {
		return 0, 0, err
	}
	raw, err := t.objs.Get(ctx, id)
	if err != nil {
		return 0, 0, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	tree, err := object.DecodeTree(raw)
	if err != nil {
		return 0, 0, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	var files, bytes int64
	for _, e := range tree.Entries {
		switch e.Type {
		case object.TypeFile:
			files++
			bytes += e.Size
		case object.TypeDir:
			f, b, err := t.counts(ctx, e.ID)
			if err != nil {
				return 0, 0, err
			}
			files += f
			bytes += b
		}
	}
	t.kv.Set(key, binary.AppendUvarint(binary.AppendUvarint(nil, uint64(files)), uint64(bytes)))
	return files, bytes, nil
}

// saveCounts records the counts of a tree just built, whose subfolders'
// counts are known.
func (t *Tree) saveCounts(id cas.ID, tree *object.Tree) error {
	var files, bytes int64
	for _, e := range tree.Entries {
		switch e.Type {
		case object.TypeFile:
			files++
			bytes += e.Size
		case object.TypeDir:
			f, b, err := t.counts(context.Background(), e.ID)
			if err != nil {
				return err
			}
			files += f
			bytes += b
		}
	}
	return t.kv.Set([]byte("tc/"+string(id[:])), binary.AppendUvarint(binary.AppendUvarint(nil, uint64(files)), uint64(bytes)))
}

// Changed reports whether the tree differs from its base version.
func (t *Tree) Changed() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	root, err := t.get(RootIno)
	return err != nil || !root.clean() && !(t.meta.Base.IsZero() && root.loaded() && len(root.children) == 0)
}

// Checkout resets the tree to version v (id and tree). Unless force, it
// refuses with ErrChanged when the tree has changes in no version, and
// with EBUSY when a file is open for writing.
func (t *Tree) Checkout(ctx context.Context, version, tree cas.ID, force bool) error {
	if !force && t.Changed() {
		return ErrChanged
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.writers) > 0 && !force {
		return syscall.EBUSY
	}
	return t.reset(version, tree)
}
