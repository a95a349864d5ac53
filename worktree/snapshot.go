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
	s := &snapshot{t: t, ctx: ctx, w: w, walkCounts: !t.meta.Counted}
	root, err := t.get(RootIno)
	if err != nil {
		return nil, err
	}
	id, _, below, err := s.dir(root, "")
	if err != nil {
		return nil, err
	}
	m := t.meta
	if m.Counted {
		below = tally{m.Files, m.Bytes + s.grown}
	}
	m.Files, m.Bytes, m.Counted = below.files, below.bytes, true
	w.Count(below.files-s.stored.files, below.bytes-s.stored.bytes)
	// Looked at before the commit, after which the new version is the
	// latest, with the remote listed now: a version another machine made
	// a moment ago makes this one stale too. A failure to tell only costs
	// the warning.
	stale, err := behindLatest(ctx, r, t.objs, t.dataset, t.meta.Base, true)
	if err != nil {
		t.log.Debug("tell whether a snapshot's base is the latest version", "version", ref.String(), "err", err)
	}
	vi, err := w.Commit(ref, id, t.meta.Base, message)
	if err != nil {
		return nil, err
	}
	if stale != nil {
		t.warnStale(ref, stale)
	}
	// The version exists: the walked nodes are clean now, and the tree
	// carries on from it, following the latest version again.
	b := t.kv.NewBatch()
	defer b.Cancel()
	m.Base, m.Pinned = vi.ID, false
	b.Set(t.key("meta"), m.encode())
	for _, u := range s.updates {
		b.Set(t.nodeKey(u.n.ino), u.to.encode())
	}
	if err := b.Commit(); err != nil {
		// The version is whole; only the bookkeeping of what is clean was
		// lost, and the next snapshot will store the same objects again.
		t.log.Error("record a snapshot in the working tree", "version", ref.String(), "err", err)
	} else {
		t.meta = m
		// Records that no longer name a data file must reach the disk
		// before the files go, or a machine crash could leave records of
		// local files without their bytes. One sync per snapshot.
		keep := t.syncKV() != nil
		for _, u := range s.updates {
			*u.n = u.to
			if u.drop && !keep {
				os.Remove(t.dataPath(u.n.ino))
			}
		}
		t.unsettled = nil
		if len(s.open) > 0 {
			t.unsettled = &unsettled{changes: t.changes, files: s.open, updates: s.deferred}
		}
	}
	return &SnapshotResult{VersionInfo: vi, Stored: int(s.stored.files), NewBytes: w.NewBytes()}, nil
}

// StoreTree stores the tree as it is now through w and returns its root
// tree's id, for callers that name it themselves (a run's folder is
// published as a ref, not as a dataset's version). Unlike Snapshot it
// changes nothing: changed files keep their local bytes, so that writers
// carry on appending without copying them back from the store, and the
// next StoreTree stores them again (the writer's file cache and the
// store's dedup make unchanged files and chunks cost a stat). skip, if
// set, is asked about each changed file by its path from the top
// ("artifacts/model.bin"): true leaves it out. The counts of files and
// bytes go to w, for the version that names the tree.
func (t *Tree) StoreTree(ctx context.Context, w *repo.Writer, skip func(path string) bool) (cas.ID, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &snapshot{t: t, ctx: ctx, w: w, walkCounts: true, skip: skip, storeOnly: true}
	root, err := t.get(RootIno)
	if err != nil {
		return cas.ID{}, err
	}
	id, _, below, err := s.dir(root, "")
	if err != nil {
		return cas.ID{}, err
	}
	w.Count(below.files-s.stored.files, below.bytes-s.stored.bytes)
	return id, nil
}

type snapshot struct {
	t       *Tree
	ctx     context.Context
	w       *repo.Writer
	updates []update
	stored  tally // the changed files stored
	grown   int64 // bytes the changed files gained since they were counted
	// walkCounts is set when the tree's counts are unknown: the walk
	// counts every clean folder below a walked one too.
	walkCounts bool
	// skip and storeOnly are StoreTree's: skip leaves changed files out,
	// and storeOnly records nothing in the index (its trees are not the
	// tree's, so their counts are not worth keeping).
	skip      func(path string) bool
	storeOnly bool
	// open are the changed files still open for writing, as they were
	// stored, and deferred the updates that would make them and the
	// folders above them clean: the tree's unsettled.
	open     map[uint64]os.FileInfo
	deferred []update
}

// tally counts files and their bytes.
type tally struct{ files, bytes int64 }

func (a *tally) add(b tally) { a.files += b.files; a.bytes += b.bytes }

// update is what a node becomes once the version is committed.
type update struct {
	n    *node
	to   node // n as it will be
	drop bool // the local data file is no longer needed
}

// cleanUpdate makes n clean as content id.
func cleanUpdate(n *node, id cas.ID) update {
	u := update{n: n, to: *n}
	u.to.Flags |= flagClean
	u.to.Origin = id
	return u
}

// dir stores the tree of folder n (at path, "" for the top), walking only
// what changed. It returns the tree's id, whether everything below will
// be clean once the version is committed (not so with files still open
// for writing), and, when s.walkCounts, the files and bytes below.
func (s *snapshot) dir(n *node, path string) (cas.ID, bool, tally, error) {
	t := s.t
	if n.clean() {
		var c tally
		if s.walkCounts {
			var err error
			if c.files, c.bytes, err = t.counts(s.ctx, n.Origin); err != nil {
				return cas.ID{}, false, c, err
			}
		}
		return n.Origin, true, c, nil
	}
	d, err := t.dir(s.ctx, n.ino)
	if err != nil {
		return cas.ID{}, false, tally{}, err
	}
	names := make([]string, 0, len(d.children))
	for name := range d.children {
		names = append(names, name)
	}
	sort.Strings(names)
	tree := &object.Tree{Entries: make([]object.Entry, 0, len(names))}
	allClean := true
	var sum tally
	for _, name := range names {
		c, err := t.get(d.children[name])
		if err != nil {
			return cas.ID{}, false, sum, err
		}
		if s.skip != nil && c.Type == object.TypeFile && c.local() && s.skip(path+name) {
			continue
		}
		e := object.Entry{Name: name, Type: c.Type, Perm: c.Perm, MTime: c.MTime}
		clean := true
		switch c.Type {
		case object.TypeSymlink:
			e.Target = c.Target
		case object.TypeDir:
			var below tally
			if e.ID, clean, below, err = s.dir(c, path+name+"/"); err != nil {
				return cas.ID{}, false, sum, err
			}
			sum.add(below)
		case object.TypeFile:
			if clean, err = s.file(c, &e); err != nil {
				return cas.ID{}, false, sum, err
			}
			sum.add(tally{1, e.Size})
		}
		allClean = allClean && clean
		tree.Entries = append(tree.Entries, e)
	}
	id, err := s.w.PutTree(tree)
	if err != nil {
		return cas.ID{}, false, sum, fmt.Errorf("snapshot %s: %w", t.dataset, err)
	}
	if s.walkCounts && !s.storeOnly {
		t.saveCounts(id, sum)
	}
	if allClean {
		s.updates = append(s.updates, cleanUpdate(d, id))
	} else {
		// A folder above a file still open for writing stays dirty, so
		// that the next snapshot walks down to it again, unless the file
		// is closed unchanged (settle).
		s.deferred = append(s.deferred, cleanUpdate(d, id))
	}
	return id, allClean, sum, nil
}

// file fills e for file c, storing its bytes if they changed, and tells
// whether c will be clean once the version is committed.
func (s *snapshot) file(c *node, e *object.Entry) (bool, error) {
	t := s.t
	if !c.local() {
		e.ID, e.Size = c.Origin, c.Size
		return true, nil
	}
	path := t.dataPath(c.ino)
	fi, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("snapshot %s: %s: %w", t.dataset, c.Name, err)
	}
	id, size, err := s.w.PutFile(path)
	if err != nil {
		return false, fmt.Errorf("snapshot %s: %s: %w", t.dataset, c.Name, err)
	}
	s.stored.add(tally{1, size})
	s.grown += size - c.Size
	e.ID, e.Size, e.MTime = id, size, fi.ModTime().UnixNano()
	u := cleanUpdate(c, id)
	u.to.Flags &^= flagLocal
	u.to.Size, u.to.MTime = size, e.MTime
	u.drop = true
	if t.writers[c.ino] > 0 {
		// Still open for writing: it stays local and dirty so that later
		// writes go into the next snapshot, counted at its size now.
		stay := update{n: c, to: *c}
		stay.to.Size = size
		s.updates = append(s.updates, stay)
		if s.open == nil {
			s.open = map[uint64]os.FileInfo{}
		}
		s.open[c.ino] = fi
		s.deferred = append(s.deferred, u)
		return false, nil
	}
	s.updates = append(s.updates, u)
	return true, nil
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

// saveCounts records the counts of a tree just built.
func (t *Tree) saveCounts(id cas.ID, c tally) {
	t.kv.Set([]byte("tc/"+string(id[:])), binary.AppendUvarint(binary.AppendUvarint(nil, uint64(c.files)), uint64(c.bytes)))
}

// unsettled is what a snapshot left changed only because files were open
// for writing: the state of the tree then (changes), the files as they
// were stored, and the updates that make them and the folders above them
// clean.
type unsettled struct {
	changes uint64
	files   map[uint64]os.FileInfo
	updates []update
}

// settle makes clean what the last snapshot left changed only because
// files were open for writing, once they are all closed, unchanged, and
// nothing else changed: the tree is then its base version again. The
// kernel tells of a close only after close(2) has returned, so a script's
// "echo x > ds/f; mkdir ds@v2" often snapshots f while it is open; without
// this the tree would look changed for good, and would not follow newer
// versions. t.mu must be held exclusively.
func (t *Tree) settle() {
	u := t.unsettled
	if u == nil {
		return
	}
	for ino := range u.files {
		if t.writers[ino] > 0 {
			return // not yet: the last writer settles
		}
	}
	t.unsettled = nil
	if u.changes != t.changes {
		return
	}
	for ino, stored := range u.files {
		if fi, err := os.Stat(t.dataPath(ino)); err != nil || !sameFile(stored, fi) {
			return // written since the snapshot
		}
	}
	b := t.kv.NewBatch()
	defer b.Cancel()
	for _, up := range u.updates {
		b.Set(t.nodeKey(up.n.ino), up.to.encode())
	}
	if err := b.Commit(); err != nil {
		t.log.Warn("record files closed after a snapshot as unchanged", "dataset", t.dataset, "err", err)
		return
	}
	for _, up := range u.updates {
		up.n.record = up.to.record
	}
	// As after a snapshot: the records that no longer name the data
	// files must be durable before the files go.
	if t.syncKV() == nil {
		for _, up := range u.updates {
			if up.drop {
				os.Remove(t.dataPath(up.n.ino))
			}
		}
	}
}

// Changed reports whether the tree differs from its base version.
func (t *Tree) Changed() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.changed()
}

func (t *Tree) changed() bool {
	root, err := t.get(RootIno)
	return err != nil || !root.clean() && !(t.meta.Base.IsZero() && root.loaded() && len(root.children) == 0)
}

// Checkout resets the tree to version v (id and tree), which it then
// follows (see Follow). Unless force, it refuses with ErrChanged when the
// tree has changes in no version, and with EBUSY when a file is open for
// writing.
func (t *Tree) Checkout(ctx context.Context, version, tree cas.ID, force bool) error {
	return t.checkout(ctx, version, tree, force, false)
}

// checkout is Checkout, pinning the tree at the version if pinned.
func (t *Tree) checkout(ctx context.Context, version, tree cas.ID, force, pinned bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !force && t.changed() {
		return ErrChanged
	}
	if len(t.writers) > 0 && !force {
		return syscall.EBUSY
	}
	return t.reset(ctx, version, tree, pinned)
}
