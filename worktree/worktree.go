package worktree

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/index"
)

// RootIno is the inode number of the tree's top folder.
const RootIno = 1

// Attr describes a node.
type Attr struct {
	Ino    uint64
	Type   object.EntryType
	Perm   uint32
	MTime  int64
	Size   int64
	Target string
	// ID is the content id when the node is clean, else zero.
	ID cas.ID
	// Blocks is the 512-byte blocks a changed file takes on local disk
	// (less than its size when sparse); -1 when its bytes are in the store.
	Blocks int64
}

// DirEntry is one name in a folder listing.
type DirEntry struct {
	Name string
	Ino  uint64
	Type object.EntryType
}

// Tree is the working tree of one dataset. Its methods are safe for
// concurrent use. Errors that callers turn into errno values are
// syscall.Errno (ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, EINVAL).
type Tree struct {
	dataset string
	kv      index.KV
	prefix  string // of every key of this tree
	dataDir string // local file bytes
	objs    cas.Getter
	log     *slog.Logger

	mu      sync.RWMutex
	meta    meta
	nodes   map[uint64]*node
	writers map[uint64]int // open write handles per file
	// handles are the open handles per file. Open adds read handles
	// under the read lock, so handlesMu guards the map too; everything
	// that reads it holds t.mu exclusively.
	handlesMu sync.Mutex
	handles   map[uint64]map[*Handle]struct{}
	// changes counts the changes made to the tree (calls of dirty), so
	// that settle can tell that nothing changed since a snapshot.
	changes uint64
	// unsettled is what the last snapshot would have made clean but for
	// files open for writing then (see settle); nil if nothing.
	unsettled *unsettled
}

// node is a record in memory, with the children of a loaded folder.
type node struct {
	ino uint64
	record
	children map[string]uint64 // loaded folders only
	// gen counts the data files the node has had in this process: a
	// handle holding an older one must open the current one.
	gen uint64
}

func (n *node) clean() bool  { return n.Flags&flagClean != 0 }
func (n *node) local() bool  { return n.Flags&flagLocal != 0 }
func (n *node) loaded() bool { return n.Flags&flagLoaded != 0 }

// Open opens the working tree of dataset kept in kv, with local file bytes
// under dataDir. A tree that does not exist yet starts as the version
// whose tree is baseTree (baseVersion names it; both zero for an empty
// dataset). objs serves the base's tree objects and file bytes.
func Open(ctx context.Context, kv index.KV, dataDir, dataset string, baseVersion, baseTree cas.ID, objs cas.Getter, log *slog.Logger) (*Tree, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tree{dataset: dataset, kv: kv, prefix: "wt/" + dataset + "/", dataDir: dataDir, objs: objs, log: log,
		nodes: map[uint64]*node{}, writers: map[uint64]int{}, handles: map[uint64]map[*Handle]struct{}{}}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("working tree %s: %w", dataset, err)
	}
	b, err := kv.Get(t.key("meta"))
	switch {
	case err == nil:
		m, err := decodeMeta(b)
		if err != nil {
			return nil, fmt.Errorf("working tree %s: %w", dataset, err)
		}
		t.meta = *m
	case errors.Is(err, index.ErrNotFound):
		if err := t.reset(ctx, baseVersion, baseTree, false); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("working tree %s: %w", dataset, err)
	}
	if _, err := t.get(RootIno); err != nil {
		return nil, fmt.Errorf("working tree %s: %w", dataset, err)
	}
	return t, nil
}

// Exists reports whether kv holds a working tree of dataset.
func Exists(kv index.KV, dataset string) bool {
	_, err := kv.Get([]byte("wt/" + dataset + "/meta"))
	return err == nil
}

// List returns the datasets that have a working tree in kv, sorted. Trees
// whose name holds a ':' are not datasets' (run folders are trees named
// "run:<id>") and are left out.
func List(kv index.KV) ([]string, error) {
	var out []string
	err := kv.Scan([]byte("wt/"), func(k, _ []byte) error {
		// A dataset name has no '/'; a node's or child's key may end in
		// "/meta" (a child named meta of folder 0x2f), so match the whole.
		ds, rest, ok := strings.Cut(string(k[len("wt/"):]), "/")
		if ok && rest == "meta" && !strings.Contains(ds, ":") {
			out = append(out, ds)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// Dataset returns the tree's dataset name.
func (t *Tree) Dataset() string { return t.dataset }

// Base returns the version the tree carries on from (zero if none).
func (t *Tree) Base() cas.ID {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.meta.Base
}

func (t *Tree) key(parts ...string) []byte {
	k := t.prefix
	for _, p := range parts {
		k += p
	}
	return []byte(k)
}

func inoKey(ino uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], ino)
	return string(b[:])
}

func (t *Tree) nodeKey(ino uint64) []byte { return t.key("n/", inoKey(ino)) }

func (t *Tree) childKey(parent uint64, name string) []byte {
	return t.key("c/", inoKey(parent), name)
}

func (t *Tree) dataPath(ino uint64) string {
	return filepath.Join(t.dataDir, strconv.FormatUint(ino, 16))
}

// reset replaces the whole tree by the version base (tree id root; both
// zero for an empty tree), pinned there or following the latest version.
// t.mu must be held or t unshared.
func (t *Tree) reset(ctx context.Context, base, root cas.ID, pinned bool) error {
	// Inode numbers are never reused, not even across a reset: the kernel
	// and open handles may still name the old ones.
	m := meta{Base: base, Next: max(t.meta.Next, RootIno+1), Counted: true, Pinned: pinned}
	if !base.IsZero() {
		// The version's counts are the tree's; without them the next
		// snapshot counts by walking.
		raw, err := t.objs.Get(ctx, base)
		var v *object.Version
		if err == nil {
			v, err = object.DecodeVersion(raw)
		}
		if err == nil && v.Tree == root {
			m.Files, m.Bytes = v.Files, v.Bytes
		} else {
			t.log.Warn("read the counts of the working tree's base", "dataset", t.dataset, "version", base.String(), "err", err)
			m.Counted = false
		}
	}
	for ino := range t.handles {
		if n, err := t.get(ino); err == nil {
			t.detach(n)
		}
	}
	t.unsettled = nil
	b := t.kv.NewBatch()
	defer b.Cancel()
	if err := t.kv.Scan([]byte(t.prefix), func(k, _ []byte) error { return b.Delete(k) }); err != nil {
		return err
	}
	t.meta = m
	r := record{Type: object.TypeDir, Perm: 0o755, MTime: time.Now().UnixNano()}
	if root.IsZero() {
		r.Flags = flagLoaded
	} else {
		r.Flags, r.Origin = flagClean, root
	}
	b.Set(t.nodeKey(RootIno), r.encode())
	b.Set(t.key("meta"), t.meta.encode())
	if err := b.Commit(); err != nil {
		return fmt.Errorf("working tree %s: reset: %w", t.dataset, err)
	}
	t.nodes = map[uint64]*node{RootIno: {ino: RootIno, record: r, children: map[string]uint64{}}}
	if err := t.syncKV(); err != nil {
		// The old records may come back after a crash: keep their bytes.
		t.log.Warn("sync the index after resetting the working tree", "dataset", t.dataset, "err", err)
		return nil
	}
	ents, _ := os.ReadDir(t.dataDir)
	for _, e := range ents {
		os.Remove(filepath.Join(t.dataDir, e.Name()))
	}
	return nil
}

// get returns node ino, loading it from the index. t.mu must be held.
func (t *Tree) get(ino uint64) (*node, error) {
	if n, ok := t.nodes[ino]; ok {
		return n, nil
	}
	b, err := t.kv.Get(t.nodeKey(ino))
	if errors.Is(err, index.ErrNotFound) {
		return nil, syscall.ENOENT
	}
	if err != nil {
		return nil, err
	}
	r, err := decodeRecord(b)
	if err != nil {
		return nil, fmt.Errorf("working tree %s: node %d: %w", t.dataset, ino, err)
	}
	n := &node{ino: ino, record: *r}
	if n.Type == object.TypeDir && n.loaded() {
		n.children = map[string]uint64{}
		prefix := t.childKey(ino, "")
		err := t.kv.Scan(prefix, func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%w: child key", ErrMalformed)
			}
			n.children[string(k[len(prefix):])] = binary.BigEndian.Uint64(v)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("working tree %s: folder %d: %w", t.dataset, ino, err)
		}
	}
	t.nodes[ino] = n
	return n, nil
}

// dir returns folder ino with its children loaded, materializing them
// from its tree object the first time. t.mu must be held exclusively;
// see dirShared for readers.
func (t *Tree) dir(ctx context.Context, ino uint64) (*node, error) {
	n, err := t.get(ino)
	if err != nil {
		return nil, err
	}
	if n.Type != object.TypeDir {
		return nil, syscall.ENOTDIR
	}
	if n.loaded() {
		return n, nil
	}
	raw, err := t.objs.Get(ctx, n.Origin)
	var tree *object.Tree
	if err == nil {
		tree, err = object.DecodeTree(raw)
	}
	if err != nil {
		t.log.Error("read tree of the working tree", "dataset", t.dataset, "tree", n.Origin.String(), "err", err)
		return nil, syscall.EIO
	}
	b := t.kv.NewBatch()
	defer b.Cancel()
	n.children = make(map[string]uint64, len(tree.Entries))
	next := t.meta.Next
	var made []*node
	for _, e := range tree.Entries {
		c := &node{ino: next, record: record{Type: e.Type, Perm: e.Perm, MTime: e.MTime, Size: e.Size,
			Parent: ino, Name: e.Name, Target: e.Target, Flags: flagClean, Origin: e.ID}}
		if e.Type == object.TypeSymlink {
			c.Origin = cas.ID{} // a symlink's content is its target
		}
		next++
		n.children[e.Name] = c.ino
		b.Set(t.nodeKey(c.ino), c.encode())
		b.Set(t.childKey(ino, e.Name), []byte(inoKey(c.ino)))
		made = append(made, c)
	}
	m := t.meta
	m.Next = next
	b.Set(t.key("meta"), m.encode())
	n.Flags |= flagLoaded
	b.Set(t.nodeKey(ino), n.encode())
	if err := b.Commit(); err != nil {
		n.Flags &^= flagLoaded
		n.children = nil
		return nil, err
	}
	t.meta = m
	for _, c := range made {
		t.nodes[c.ino] = c
	}
	return n, nil
}

// dirShared is dir for callers holding the read lock: if the folder must
// be materialized it retakes the lock exclusively.
func (t *Tree) dirShared(ctx context.Context, ino uint64) (*node, error) {
	n, err := t.get(ino)
	if err == nil && n.Type == object.TypeDir && n.loaded() {
		return n, nil
	}
	if err != nil {
		return nil, err
	}
	if n.Type != object.TypeDir {
		return nil, syscall.ENOTDIR
	}
	t.mu.RUnlock()
	t.mu.Lock()
	n, err = t.dir(ctx, ino)
	t.mu.Unlock()
	t.mu.RLock()
	return n, err
}

func (t *Tree) attr(n *node) (Attr, error) {
	a := Attr{Ino: n.ino, Type: n.Type, Perm: n.Perm, MTime: n.MTime, Size: n.Size, Target: n.Target, Blocks: -1}
	if n.clean() {
		a.ID = n.Origin
	}
	if n.Type == object.TypeSymlink {
		a.Size = int64(len(n.Target))
	}
	if n.local() {
		fi, err := os.Stat(t.dataPath(n.ino))
		if err != nil {
			return a, fmt.Errorf("working tree %s: data of node %d: %w", t.dataset, n.ino, err)
		}
		a.Size, a.MTime = fi.Size(), fi.ModTime().UnixNano()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			a.Blocks = st.Blocks
		}
	}
	return a, nil
}

// GetAttr returns node ino's attributes.
func (t *Tree) GetAttr(ino uint64) (Attr, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n, err := t.get(ino)
	if err != nil {
		return Attr{}, err
	}
	return t.attr(n)
}

// Lookup finds name in folder parent.
func (t *Tree) Lookup(ctx context.Context, parent uint64, name string) (Attr, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	d, err := t.dirShared(ctx, parent)
	if err != nil {
		return Attr{}, err
	}
	ino, ok := d.children[name]
	if !ok {
		return Attr{}, syscall.ENOENT
	}
	n, err := t.get(ino)
	if err != nil {
		return Attr{}, err
	}
	return t.attr(n)
}

// ReadDir lists folder ino, sorted by name.
func (t *Tree) ReadDir(ctx context.Context, ino uint64) ([]DirEntry, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	d, err := t.dirShared(ctx, ino)
	if err != nil {
		return nil, err
	}
	out := make([]DirEntry, 0, len(d.children))
	for name, c := range d.children {
		n, err := t.get(c)
		if err != nil {
			return nil, err
		}
		out = append(out, DirEntry{Name: name, Ino: c, Type: n.Type})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// dirty marks n changed and every folder above it dirty, recording each
// in b. t.mu must be held exclusively.
func (t *Tree) dirty(b index.Batch, n *node) error {
	t.changes++
	for {
		if n.clean() || n.Type == object.TypeDir {
			n.Flags &^= flagClean
			b.Set(t.nodeKey(n.ino), n.encode())
		}
		if n.ino == RootIno {
			return nil
		}
		p, err := t.get(n.Parent)
		if err != nil {
			return err
		}
		if !p.clean() {
			// Folders above a dirty folder are dirty already.
			if p.ino != RootIno || n.Type != object.TypeDir {
				b.Set(t.nodeKey(p.ino), p.encode())
			}
			return nil
		}
		n = p
	}
}

// touchDir sets a folder's mtime to now, as a change of its entries does.
func touchDir(d *node) { d.MTime = time.Now().UnixNano() }

func checkName(name string) error {
	if len(name) > object.MaxNameLen {
		return syscall.ENAMETOOLONG
	}
	if object.CheckName(name) != nil {
		return syscall.EINVAL
	}
	return nil
}

// add creates a node named name in folder parent and returns it.
func (t *Tree) add(ctx context.Context, parent uint64, name string, r record, withData bool) (Attr, error) {
	if err := checkName(name); err != nil {
		return Attr{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d, err := t.dir(ctx, parent)
	if err != nil {
		return Attr{}, err
	}
	if _, ok := d.children[name]; ok {
		return Attr{}, syscall.EEXIST
	}
	n := &node{ino: t.meta.Next, record: r}
	n.Parent, n.Name = parent, name
	if n.MTime == 0 {
		n.MTime = time.Now().UnixNano()
	}
	if n.Type == object.TypeDir {
		n.Flags |= flagLoaded
		n.children = map[string]uint64{}
	}
	if withData {
		f, err := os.OpenFile(t.dataPath(n.ino), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return Attr{}, fmt.Errorf("working tree %s: create %s: %w", t.dataset, name, err)
		}
		f.Close()
		n.Flags |= flagLocal
	}
	m := t.meta
	m.Next++
	if n.Type == object.TypeFile {
		m.Files++ // at size 0, as the record says
	}
	b := t.kv.NewBatch()
	defer b.Cancel()
	b.Set(t.key("meta"), m.encode())
	b.Set(t.nodeKey(n.ino), n.encode())
	b.Set(t.childKey(parent, name), []byte(inoKey(n.ino)))
	touchDir(d)
	if err := t.dirty(b, d); err != nil {
		return Attr{}, err
	}
	if err := b.Commit(); err != nil {
		return Attr{}, err
	}
	t.meta = m
	d.children[name] = n.ino
	t.nodes[n.ino] = n
	return t.attr(n)
}

// Create makes an empty file; EEXIST if name exists.
func (t *Tree) Create(ctx context.Context, parent uint64, name string, perm uint32) (Attr, error) {
	return t.add(ctx, parent, name, record{Type: object.TypeFile, Perm: perm & 0o7777}, true)
}

// Mkdir makes an empty folder.
func (t *Tree) Mkdir(ctx context.Context, parent uint64, name string, perm uint32) (Attr, error) {
	return t.add(ctx, parent, name, record{Type: object.TypeDir, Perm: perm & 0o7777}, false)
}

// Symlink makes a symlink to target, which must be one a version can
// hold (object.CheckTarget: UTF-8, no NUL, not empty, not too long).
func (t *Tree) Symlink(ctx context.Context, parent uint64, name, target string) (Attr, error) {
	if object.CheckTarget(target) != nil {
		return Attr{}, syscall.EINVAL
	}
	return t.add(ctx, parent, name, record{Type: object.TypeSymlink, Perm: 0o777, Target: target}, false)
}

// Unlink removes a file or symlink.
func (t *Tree) Unlink(ctx context.Context, parent uint64, name string) error {
	return t.remove(ctx, parent, name, false)
}

// Rmdir removes an empty folder.
func (t *Tree) Rmdir(ctx context.Context, parent uint64, name string) error {
	return t.remove(ctx, parent, name, true)
}

func (t *Tree) remove(ctx context.Context, parent uint64, name string, isDir bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	d, err := t.dir(ctx, parent)
	if err != nil {
		return err
	}
	ino, ok := d.children[name]
	if !ok {
		return syscall.ENOENT
	}
	n, err := t.get(ino)
	if err != nil {
		return err
	}
	switch {
	case isDir && n.Type != object.TypeDir:
		return syscall.ENOTDIR
	case !isDir && n.Type == object.TypeDir:
		return syscall.EISDIR
	}
	if isDir {
		if n, err = t.dir(ctx, ino); err != nil {
			return err
		}
		if len(n.children) > 0 {
			return syscall.ENOTEMPTY
		}
	}
	b := t.kv.NewBatch()
	defer b.Cancel()
	b.Delete(t.childKey(parent, name))
	b.Delete(t.nodeKey(ino))
	m := t.uncount(b, n)
	touchDir(d)
	if err := t.dirty(b, d); err != nil {
		return err
	}
	if err := b.Commit(); err != nil {
		return err
	}
	t.meta = m
	delete(d.children, name)
	t.drop(n)
	return nil
}

// uncount records in b the tree's counts without node n, which is going,
// and returns them; t.meta takes them once b is committed.
func (t *Tree) uncount(b index.Batch, n *node) meta {
	m := t.meta
	if n.Type == object.TypeFile {
		m.Files--
		m.Bytes -= n.Size
		b.Set(t.key("meta"), m.encode())
	}
	return m
}

// drop forgets node n, removed from the tree, once the removal is
// committed. Its open handles carry on reading what it held.
func (t *Tree) drop(n *node) {
	t.detach(n)
	delete(t.nodes, n.ino)
	if n.local() {
		os.Remove(t.dataPath(n.ino))
	}
}

// detach makes the open handles of n independent of the tree: each keeps
// the bytes n has now (a descriptor of its data file, or its content id).
func (t *Tree) detach(n *node) {
	for h := range t.handles[n.ino] {
		h.detach(n)
	}
}

// notBelow returns EINVAL if folder p is folder dir or lies below it.
// t.mu must be held.
func (t *Tree) notBelow(p, dir uint64) error {
	for {
		if p == dir {
			return syscall.EINVAL
		}
		if p == RootIno {
			return nil
		}
		pn, err := t.get(p)
		if err != nil {
			return err
		}
		p = pn.Parent
	}
}

// Rename flags, as renameat2(2).
const (
	RenameNoReplace = 1 // RENAME_NOREPLACE
	RenameExchange  = 2 // RENAME_EXCHANGE
)

// Rename moves oldName in folder oldParent to newName in newParent.
func (t *Tree) Rename(ctx context.Context, oldParent uint64, oldName string, newParent uint64, newName string, flags uint32) error {
	if err := checkName(newName); err != nil {
		return err
	}
	if flags&^(RenameNoReplace|RenameExchange) != 0 || flags == RenameNoReplace|RenameExchange {
		return syscall.EINVAL
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	od, err := t.dir(ctx, oldParent)
	if err != nil {
		return err
	}
	nd, err := t.dir(ctx, newParent)
	if err != nil {
		return err
	}
	ino, ok := od.children[oldName]
	if !ok {
		return syscall.ENOENT
	}
	n, err := t.get(ino)
	if err != nil {
		return err
	}
	if oldParent == newParent && oldName == newName {
		return nil
	}
	// A folder cannot move into itself or below.
	if n.Type == object.TypeDir {
		if err := t.notBelow(newParent, ino); err != nil {
			return err
		}
	}
	b := t.kv.NewBatch()
	defer b.Cancel()
	var victim *node
	if vino, exists := nd.children[newName]; exists {
		v, err := t.get(vino)
		if err != nil {
			return err
		}
		switch {
		case flags&RenameNoReplace != 0:
			return syscall.EEXIST
		case flags&RenameExchange != 0:
			if v.Type == object.TypeDir { // nor may the other one
				if err := t.notBelow(oldParent, vino); err != nil {
					return err
				}
			}
			v.Parent, v.Name = oldParent, oldName
			b.Set(t.nodeKey(v.ino), v.encode())
			b.Set(t.childKey(oldParent, oldName), []byte(inoKey(v.ino)))
		case n.Type == object.TypeDir && v.Type != object.TypeDir:
			return syscall.ENOTDIR
		case n.Type != object.TypeDir && v.Type == object.TypeDir:
			return syscall.EISDIR
		default:
			if v.Type == object.TypeDir {
				if v, err = t.dir(ctx, vino); err != nil {
					return err
				}
				if len(v.children) > 0 {
					return syscall.ENOTEMPTY
				}
			}
			victim = v
			b.Delete(t.nodeKey(v.ino))
		}
		if flags&RenameExchange == 0 {
			b.Delete(t.childKey(oldParent, oldName))
		}
	} else {
		if flags&RenameExchange != 0 {
			return syscall.ENOENT
		}
		b.Delete(t.childKey(oldParent, oldName))
	}
	m := t.meta
	if victim != nil {
		m = t.uncount(b, victim)
	}
	n.Parent, n.Name = newParent, newName
	b.Set(t.nodeKey(ino), n.encode())
	b.Set(t.childKey(newParent, newName), []byte(inoKey(ino)))
	touchDir(od)
	touchDir(nd)
	if err := t.dirty(b, od); err != nil {
		return err
	}
	if err := t.dirty(b, nd); err != nil {
		return err
	}
	if err := b.Commit(); err != nil {
		return err
	}
	if flags&RenameExchange != 0 {
		vino := nd.children[newName]
		od.children[oldName] = vino
	} else {
		delete(od.children, oldName)
	}
	nd.children[newName] = ino
	t.meta = m
	if victim != nil {
		t.drop(victim)
	}
	return nil
}

// SetAttr changes a node's mode, size or mtime (nil leaves it). Setting
// what a node whose bytes are not local has already (its mode, size or
// mtime) changes nothing, and leaves a clean node clean.
func (t *Tree) SetAttr(ctx context.Context, ino uint64, perm *uint32, size *int64, mtime *time.Time) (Attr, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.get(ino)
	if err != nil {
		return Attr{}, err
	}
	if size != nil {
		if n.Type == object.TypeDir {
			return Attr{}, syscall.EISDIR
		}
		if n.Type != object.TypeFile || *size < 0 {
			return Attr{}, syscall.EINVAL
		}
	}
	if !n.local() {
		if perm != nil && *perm&0o7777 == n.Perm {
			perm = nil
		}
		if size != nil && *size == n.Size {
			size = nil
		}
		if mtime != nil && mtime.UnixNano() == n.MTime {
			mtime = nil
		}
		if perm == nil && size == nil && mtime == nil {
			return t.attr(n)
		}
	}
	if size != nil {
		if err := t.makeLocal(ctx, n, *size == 0); err != nil {
			return Attr{}, err
		}
		if err := os.Truncate(t.dataPath(ino), *size); err != nil {
			return Attr{}, fmt.Errorf("working tree %s: truncate: %w", t.dataset, err)
		}
	}
	b := t.kv.NewBatch()
	defer b.Cancel()
	if perm != nil {
		n.Perm = *perm & 0o7777
	}
	if mtime != nil {
		n.MTime = mtime.UnixNano()
		if n.local() {
			if err := os.Chtimes(t.dataPath(ino), *mtime, *mtime); err != nil {
				return Attr{}, err
			}
		}
	}
	// A mode or time is part of the parent's tree, so the change dirties
	// the folders above; the node's own content stays clean.
	b.Set(t.nodeKey(ino), n.encode())
	if size != nil {
		if err := t.dirty(b, n); err != nil {
			return Attr{}, err
		}
	} else if n.ino != RootIno {
		p, err := t.get(n.Parent)
		if err != nil {
			return Attr{}, err
		}
		if err := t.dirty(b, p); err != nil {
			return Attr{}, err
		}
	} else if n.Type == object.TypeDir {
		// The root's own mode is not part of any tree; nothing to dirty.
	}
	if err := b.Commit(); err != nil {
		return Attr{}, err
	}
	return t.attr(n)
}

// makeLocal gives a clean file a local data file, copying its bytes from
// the store unless empty. t.mu must be held exclusively.
func (t *Tree) makeLocal(ctx context.Context, n *node, empty bool) error {
	if n.local() {
		return nil
	}
	path := t.dataPath(n.ino)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("working tree %s: copy %s: %w", t.dataset, n.Name, err)
	}
	if !empty && !n.Origin.IsZero() {
		err = t.copyOut(ctx, n.Origin, f)
	}
	if err == nil {
		mt := time.Unix(0, n.MTime)
		err = os.Chtimes(tmp, mt, mt)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		if errors.Is(err, syscall.EIO) || errors.Is(err, cas.ErrCorrupt) || errors.Is(err, cas.ErrNotFound) {
			t.log.Error("copy a file of the working tree out of the store", "dataset", t.dataset, "file", n.Name, "err", err)
			return syscall.EIO
		}
		return fmt.Errorf("working tree %s: copy %s: %w", t.dataset, n.Name, err)
	}
	n.gen++ // a new data file: handles holding an older one reopen
	b := t.kv.NewBatch()
	defer b.Cancel()
	n.Flags |= flagLocal
	if err := t.dirty(b, n); err != nil {
		return err
	}
	return b.Commit()
}

// copyOut writes the bytes of file object id to w, chunk by chunk.
func (t *Tree) copyOut(ctx context.Context, id cas.ID, w io.Writer) error {
	raw, err := t.objs.Get(ctx, id)
	if err != nil {
		return err
	}
	file, err := object.DecodeFile(raw)
	if err != nil {
		return err
	}
	for _, c := range file.Chunks {
		b, err := t.objs.Get(ctx, c.ID)
		if err != nil {
			return err
		}
		if len(b) != int(c.Size) {
			return fmt.Errorf("chunk %s: %d bytes, want %d: %w", c.ID.Short(), len(b), c.Size, cas.ErrCorrupt)
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
