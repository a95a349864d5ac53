package fs

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"sort"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
)

// immutable is how long the kernel may cache what a version holds. Versions
// never change, so this is long; it is not forever only so that a version
// removed by `mlfs version rm` eventually disappears from every cache.
const immutable = time.Hour

// xattrID is the extended attribute holding a node's content id.
const xattrID = "user.mlfs.id"

// childIno returns the inode number of parent's child name.
func childIno(parent uint64, name string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], parent)
	h.Write(b[:])
	h.Write([]byte(name))
	ino := h.Sum64()
	if ino <= 1 { // 1 is the root
		ino += 2
	}
	return ino
}

// entryAttr fills out from a tree entry.
func entryAttr(e *object.Entry, out *fuse.Attr) {
	out.Mode = e.Perm & 0o7777
	switch e.Type {
	case object.TypeFile:
		out.Mode |= syscall.S_IFREG
		out.Size = uint64(e.Size)
		out.Nlink = 1
	case object.TypeDir:
		out.Mode |= syscall.S_IFDIR
		out.Nlink = 2
	case object.TypeSymlink:
		out.Mode |= syscall.S_IFLNK
		out.Size = uint64(len(e.Target))
		out.Nlink = 1
	}
	out.Blocks = (out.Size + 511) / 512
	out.Blksize = 1 << 16
	t := time.Unix(0, e.MTime)
	out.SetTimes(&t, &t, &t)
}

func stableMode(t object.EntryType) uint32 {
	switch t {
	case object.TypeDir:
		return syscall.S_IFDIR
	case object.TypeSymlink:
		return syscall.S_IFLNK
	}
	return syscall.S_IFREG
}

// newVersionNode makes the node for entry e, a child of parent: entry pos
// of the folder dir, or the root of a version (dir nil).
func (s *sys) newVersionNode(ctx context.Context, parent *gofs.Inode, e object.Entry, ino uint64, ver *versionRef, dir *versionDir, pos int) *gofs.Inode {
	var n gofs.InodeEmbedder
	switch e.Type {
	case object.TypeDir:
		n = &versionDir{sys: s, ent: e, ver: ver, last: -1}
	case object.TypeSymlink:
		n = &versionLink{ent: e}
	default:
		n = &versionFile{sys: s, ent: e, ver: ver, dir: dir, pos: pos}
	}
	return parent.NewInode(ctx, n, gofs.StableAttr{Mode: stableMode(e.Type), Ino: ino})
}

// readOnly answers every change to a version with EROFS.
type readOnly struct{ gofs.Inode }

func (*readOnly) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}
func (*readOnly) Setxattr(context.Context, string, []byte, uint32) syscall.Errno {
	return syscall.EROFS
}
func (*readOnly) Removexattr(context.Context, string) syscall.Errno { return syscall.EROFS }

// versionDir is a folder of a version.
type versionDir struct {
	readOnly
	sys *sys
	ent object.Entry // ID is the tree
	ver *versionRef

	mu   sync.Mutex
	tree *object.Tree
	// Files opened in name order are read ahead (see opened).
	last  int // index in tree of the file opened last, -1 before
	seq   int // how many files in a row were opened in order
	ahead int // entries below this index were read ahead
}

var (
	_ gofs.NodeLookuper    = (*versionDir)(nil)
	_ gofs.NodeGetattrer   = (*versionDir)(nil)
	_ gofs.NodeGetxattrer  = (*versionDir)(nil)
	_ gofs.NodeListxattrer = (*versionDir)(nil)
	_ gofs.NodeMkdirer     = (*versionDir)(nil)
	_ gofs.NodeCreater     = (*versionDir)(nil)
	_ gofs.NodeUnlinker    = (*versionDir)(nil)
	_ gofs.NodeRmdirer     = (*versionDir)(nil)
	_ gofs.NodeRenamer     = (*versionDir)(nil)
	_ gofs.NodeSymlinker   = (*versionDir)(nil)
	_ gofs.NodeLinker      = (*versionDir)(nil)
	_ gofs.NodeMknoder     = (*versionDir)(nil)
	_ gofs.NodeSetattrer   = (*versionDir)(nil)
)

// load returns the folder's tree, read once.
func (d *versionDir) load(ctx context.Context) (*object.Tree, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tree != nil {
		return d.tree, 0
	}
	b, err := d.sys.objs.Get(ctx, d.ent.ID)
	if err == nil {
		d.tree, err = object.DecodeTree(b)
	}
	if err != nil {
		return nil, d.sys.eio("read tree", d.ent.ID, err)
	}
	return d.tree, 0
}

func (d *versionDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	t, errno := d.load(ctx)
	if errno != 0 {
		return nil, errno
	}
	i := sort.Search(len(t.Entries), func(i int) bool { return t.Entries[i].Name >= name })
	if i == len(t.Entries) || t.Entries[i].Name != name {
		out.SetEntryTimeout(immutable)
		return nil, syscall.ENOENT
	}
	e := t.Entries[i]
	ino := childIno(d.StableAttr().Ino, name)
	entryAttr(&e, &out.Attr)
	out.Ino = ino
	out.SetEntryTimeout(immutable)
	out.SetAttrTimeout(immutable)
	return d.sys.newVersionNode(ctx, d.EmbeddedInode(), e, ino, d.ver, d, i), 0
}

// opened notes that the file at index pos of the folder's tree was opened,
// and when files have been opened in name order for a while (as find,
// tar, cp -r and most data loaders do), starts fetching the files that
// follow, up to s.readAhead bytes of them: their file objects and first
// chunks. A reader of many small files then finds them in memory instead
// of waiting on the store for each one in turn.
func (d *versionDir) opened(pos int) {
	s := d.sys
	if s.readAhead <= 0 {
		return
	}
	d.mu.Lock()
	switch {
	case d.last < pos && pos <= d.last+seqFiles:
		d.seq++
	case pos != d.last:
		d.seq = 0
	}
	d.last = pos
	t := d.tree
	if d.seq < 2 || t == nil {
		d.mu.Unlock()
		return
	}
	// The files within readAhead bytes past this one; those below d.ahead
	// are fetched or being fetched already.
	to := pos + 1
	for bytes := int64(0); to < len(t.Entries) && bytes < s.readAhead; to++ {
		if e := &t.Entries[to]; e.Type == object.TypeFile {
			bytes += max(e.Size, 1)
		}
	}
	from := max(d.ahead, pos+1)
	if from >= to {
		d.mu.Unlock()
		return
	}
	d.ahead = to
	d.mu.Unlock()
	for j := from; j < to; j++ {
		if e := t.Entries[j]; e.Type == object.TypeFile && !s.prefetchFile(e) {
			d.mu.Lock() // all fetchers are busy: go on from here next time
			if d.ahead == to {
				d.ahead = j
			}
			d.mu.Unlock()
			return
		}
	}
}

// seqFiles is how many entries a file opened after another may be past it
// and still count as in order: folders between them are skipped.
const seqFiles = 4

func (d *versionDir) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	entryAttr(&d.ent, &out.Attr)
	out.SetTimeout(immutable)
	return 0
}

func (d *versionDir) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getxattr(attr, d.ent.ID, dest)
}

func (d *versionDir) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(dest)
}

func (d *versionDir) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (d *versionDir) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}
func (d *versionDir) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }
func (d *versionDir) Rmdir(context.Context, string) syscall.Errno  { return syscall.EROFS }
func (d *versionDir) Rename(context.Context, string, gofs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}
func (d *versionDir) Symlink(context.Context, string, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (d *versionDir) Link(context.Context, gofs.InodeEmbedder, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (d *versionDir) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

func getxattr(attr string, id cas.ID, dest []byte) (uint32, syscall.Errno) {
	if attr != xattrID {
		return 0, syscall.ENODATA
	}
	v := id.String()
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

func listxattr(dest []byte) (uint32, syscall.Errno) {
	v := xattrID + "\x00"
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// versionLink is a symlink of a version.
type versionLink struct {
	readOnly
	ent object.Entry
}

var _ gofs.NodeReadlinker = (*versionLink)(nil)

func (l *versionLink) Readlink(context.Context) ([]byte, syscall.Errno) {
	return []byte(l.ent.Target), 0
}

func (l *versionLink) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	entryAttr(&l.ent, &out.Attr)
	out.SetTimeout(immutable)
	return 0
}

// versionFile is a file of a version.
type versionFile struct {
	readOnly
	sys *sys
	ent object.Entry // ID is the file object
	ver *versionRef  // nil for a working tree's file
	dir *versionDir  // the folder; nil for a working tree's file
	pos int          // index of the file in dir's tree

	mu   sync.Mutex
	file *object.File
	ends []int64 // ends[i] is the offset just past chunk i
}

var (
	_ gofs.NodeOpener      = (*versionFile)(nil)
	_ gofs.NodeReader      = (*versionFile)(nil)
	_ gofs.NodeGetattrer   = (*versionFile)(nil)
	_ gofs.NodeGetxattrer  = (*versionFile)(nil)
	_ gofs.NodeListxattrer = (*versionFile)(nil)
	_ gofs.NodeSetattrer   = (*versionFile)(nil)
)

func (f *versionFile) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	entryAttr(&f.ent, &out.Attr)
	out.SetTimeout(immutable)
	return 0
}

func (f *versionFile) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getxattr(attr, f.ent.ID, dest)
}

func (f *versionFile) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(dest)
}

// load reads the file object once: the chunk list, never the chunks.
func (f *versionFile) load(ctx context.Context) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.file != nil {
		return 0
	}
	b, ok := f.sys.ahead.take(f.ent.ID)
	var err error
	if !ok {
		b, err = f.sys.objs.Get(ctx, f.ent.ID)
	}
	var file *object.File
	if err == nil {
		file, err = object.DecodeFile(b)
	}
	if err == nil && file.Size != f.ent.Size {
		err = fmt.Errorf("file object holds %d bytes, its tree entry says %d: %w", file.Size, f.ent.Size, cas.ErrCorrupt)
	}
	if err != nil {
		return f.sys.eio("read file object", f.ent.ID, err)
	}
	ends := make([]int64, len(file.Chunks))
	var off int64
	for i, c := range file.Chunks {
		off += int64(c.Size)
		ends[i] = off
	}
	f.file, f.ends = file, ends
	return 0
}

const writeFlags = syscall.O_WRONLY | syscall.O_RDWR | syscall.O_TRUNC | syscall.O_APPEND | syscall.O_CREAT

func (f *versionFile) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&writeFlags != 0 {
		return nil, 0, syscall.EROFS
	}
	if errno := f.load(ctx); errno != 0 {
		return nil, 0, errno
	}
	f.sys.noteRead(ctx, f.ver)
	if f.dir != nil {
		f.dir.opened(f.pos)
	}
	return &reader{f: f}, fuse.FOPEN_KEEP_CACHE, 0
}

func (f *versionFile) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	r, ok := fh.(*reader)
	if !ok {
		return nil, syscall.EBADF
	}
	n, errno := r.read(ctx, dest, off)
	if errno != 0 {
		return nil, errno
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// reader is an open file of a version.
type reader struct {
	f *versionFile

	mu     sync.Mutex
	recent [4]recentChunk // the chunks read last, most recent first
	next   int64          // offset just past the last read
	seq    int            // how many reads in a row were sequential
	ahead  int            // chunks below this index were prefetched
	far    int            // chunks below this index were passed to the store's Prefetch
	faring int            // such Prefetches running
}

type recentChunk struct {
	i int
	b []byte
}

// chunk returns chunk i, verified.
func (r *reader) chunk(ctx context.Context, i int) ([]byte, syscall.Errno) {
	r.mu.Lock()
	for k, c := range r.recent {
		if c.b != nil && c.i == i {
			copy(r.recent[1:k+1], r.recent[:k])
			r.recent[0] = c
			r.mu.Unlock()
			return c.b, 0
		}
	}
	r.mu.Unlock()
	ref := r.f.file.Chunks[i]
	b, ok := r.f.sys.ahead.take(ref.ID)
	var err error
	if !ok {
		b, err = r.f.sys.objs.Get(ctx, ref.ID)
	}
	if err == nil && len(b) != int(ref.Size) {
		err = fmt.Errorf("chunk is %d bytes, the file object says %d: %w", len(b), ref.Size, cas.ErrCorrupt)
	}
	if err != nil {
		return nil, r.f.sys.eio("read chunk", ref.ID, err)
	}
	r.mu.Lock()
	copy(r.recent[1:], r.recent[:len(r.recent)-1])
	r.recent[0] = recentChunk{i, b}
	r.mu.Unlock()
	return b, 0
}

// read fills dest from off and returns the bytes read.
func (r *reader) read(ctx context.Context, dest []byte, off int64) (int, syscall.Errno) {
	size := r.f.file.Size
	if off >= size || len(dest) == 0 {
		return 0, 0
	}
	end := min(off+int64(len(dest)), size)
	ends := r.f.ends
	i := sort.Search(len(ends), func(i int) bool { return ends[i] > off })
	r.readAhead(i, off, end)
	n := 0
	for pos := off; pos < end; i++ {
		b, errno := r.chunk(ctx, i)
		if errno != 0 {
			return 0, errno
		}
		start := ends[i] - int64(len(b))
		n += copy(dest[n:end-off], b[pos-start:])
		pos = ends[i]
	}
	return n, 0
}

// readAhead notes a read of [off, end), whose first chunk is i, and when
// reads have been sequential for a while, starts fetching the chunks that
// the next s.readAhead bytes need.
func (r *reader) readAhead(i int, off, end int64) {
	s := r.f.sys
	if s.readAhead <= 0 {
		return
	}
	r.mu.Lock()
	// The kernel's own readahead may reorder neighbouring reads a little.
	if d := off - r.next; off == 0 || -seqSlack <= d && d <= seqSlack {
		r.seq++
	} else {
		r.seq = 0
	}
	r.next = end
	if r.seq < 2 {
		r.mu.Unlock()
		return
	}
	ends := r.f.ends
	from := max(r.ahead, i+1)
	to := from
	for to < len(ends) && ends[to]-int64(r.f.file.Chunks[to].Size) < end+s.readAhead {
		to++
	}
	r.ahead = max(r.ahead, to)
	far := r.farBatch(to, end)
	r.mu.Unlock()
	if far != nil {
		go r.prefetchFar(far)
	}
	for j := from; j < to; j++ {
		if !s.prefetch(r.f.file.Chunks[j].ID) {
			// All fetchers are busy: the next read starts again here,
			// rather than leave chunk j to be fetched when it is read.
			r.mu.Lock()
			if r.ahead == to {
				r.ahead = j
			}
			r.mu.Unlock()
			return
		}
	}
}

// seqSlack is how far a read may start from where the last one ended and
// still count as sequential.
const seqSlack = 1 << 20

// farAhead is how many times s.readAhead past a sequential read the store
// is asked to have the chunks in memory, with Options.Prefetch: the
// remote pack store, through the chunk cache and the tiered store, fetches
// them with few large requests and goes on across packs, where its own
// read-ahead stops, so the chunk read-ahead seldom waits on the network.
const farAhead = 5

// farBatches is how many Prefetches of one reader may run at once, each of
// about s.readAhead bytes: enough requests in flight to fill a link whose
// every request takes a while, as parallel ranged GETs do.
const farBatches = 4

// prefetcher is a store that can fetch objects ahead of their reads, many
// with one request (see pack.Store.Prefetch).
type prefetcher interface {
	Prefetch(ctx context.Context, ids []cas.ID) error
}

// farBatch returns the chunks from index to (or from where the last batch
// ended), about readAhead bytes of them and up to farAhead*readAhead bytes
// past end, for the store's Prefetch; nil if the store is not to prefetch,
// farBatches of them run, or the last one reaches far enough still. r.mu
// must be held.
func (r *reader) farBatch(to int, end int64) []cas.ID {
	s := r.f.sys
	if s.far == nil || r.faring >= farBatches {
		return nil
	}
	chunks, ends := r.f.file.Chunks, r.f.ends
	from := max(r.far, to)
	start := func(j int) int64 { return ends[j] - int64(chunks[j].Size) }
	limit := end + farAhead*s.readAhead
	if from >= len(ends) || start(from) >= limit-s.readAhead {
		return nil
	}
	limit = min(limit, start(from)+s.readAhead)
	var ids []cas.ID
	j := from
	for ; j < len(ends) && start(j) < limit; j++ {
		ids = append(ids, chunks[j].ID)
	}
	r.far = j
	r.faring++
	return ids
}

// prefetchFar asks the store to prefetch ids, in the background.
func (r *reader) prefetchFar(ids []cas.ID) {
	s := r.f.sys
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.far.Prefetch(ctx, ids); err != nil {
		s.log.Debug("prefetch failed", "chunks", len(ids), "err", err)
	}
	r.mu.Lock()
	r.faring--
	r.mu.Unlock()
}

// listing is an open folder of a version: its entries, read once. Opened
// with FOPEN_CACHE_DIR, the kernel keeps the listing, so a second ls or
// find of an immutable folder never reaches the daemon.
type listing struct {
	entries []fuse.DirEntry
	next    int
}

var (
	_ gofs.FileReaddirenter   = (*listing)(nil)
	_ gofs.FileSeekdirer      = (*listing)(nil)
	_ gofs.NodeOpendirHandler = (*versionDir)(nil)
)

func (l *listing) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if l.next >= len(l.entries) {
		return nil, 0
	}
	e := l.entries[l.next]
	l.next++
	return &e, 0
}

func (l *listing) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off > uint64(len(l.entries)) {
		return syscall.EINVAL
	}
	l.next = int(off)
	return 0
}

func (d *versionDir) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	t, errno := d.load(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	d.sys.noteRead(ctx, d.ver)
	self := d.StableAttr().Ino
	list := make([]fuse.DirEntry, len(t.Entries))
	for i := range t.Entries {
		e := &t.Entries[i]
		list[i] = fuse.DirEntry{Name: e.Name, Mode: stableMode(e.Type), Ino: childIno(self, e.Name), Off: uint64(i + 1)}
	}
	return &listing{entries: list}, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}
