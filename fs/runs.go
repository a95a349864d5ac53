package fs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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

// runsDir is /runs: one folder per run. mkdir starts a run.
type runsDir struct {
	gofs.Inode
	sys *sys
	// changed is when a run was last made or removed here, in Unix
	// nanoseconds; 0 until then.
	changed atomic.Int64
}

var (
	_ gofs.NodeReaddirer = (*runsDir)(nil)
	_ gofs.NodeGetattrer = (*runsDir)(nil)
	_ gofs.NodeLookuper  = (*runsDir)(nil)
	_ gofs.NodeMkdirer   = (*runsDir)(nil)
	_ gofs.NodeRmdirer   = (*runsDir)(nil)
)

func (d *runsDir) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.attr(&out.Attr)
	out.SetTimeout(rootTimeout)
	return 0
}

// attr fills the attributes of runs/. Its times are those of its last
// change that this mount made (a run made or removed), else the daemon's
// start: a folder's mtime is when its entries last changed, and tools
// that compare times (make, rsync, find -newer) are misled by 1970. Runs
// imported from other machines leave it alone; their own folders carry
// their times.
func (d *runsDir) attr(out *fuse.Attr) {
	out.Mode = syscall.S_IFDIR | 0o755
	out.Nlink = 2
	t := d.sys.started
	if n := d.changed.Load(); n != 0 {
		t = time.Unix(0, n)
	}
	out.SetTimes(nil, &t, &t)
}

// touch records a change of runs/ now.
func (d *runsDir) touch() { d.changed.Store(time.Now().UnixNano()) }

func (d *runsDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	var list []fuse.DirEntry
	if d.sys.runs != nil {
		for _, id := range d.sys.runs.IDs() {
			list = append(list, fuse.DirEntry{Name: id, Mode: syscall.S_IFDIR, Ino: workIno("run:"+id, worktree.RootIno)})
		}
	}
	return gofs.NewListDirStream(list), 0
}

func (d *runsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if d.sys.runs == nil || !d.sys.runs.Has(name) {
		return nil, syscall.ENOENT
	}
	r, err := d.sys.runs.Get(ctx, name)
	if errors.Is(err, tracking.ErrNoRun) {
		return nil, syscall.ENOENT
	}
	if err != nil {
		return nil, d.sys.errno("open run", err)
	}
	return d.runNode(ctx, r, out)
}

func (d *runsDir) runNode(ctx context.Context, r *tracking.Run, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	t := r.Tree()
	a, err := t.GetAttr(worktree.RootIno)
	if err != nil {
		return nil, d.sys.errno("getattr", err)
	}
	workAttr(a, &out.Attr)
	ino := workIno(t.Dataset(), worktree.RootIno)
	out.Ino = ino
	out.SetEntryTimeout(workTimeout)
	out.SetAttrTimeout(workTimeout)
	n := &runRoot{workNode{sys: d.sys, t: t, ino: worktree.RootIno, run: r}}
	return d.NewInode(ctx, n, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino}), 0
}

func (d *runsDir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if d.sys.runs == nil {
		return nil, syscall.EROFS
	}
	var uid uint32
	if c, ok := fuse.FromContext(ctx); ok {
		uid = c.Uid
	}
	r, err := d.sys.runs.Create(ctx, name, uid)
	if err != nil {
		return nil, d.sys.errno("start run", err)
	}
	d.touch()
	return d.runNode(ctx, r, out)
}

// Rmdir removes a run whose files are all gone, so that rm -rf of a run
// folder removes the run as mlfs runs rm does: rm has unlinked every file
// (the tracker's own files give way to unlink) before it gets here.
func (d *runsDir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if d.sys.runs == nil || !d.sys.runs.Has(name) {
		return syscall.ENOENT
	}
	r, err := d.sys.runs.Get(ctx, name)
	if err != nil {
		return d.sys.errno("rmdir run", err)
	}
	empty := true
	err = r.Tree().Walk(ctx, worktree.RootIno, func(_ string, a worktree.Attr) error {
		if a.Type != object.TypeDir {
			empty = false
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return d.sys.errno("rmdir run", err)
	}
	if !empty {
		return syscall.ENOTEMPTY
	}
	err = d.sys.runs.Remove(ctx, name, false)
	if errors.Is(err, tracking.ErrBusy) {
		return syscall.EBUSY
	}
	return d.sys.errno("rmdir run", err)
}

var errStop = errors.New("stop")

// forgetRun drops what the kernel knows of a removed run.
func (d *runsDir) forgetRun(id string) {
	d.touch()
	d.RmChild(id)
	go d.NotifyEntry(id)
}

// runRoot is the top of a run folder: its working tree plus the files the
// tracker makes (status, meta.json, summary.json, errors).
type runRoot struct{ workNode }

func reserved(name string) bool {
	for _, n := range tracking.Reserved {
		if n == name {
			return true
		}
	}
	return false
}

func (n *runRoot) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if !reserved(name) {
		if n.run.Imported() {
			return roLookup(ctx, n.EmbeddedInode(), &n.workNode, name, name, out)
		}
		return n.workNode.Lookup(ctx, name, out)
	}
	f := &runFile{run: n.run, name: name}
	f.attr(&out.Attr)
	out.Ino = childIno(n.StableAttr().Ino, "\x00"+name)
	out.SetEntryTimeout(workTimeout)
	out.SetAttrTimeout(0)
	return n.NewInode(ctx, f, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: out.Ino}), 0
}

func (n *runRoot) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	ents, err := n.t.ReadDir(ctx, n.ino)
	if err != nil {
		return nil, n.sys.errno("readdir", err)
	}
	list := make([]fuse.DirEntry, 0, len(ents)+len(tracking.Reserved))
	for _, e := range ents {
		if !reserved(e.Name) {
			mode := stableMode(e.Type)
			ino := workIno(n.t.Dataset(), e.Ino)
			if n.run.Imported() {
				ino = roIno(n.StableAttr().Ino, e.Name, mode)
			}
			list = append(list, fuse.DirEntry{Name: e.Name, Mode: mode, Ino: ino})
		}
	}
	for _, name := range tracking.Reserved {
		list = append(list, fuse.DirEntry{Name: name, Mode: syscall.S_IFREG, Ino: childIno(n.StableAttr().Ino, "\x00"+name)})
	}
	sortEntries(list)
	return gofs.NewListDirStream(list), 0
}

func (n *runRoot) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if n.run.Imported() {
		return nil, nil, 0, syscall.EROFS
	}
	if reserved(name) {
		return nil, nil, 0, syscall.EEXIST
	}
	return n.workNode.Create(ctx, name, flags, mode, out)
}

func (n *runRoot) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.run.Imported() {
		return nil, syscall.EROFS
	}
	if reserved(name) {
		return nil, syscall.EEXIST
	}
	return n.workNode.Mkdir(ctx, name, mode, out)
}

func (n *runRoot) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.run.Imported() {
		return nil, syscall.EROFS
	}
	if reserved(name) {
		return nil, syscall.EEXIST
	}
	return n.workNode.Symlink(ctx, target, name, out)
}

// Unlink of the tracker's own files succeeds and changes nothing: they
// are made from the run's record, and rm -rf must be able to go on.
func (n *runRoot) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.run.Imported() {
		return syscall.EROFS
	}
	if reserved(name) {
		return 0
	}
	return n.workNode.Unlink(ctx, name)
}

func (n *runRoot) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if n.run.Imported() {
		return syscall.EROFS
	}
	if reserved(name) {
		return syscall.EPERM
	}
	np := newParent
	if rr, ok := newParent.(*runRoot); ok {
		if reserved(newName) {
			return syscall.EPERM
		}
		np = &rr.workNode
	}
	return n.workNode.Rename(ctx, name, np, newName, flags)
}

func (n *runRoot) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.run.Imported() {
		return syscall.EROFS
	}
	return n.workNode.Setattr(ctx, fh, in, out)
}

func (n *runRoot) Rmdir(ctx context.Context, name string) syscall.Errno {
	if n.run.Imported() {
		return syscall.EROFS
	}
	return n.workNode.Rmdir(ctx, name)
}

// roNode is a file or folder of an imported run, which is read-only here:
// only the machine that runs it changes it. Each import makes the run's
// nodes anew, so a roNode finds its node by its path, at every call: the
// kernel's view of the run (entries, a cwd) stays good across an import.
type roNode struct {
	workNode
	path string // from the run's top
}

var (
	_ gofs.NodeLookuper    = (*roNode)(nil)
	_ gofs.NodeReaddirer   = (*roNode)(nil)
	_ gofs.NodeGetattrer   = (*roNode)(nil)
	_ gofs.NodeOpener      = (*roNode)(nil)
	_ gofs.NodeReadlinker  = (*roNode)(nil)
	_ gofs.NodeGetxattrer  = (*roNode)(nil)
	_ gofs.NodeListxattrer = (*roNode)(nil)
	_ gofs.NodeSetattrer   = (*roNode)(nil)
	_ gofs.NodeCreater     = (*roNode)(nil)
	_ gofs.NodeMkdirer     = (*roNode)(nil)
	_ gofs.NodeSymlinker   = (*roNode)(nil)
	_ gofs.NodeUnlinker    = (*roNode)(nil)
	_ gofs.NodeRmdirer     = (*roNode)(nil)
	_ gofs.NodeRenamer     = (*roNode)(nil)
)

// roLookup finds name in folder dir of an imported run and makes its
// node, at path, below parent: the kernel's node of the folder, which is
// dir's unless an import made the nodes anew.
func roLookup(ctx context.Context, parent *gofs.Inode, dir *workNode, path, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	a, err := dir.t.Lookup(ctx, dir.ino, name)
	if err != nil {
		return nil, dir.sys.errno("lookup", err)
	}
	workAttr(a, &out.Attr)
	// Numbered by path and type, not by the working tree's inode: an
	// import makes every node anew, and a kernel that found a new number
	// under a name it knows would drop the old entry, and with it a cwd
	// or an open folder inside the run. Same number, same roNode, which
	// finds the run's node by path at every call.
	ino := roIno(parent.StableAttr().Ino, name, stableMode(a.Type))
	out.Ino = ino
	out.Attr.Ino = ino
	// Imports change the run behind the kernel's back: it must ask every
	// time, or it would read a file grown by an import at its old size.
	out.SetEntryTimeout(0)
	out.SetAttrTimeout(0)
	c := &roNode{workNode: workNode{sys: dir.sys, t: dir.t, ino: a.Ino, run: dir.run}, path: path}
	return parent.NewInode(ctx, c, gofs.StableAttr{Mode: stableMode(a.Type), Ino: ino}), 0
}

// roIno numbers the entry name of mode (its type bits) in the folder
// numbered parent, in an imported run.
func roIno(parent uint64, name string, mode uint32) uint64 {
	return childIno(parent, fmt.Sprintf("\x01%o\x00%s", mode&syscall.S_IFMT, name))
}

// roEntries renumbers a listing of a folder of an imported run, numbered
// parent, as roLookup numbers its entries.
func roEntries(parent uint64, ds gofs.DirStream) (gofs.DirStream, syscall.Errno) {
	var list []fuse.DirEntry
	for ds.HasNext() {
		e, errno := ds.Next()
		if errno != 0 {
			return nil, errno
		}
		e.Ino = roIno(parent, e.Name, e.Mode)
		list = append(list, e)
	}
	ds.Close()
	return gofs.NewListDirStream(list), 0
}

// now returns n's node as the run is now.
func (n *roNode) now(ctx context.Context) (*workNode, syscall.Errno) {
	a, err := n.t.GetAttr(worktree.RootIno)
	for _, name := range strings.Split(n.path, "/") {
		if err != nil {
			break
		}
		a, err = n.t.Lookup(ctx, a.Ino, name)
	}
	if err != nil {
		return nil, n.sys.errno("lookup", err)
	}
	if a.Ino == n.ino {
		return &n.workNode, 0
	}
	return &workNode{sys: n.sys, t: n.t, ino: a.Ino, run: n.run}, 0
}

// resolveTries bounds the tries of an operation on a node of an imported
// run: an import that lands between finding the run's node by path and
// using it replaces the node (every import makes them anew), and the
// operation then fails with ENOENT although the path is there.
const resolveTries = 4

// with runs op on n's node as the run is now, again while it fails with
// ENOENT, up to resolveTries times.
func (n *roNode) with(ctx context.Context, op func(w *workNode) syscall.Errno) syscall.Errno {
	var errno syscall.Errno
	for range resolveTries {
		var w *workNode
		if w, errno = n.now(ctx); errno == 0 {
			errno = op(w)
		}
		if errno != syscall.ENOENT {
			return errno
		}
	}
	return errno
}

func (n *roNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	var child *gofs.Inode
	errno := n.with(ctx, func(w *workNode) syscall.Errno {
		var errno syscall.Errno
		child, errno = roLookup(ctx, n.EmbeddedInode(), w, n.path+"/"+name, name, out)
		return errno
	})
	return child, errno
}

func (n *roNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	var ds gofs.DirStream
	errno := n.with(ctx, func(w *workNode) syscall.Errno {
		var errno syscall.Errno
		ds, errno = w.Readdir(ctx)
		return errno
	})
	if errno != 0 {
		return nil, errno
	}
	return roEntries(n.StableAttr().Ino, ds)
}

func (n *roNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	errno := n.with(ctx, func(w *workNode) syscall.Errno { return w.Getattr(ctx, fh, out) })
	out.SetTimeout(0) // see roLookup
	return errno
}

func (n *roNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&accMode != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	var fh gofs.FileHandle
	var fl uint32
	errno := n.with(ctx, func(w *workNode) syscall.Errno {
		var errno syscall.Errno
		fh, fl, errno = w.Open(ctx, flags)
		return errno
	})
	return fh, fl, errno
}

func (n *roNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	var target []byte
	errno := n.with(ctx, func(w *workNode) syscall.Errno {
		var errno syscall.Errno
		target, errno = w.Readlink(ctx)
		return errno
	})
	return target, errno
}

func (n *roNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	var size uint32
	errno := n.with(ctx, func(w *workNode) syscall.Errno {
		var errno syscall.Errno
		size, errno = w.Getxattr(ctx, attr, dest)
		return errno
	})
	return size, errno
}

func (n *roNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	var size uint32
	errno := n.with(ctx, func(w *workNode) syscall.Errno {
		var errno syscall.Errno
		size, errno = w.Listxattr(ctx, dest)
		return errno
	})
	return size, errno
}

func (n *roNode) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (n *roNode) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}

func (n *roNode) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (n *roNode) Symlink(context.Context, string, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func (n *roNode) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }
func (n *roNode) Rmdir(context.Context, string) syscall.Errno  { return syscall.EROFS }

func (n *roNode) Rename(context.Context, string, gofs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}

// runFile is one of the files the tracker makes. Reads see the content
// as it was at open; status also takes writes.
type runFile struct {
	gofs.Inode
	run  *tracking.Run
	name string
}

var (
	_ gofs.NodeGetattrer     = (*runFile)(nil)
	_ gofs.NodeGetxattrer    = (*runFile)(nil)
	_ gofs.NodeSetxattrer    = (*runFile)(nil)
	_ gofs.NodeListxattrer   = (*runFile)(nil)
	_ gofs.NodeRemovexattrer = (*runFile)(nil)
	_ gofs.NodeSetattrer     = (*runFile)(nil)
	_ gofs.NodeOpener        = (*runFile)(nil)
	_ gofs.NodeReader        = (*runFile)(nil)
	_ gofs.NodeWriter        = (*runFile)(nil)
	_ gofs.NodeFlusher       = (*runFile)(nil)
)

func (f *runFile) content() []byte {
	switch f.name {
	case "status":
		return []byte(f.run.Status() + "\n")
	case "meta.json":
		return metaJSON(f.run.Info())
	case "summary.json":
		return summaryJSON(f.run.Info())
	default:
		var b bytes.Buffer
		errs := f.run.Errors()
		for _, l := range errs.Lines() {
			b.WriteString(l)
			b.WriteByte('\n')
		}
		return b.Bytes()
	}
}

func (f *runFile) attr(out *fuse.Attr) {
	out.Mode = syscall.S_IFREG | 0o444
	if f.name == "status" && !f.run.Imported() {
		out.Mode = syscall.S_IFREG | 0o644
	}
	out.Nlink = 1
	out.Size = uint64(len(f.content()))
	in := f.run.Info()
	t := time.UnixMilli(max(in.LastWrite, in.End, in.Start))
	out.SetTimes(nil, &t, &t)
}

// The tracker's files keep no extended attributes; ENOTSUP tells cp -a
// and rsync -X to go on without them.
func (f *runFile) Getxattr(context.Context, string, []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENODATA
}
func (f *runFile) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.ENOTSUP
}
func (f *runFile) Listxattr(context.Context, []byte) (uint32, syscall.Errno) { return 0, 0 }
func (f *runFile) Removexattr(context.Context, string) syscall.Errno         { return syscall.ENOTSUP }

func (f *runFile) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.attr(&out.Attr)
	return 0
}

// Setattr accepts the truncation that comes with "echo x > status".
func (f *runFile) Setattr(ctx context.Context, _ gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if _, ok := in.GetSize(); ok && f.run.Imported() {
		return syscall.EROFS
	}
	if _, ok := in.GetSize(); ok && f.name != "status" {
		return syscall.EACCES
	}
	f.attr(&out.Attr)
	return 0
}

type runFileHandle struct {
	mu      sync.Mutex
	data    []byte
	written []byte
	wrote   bool
}

func (f *runFile) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&accMode != syscall.O_RDONLY && f.run.Imported() {
		return nil, 0, syscall.EROFS
	}
	if flags&accMode != syscall.O_RDONLY && f.name != "status" {
		return nil, 0, syscall.EACCES
	}
	return &runFileHandle{data: f.content()}, fuse.FOPEN_DIRECT_IO, 0
}

func (f *runFile) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*runFileHandle)
	if !ok {
		return nil, syscall.EBADF
	}
	if off >= int64(len(h.data)) {
		return fuse.ReadResultData(nil), 0
	}
	return fuse.ReadResultData(h.data[off:min(int64(len(h.data)), off+int64(len(dest)))]), 0
}

// Write to status sets it: "finished" or "failed" ends the run.
func (f *runFile) Write(ctx context.Context, fh gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	h, ok := fh.(*runFileHandle)
	if !ok || f.name != "status" {
		return 0, syscall.EBADF
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.written)+len(data) > 64 {
		return 0, syscall.EINVAL
	}
	h.written = append(h.written, data...)
	// A whole line is applied now, so that a bad one fails the write
	// (echo reports it); a part waits for the rest or for close.
	if !bytes.HasSuffix(h.written, []byte("\n")) {
		return uint32(len(data)), 0
	}
	if errno := f.apply(ctx, h); errno != 0 {
		return 0, errno
	}
	return uint32(len(data)), 0
}

func (f *runFile) apply(ctx context.Context, h *runFileHandle) syscall.Errno {
	w := h.written
	h.written = nil
	if strings.TrimSpace(string(w)) == "" {
		return 0
	}
	if err := f.run.SetStatus(ctx, string(w)); err != nil {
		if errors.Is(err, tracking.ErrBadStatus) {
			return syscall.EINVAL
		}
		return syscall.EIO
	}
	return 0
}

// Flush, at close, applies a status written without a newline.
func (f *runFile) Flush(ctx context.Context, fh gofs.FileHandle) syscall.Errno {
	h, ok := fh.(*runFileHandle)
	if !ok || f.name != "status" {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return f.apply(ctx, h)
}

// metaJSON is a run's meta.json.
func metaJSON(in *tracking.Info) []byte {
	type dataset struct {
		Ref  string `json:"ref"`
		ID   string `json:"id"`
		Time string `json:"first_read"`
	}
	m := struct {
		ID         string    `json:"id"`
		Experiment string    `json:"experiment"`
		Status     string    `json:"status"`
		Start      string    `json:"start_time"`
		End        string    `json:"end_time,omitempty"`
		Host       string    `json:"host"`
		User       string    `json:"user"`
		Datasets   []dataset `json:"datasets"`
	}{ID: in.ID, Experiment: in.Experiment, Status: in.Status, Start: rfc3339(in.Start), Host: in.Host, User: in.User, Datasets: []dataset{}}
	if in.End != 0 {
		m.End = rfc3339(in.End)
	}
	for _, d := range in.Datasets {
		m.Datasets = append(m.Datasets, dataset{Ref: d.Ref, ID: d.ID, Time: rfc3339(d.Time)})
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

// summaryJSON is a run's summary.json.
func summaryJSON(in *tracking.Info) []byte {
	m := struct {
		Params  map[string]string          `json:"params"`
		Tags    map[string]string          `json:"tags"`
		Metrics map[string]tracking.Metric `json:"metrics"`
	}{in.Params, in.Tags, in.Metrics}
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

func rfc3339(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

// versionRef names the version a node belongs to, for lineage.
type versionRef struct {
	ref string // dataset@version
	id  cas.ID
}

// runOfPID caches which run each process belongs to, read from its
// environment ($MLFS_RUN), for a few seconds.
type runOfPID struct {
	mu sync.Mutex
	m  map[uint32]pidRun
}

type pidRun struct {
	run     string
	expires time.Time
}

const pidCacheTTL = 2 * time.Second

func (c *runOfPID) get(pid uint32) string {
	now := time.Now()
	c.mu.Lock()
	if e, ok := c.m[pid]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return e.run
	}
	c.mu.Unlock()
	run := envRun(pid)
	c.mu.Lock()
	if c.m == nil || len(c.m) > 4096 {
		c.m = map[uint32]pidRun{}
	}
	c.m[pid] = pidRun{run, now.Add(pidCacheTTL)}
	c.mu.Unlock()
	return run
}

// envRun returns $MLFS_RUN of process pid, "" if unset or unreadable.
func envRun(pid uint32) string {
	env, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/environ")
	if err != nil {
		return ""
	}
	for _, kv := range bytes.Split(env, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("MLFS_RUN=")); ok {
			return string(v)
		}
	}
	return ""
}

// noteRead records lineage: the run of the calling process read ver.
func (s *sys) noteRead(ctx context.Context, ver *versionRef) {
	if ver == nil || s.runs == nil {
		return
	}
	c, ok := fuse.FromContext(ctx)
	if !ok || c.Pid == 0 {
		return
	}
	if run := s.pidRuns.get(c.Pid); run != "" {
		s.runs.ReadBy(run, ver.ref, ver.id)
	}
}
