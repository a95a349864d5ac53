package fs

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/tracking"
	"github.com/mlfs/mlfs/worktree"
)

// workTimeout is how long the kernel may cache the working tree's entries
// and attributes. Every change comes through this mount, so the kernel's
// view stays right; the timeout is short for changes made behind it (a
// checkout), which also invalidate explicitly.
const workTimeout = time.Second

// workIno is the inode number of node ino of dataset's working tree.
func workIno(dataset string, ino uint64) uint64 {
	if ino == worktree.RootIno {
		return childIno(1, dataset)
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], ino)
	return childIno(childIno(1, dataset), "\x00"+string(b[:]))
}

// errno turns a working-tree error into an errno, logging unexpected ones.
func (s *sys) errno(op string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) && !errors.As(err, new(*net.OpError)) { // a socket's errno (the remote's) is an I/O error here
		return e
	}
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	s.log.Error("working tree", "op", op, "err", err)
	return syscall.EIO
}

// workNode is a file, folder or symlink of a working tree.
type workNode struct {
	gofs.Inode
	sys *sys
	t   *worktree.Tree
	ino uint64
	// run is the run whose folder this is, told of every change; nil in
	// a dataset.
	run *tracking.Run
}

// asWorkNode returns the working-tree node of n, also for a run's top.
func asWorkNode(n gofs.InodeEmbedder) (*workNode, bool) {
	switch v := n.(type) {
	case *workNode:
		return v, true
	case *runRoot:
		return &v.workNode, true
	}
	return nil, false
}

// changed tells the run, if any, that names changed.
func (n *workNode) changed(err error) {
	if err == nil && n.run != nil {
		n.run.Changed()
	}
}

func callerPID(ctx context.Context) uint32 {
	if c, ok := fuse.FromContext(ctx); ok {
		return c.Pid
	}
	return 0
}

var (
	_ gofs.NodeLookuper    = (*workNode)(nil)
	_ gofs.NodeReaddirer   = (*workNode)(nil)
	_ gofs.NodeGetattrer   = (*workNode)(nil)
	_ gofs.NodeSetattrer   = (*workNode)(nil)
	_ gofs.NodeCreater     = (*workNode)(nil)
	_ gofs.NodeMkdirer     = (*workNode)(nil)
	_ gofs.NodeSymlinker   = (*workNode)(nil)
	_ gofs.NodeReadlinker  = (*workNode)(nil)
	_ gofs.NodeUnlinker    = (*workNode)(nil)
	_ gofs.NodeRmdirer     = (*workNode)(nil)
	_ gofs.NodeRenamer     = (*workNode)(nil)
	_ gofs.NodeOpener      = (*workNode)(nil)
	_ gofs.NodeReader      = (*workNode)(nil)
	_ gofs.NodeWriter      = (*workNode)(nil)
	_ gofs.NodeFlusher     = (*workNode)(nil)
	_ gofs.NodeFsyncer     = (*workNode)(nil)
	_ gofs.NodeReleaser    = (*workNode)(nil)
	_ gofs.NodeGetxattrer  = (*workNode)(nil)
	_ gofs.NodeListxattrer = (*workNode)(nil)
	_ gofs.NodeSetxattrer  = (*workNode)(nil)
	_ gofs.NodeLinker      = (*workNode)(nil)
	_ gofs.NodeMknoder     = (*workNode)(nil)
)

func workAttr(a worktree.Attr, out *fuse.Attr) {
	e := object.Entry{Type: a.Type, Perm: a.Perm, MTime: a.MTime, Size: a.Size, Target: a.Target}
	entryAttr(&e, out)
	if a.Blocks >= 0 {
		out.Blocks = uint64(a.Blocks) // a sparse file takes less than its size
	}
}

// child makes the node for a, a child of n, and fills out.
func (n *workNode) child(ctx context.Context, a worktree.Attr, out *fuse.EntryOut) *gofs.Inode {
	workAttr(a, &out.Attr)
	ino := workIno(n.t.Dataset(), a.Ino)
	out.Ino = ino
	out.SetEntryTimeout(workTimeout)
	out.SetAttrTimeout(workTimeout)
	c := &workNode{sys: n.sys, t: n.t, ino: a.Ino, run: n.run}
	return n.NewInode(ctx, c, gofs.StableAttr{Mode: stableMode(a.Type), Ino: ino})
}

func (n *workNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	a, err := n.t.Lookup(ctx, n.ino, name)
	if err != nil {
		return nil, n.sys.errno("lookup", err)
	}
	return n.child(ctx, a, out), 0
}

func (n *workNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	ents, err := n.t.ReadDir(ctx, n.ino)
	if err != nil {
		return nil, n.sys.errno("readdir", err)
	}
	list := make([]fuse.DirEntry, len(ents))
	for i, e := range ents {
		list[i] = fuse.DirEntry{Name: e.Name, Mode: stableMode(e.Type), Ino: workIno(n.t.Dataset(), e.Ino)}
	}
	return gofs.NewListDirStream(list), 0
}

func (n *workNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	a, err := n.t.GetAttr(n.ino)
	if err != nil {
		return n.sys.errno("getattr", err)
	}
	workAttr(a, &out.Attr)
	out.SetTimeout(workTimeout)
	return 0
}

func (n *workNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	var perm *uint32
	var size *int64
	var mtime *time.Time
	if m, ok := in.GetMode(); ok {
		p := m & 0o7777
		perm = &p
	}
	if s, ok := in.GetSize(); ok {
		v := int64(s)
		size = &v
	}
	if t, ok := in.GetMTime(); ok {
		mtime = &t
	}
	// Owners are not part of a version: chown is accepted and not kept,
	// as on filesystems without owners, so that cp -a and rsync -a work.
	a, err := n.t.SetAttr(ctx, n.ino, perm, size, mtime)
	if err != nil {
		return n.sys.errno("setattr", err)
	}
	if size != nil && n.run != nil {
		n.run.Truncated(n.ino)
	}
	workAttr(a, &out.Attr)
	out.SetTimeout(workTimeout)
	return 0
}

func (n *workNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	a, err := n.t.Create(ctx, n.ino, name, mode)
	if err != nil {
		return nil, nil, 0, n.sys.errno("create", err)
	}
	h, err := n.t.Open(ctx, a.Ino, true, false)
	if err != nil {
		return nil, nil, 0, n.sys.errno("open", err)
	}
	if n.run != nil {
		n.run.Opened(a.Ino)
		n.run.Changed()
	}
	return n.child(ctx, a, out), &workHandle{h: h, write: true}, 0, 0
}

func (n *workNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	a, err := n.t.Mkdir(ctx, n.ino, name, mode)
	if err != nil {
		return nil, n.sys.errno("mkdir", err)
	}
	n.changed(nil)
	return n.child(ctx, a, out), 0
}

func (n *workNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	a, err := n.t.Symlink(ctx, n.ino, name, target)
	if err != nil {
		return nil, n.sys.errno("symlink", err)
	}
	n.changed(nil)
	return n.child(ctx, a, out), 0
}

func (n *workNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	a, err := n.t.GetAttr(n.ino)
	if err != nil {
		return nil, n.sys.errno("readlink", err)
	}
	if a.Type != object.TypeSymlink {
		return nil, syscall.EINVAL
	}
	return []byte(a.Target), 0
}

func (n *workNode) Unlink(ctx context.Context, name string) syscall.Errno {
	err := n.t.Unlink(ctx, n.ino, name)
	n.changed(err)
	return n.sys.errno("unlink", err)
}

func (n *workNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	err := n.t.Rmdir(ctx, n.ino, name)
	n.changed(err)
	return n.sys.errno("rmdir", err)
}

func (n *workNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := asWorkNode(newParent)
	if !ok || np.t != n.t {
		return syscall.EXDEV // across datasets or runs, or into a version
	}
	if n.run != nil && np.ino == worktree.RootIno && reserved(newName) {
		return syscall.EPERM
	}
	err := n.t.Rename(ctx, n.ino, name, np.ino, newName, flags)
	n.changed(err)
	return n.sys.errno("rename", err)
}

func (n *workNode) Link(context.Context, gofs.InodeEmbedder, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EPERM // a version has no hard links
}

func (n *workNode) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EPERM // versions hold files, folders and symlinks only
}

func (n *workNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	a, err := n.t.GetAttr(n.ino)
	if err != nil {
		return 0, n.sys.errno("getxattr", err)
	}
	if a.ID.IsZero() {
		return 0, syscall.ENODATA // changed since the last version: no id yet
	}
	return getxattr(attr, a.ID, dest)
}

func (n *workNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	a, err := n.t.GetAttr(n.ino)
	if err != nil {
		return 0, n.sys.errno("listxattr", err)
	}
	if a.ID.IsZero() {
		return 0, 0
	}
	return listxattr(dest)
}

func (n *workNode) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.ENOTSUP // a version keeps no extended attributes
}

const accMode = syscall.O_ACCMODE

func (n *workNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	write := flags&accMode != syscall.O_RDONLY
	trunc := flags&syscall.O_TRUNC != 0
	h, err := n.t.Open(ctx, n.ino, write, trunc)
	if err != nil {
		return nil, 0, n.sys.errno("open", err)
	}
	if n.run != nil {
		if write {
			n.run.Opened(n.ino)
		}
		if trunc {
			n.run.Truncated(n.ino)
		}
	}
	return &workHandle{h: h, write: write}, 0, 0
}

func (n *workNode) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	wh, ok := fh.(*workHandle)
	if !ok {
		return nil, syscall.EBADF
	}
	c, err := wh.h.Content()
	if err != nil {
		return nil, n.sys.errno("read", err)
	}
	if c.Local {
		k, err := wh.h.ReadAt(dest, off)
		if err != nil {
			return nil, n.sys.errno("read", err)
		}
		return fuse.ReadResultData(dest[:k]), 0
	}
	r, errno := wh.reader(ctx, n.sys, c.ID, c.Size)
	if errno != 0 {
		return nil, errno
	}
	k, errno := r.read(ctx, dest, off)
	if errno != 0 {
		return nil, errno
	}
	return fuse.ReadResultData(dest[:k]), 0
}

func (n *workNode) Write(ctx context.Context, fh gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	wh, ok := fh.(*workHandle)
	if !ok {
		return 0, syscall.EBADF
	}
	var size int64
	if n.run != nil {
		// The tracker tells appends from overwrites by the size before.
		c, err := wh.h.Content()
		if err != nil {
			return 0, n.sys.errno("write", err)
		}
		size = c.Size
	}
	k, err := wh.h.WriteAt(data, off)
	if k > 0 && n.run != nil {
		wh.wrote.Store(true)
		n.run.Wrote(n.ino, off, k, size, callerPID(ctx))
	}
	if err != nil {
		return uint32(k), n.sys.errno("write", err)
	}
	return uint32(k), 0
}

// Flush, at each close, makes what a handle wrote into a run durable:
// points and artifacts are stored once close returns. In a dataset every
// write is in the data file when it returns, so a close after a kill of
// the daemon loses nothing, and durability waits for the snapshot.
func (n *workNode) Flush(ctx context.Context, fh gofs.FileHandle) syscall.Errno {
	wh, ok := fh.(*workHandle)
	if !ok || n.run == nil || !wh.wrote.Load() {
		return 0
	}
	return n.sys.errno("fsync", wh.h.Sync())
}

func (n *workNode) Fsync(ctx context.Context, fh gofs.FileHandle, flags uint32) syscall.Errno {
	wh, ok := fh.(*workHandle)
	if !ok {
		return 0
	}
	return n.sys.errno("fsync", wh.h.Sync())
}

func (n *workNode) Release(ctx context.Context, fh gofs.FileHandle) syscall.Errno {
	wh, ok := fh.(*workHandle)
	if !ok {
		return 0
	}
	err := wh.h.Close()
	if n.run != nil && wh.write {
		n.run.Closed(n.ino, wh.wrote.Load())
	}
	return n.sys.errno("release", err)
}

// workHandle is an open file of a working tree.
type workHandle struct {
	h     *worktree.Handle
	write bool
	wrote atomic.Bool // some write went through this handle

	mu sync.Mutex
	// rd reads the file's content in the store while it is unchanged.
	rd   *reader
	rdID cas.ID
}

func (wh *workHandle) reader(ctx context.Context, s *sys, id cas.ID, size int64) (*reader, syscall.Errno) {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	if wh.rd != nil && wh.rdID == id {
		return wh.rd, 0
	}
	f := &versionFile{sys: s, ent: object.Entry{Type: object.TypeFile, ID: id, Size: size}}
	if errno := f.load(ctx); errno != 0 {
		return nil, errno
	}
	wh.rd, wh.rdID = &reader{f: f}, id
	return wh.rd, 0
}
