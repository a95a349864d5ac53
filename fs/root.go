package fs

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/repo"
	"github.com/mlfs/mlfs/tracking"
	"github.com/mlfs/mlfs/worktree"
)

// Options configure the filesystem.
type Options struct {
	// Repo names the versions.
	Repo *repo.Repo
	// Work holds the working trees; nil serves versions only.
	Work *worktree.Set
	// Runs keeps the runs under runs/; nil leaves runs/ empty.
	Runs *tracking.Tracker
	// Objects serves trees, file objects and chunks, verified (the daemon
	// passes the disk cache over the store).
	Objects cas.Getter
	// ReadAhead is how many bytes past a sequential read are fetched in
	// the background; 0 means DefaultReadAhead, negative turns it off.
	ReadAhead int64
	// Fetchers bounds the background fetches running at once (default 8).
	Fetchers int
	// Prefetch has a sequential reader also ask Objects to fetch the
	// chunks farther ahead, many with one request, if Objects can
	// Prefetch (the chunk cache over a remote can). For stores whose
	// requests are slow; over a local disk it only holds memory.
	Prefetch bool
	Log      *slog.Logger
}

// DefaultReadAhead keeps a streaming reader ahead of a store's latency.
const DefaultReadAhead = 8 << 20

// fetchedBytes bounds the read-ahead results kept in memory for their
// readers: the read-ahead of a few readers at once.
func fetchedBytes(readAhead int64) int64 { return 4 * max(readAhead, 0) }

// rootTimeout is how long the kernel may cache the root's entries, which
// other processes change (a new version by `mlfs add`).
const rootTimeout = time.Second

// sys is what every node shares.
type sys struct {
	repo      *repo.Repo
	work      *worktree.Set
	runs      *tracking.Tracker
	pidRuns   runOfPID
	started   time.Time // shown as the time of runs/
	objs      cas.Getter
	log       *slog.Logger
	readAhead int64
	fetchers  chan struct{}
	ahead     fetched
	far       prefetcher // Options.Objects if Options.Prefetch, else nil
}

// eio logs why an object could not be served and returns EIO (or the
// context's error as EINTR when the caller went away).
func (s *sys) eio(what string, id cas.ID, err error) syscall.Errno {
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	s.log.Error("returning EIO", "op", what, "object", id.String(), "err", err)
	return syscall.EIO
}

// prefetch fetches id in the background unless all fetchers are busy:
// read-ahead is a hint, never a queue that grows. It reports whether id
// is cached or being fetched; false means try again later.
func (s *sys) prefetch(id cas.ID) bool {
	if c, ok := s.objs.(interface{ Has(cas.ID) bool }); ok && c.Has(id) {
		return true // cached already: nothing to fetch
	}
	return s.background(func(ctx context.Context) {
		b, err := s.objs.Get(ctx, id)
		if err != nil {
			s.log.Warn("read-ahead failed", "object", id.String(), "err", err)
			return
		}
		s.ahead.put(id, b)
	})
}

// background runs fetch on one of the fetchers, with a deadline, unless
// all are busy; it reports whether it did.
func (s *sys) background(fetch func(ctx context.Context)) bool {
	select {
	case s.fetchers <- struct{}{}:
	default:
		return false
	}
	go func() {
		defer func() { <-s.fetchers }()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		fetch(ctx)
	}()
	return true
}

// prefetchFile fetches, in the background, the file object of the file e
// and its chunks up to s.readAhead bytes, unless all fetchers are busy
// (then it returns false), for its reader to take from s.ahead. Objects in
// the chunk cache are read from it: the reader then need not.
func (s *sys) prefetchFile(e object.Entry) bool {
	if s.ahead.has(e.ID) {
		return true
	}
	return s.background(func(ctx context.Context) {
		b, err := s.objs.Get(ctx, e.ID)
		var f *object.File
		if err == nil {
			f, err = object.DecodeFile(b)
		}
		if err != nil {
			s.log.Warn("read-ahead failed", "object", e.ID.String(), "err", err)
			return
		}
		s.ahead.put(e.ID, b)
		var off int64
		for _, ch := range f.Chunks {
			if off >= s.readAhead {
				return
			}
			off += int64(ch.Size)
			b, err := s.objs.Get(ctx, ch.ID)
			if err != nil {
				s.log.Warn("read-ahead failed", "object", ch.ID.String(), "err", err)
				return
			}
			s.ahead.put(ch.ID, b)
		}
	})
}

// fetched holds what read-ahead fetched until a reader takes it, at most
// max bytes (the oldest go first), so that a sequential read is served
// from memory instead of being read back from the chunk cache's file and
// verified once more.
type fetched struct {
	mu    sync.Mutex
	max   int64
	bytes int64
	byID  map[cas.ID]*list.Element // of order
	order list.List                // of *fetchedChunk, oldest first
}

type fetchedChunk struct {
	id cas.ID
	b  []byte
}

func (f *fetched) put(id cas.ID, b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.byID[id]; ok || int64(len(b)) > f.max {
		return
	}
	if f.byID == nil {
		f.byID = map[cas.ID]*list.Element{}
	}
	f.byID[id] = f.order.PushBack(&fetchedChunk{id, b})
	f.bytes += int64(len(b))
	for f.bytes > f.max {
		f.remove(f.order.Front())
	}
}

func (f *fetched) has(id cas.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.byID[id]
	return ok
}

// take returns the bytes of id and forgets them, if read-ahead fetched it.
func (f *fetched) take(id cas.ID) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.byID[id]
	if !ok {
		return nil, false
	}
	f.remove(e)
	return e.Value.(*fetchedChunk).b, true
}

// remove forgets e; f.mu must be held.
func (f *fetched) remove(e *list.Element) {
	c := f.order.Remove(e).(*fetchedChunk)
	delete(f.byID, c.id)
	f.bytes -= int64(len(c.b))
}

// Root is the root of the mount.
type Root struct {
	gofs.Inode
	sys *sys
}

var (
	_ gofs.NodeLookuper  = (*Root)(nil)
	_ gofs.NodeReaddirer = (*Root)(nil)
	_ gofs.NodeRmdirer   = (*Root)(nil)
	_ gofs.NodeGetattrer = (*Root)(nil)
	_ gofs.NodeOnAdder   = (*Root)(nil)
	_ gofs.NodeMkdirer   = (*Root)(nil)
	_ gofs.NodeUnlinker  = (*Root)(nil)
)

// New returns the root of an mlfs filesystem.
func New(opt Options) *Root {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.ReadAhead == 0 {
		opt.ReadAhead = DefaultReadAhead
	}
	if opt.Fetchers <= 0 {
		opt.Fetchers = 8
	}
	s := &sys{repo: opt.Repo, work: opt.Work, runs: opt.Runs, objs: opt.Objects, log: opt.Log, started: time.Now(),
		readAhead: opt.ReadAhead, fetchers: make(chan struct{}, opt.Fetchers), ahead: fetched{max: fetchedBytes(opt.ReadAhead)}}
	if p, ok := opt.Objects.(prefetcher); ok && opt.Prefetch {
		s.far = p
	}
	return &Root{sys: s}
}

func (r *Root) OnAdd(ctx context.Context) {
	d := &runsDir{sys: r.sys}
	runs := r.NewPersistentInode(ctx, d, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: childIno(1, "runs")})
	r.AddChild("runs", runs, false)
	if r.sys.runs != nil {
		r.sys.runs.OnRemove = d.forgetRun
	}
}

func (r *Root) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | 0o755
	out.Nlink = 2
	out.SetTimeout(rootTimeout)
	return 0
}

func (r *Root) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if name == "runs" {
		runs := r.GetChild("runs")
		if d, ok := runs.Operations().(*runsDir); ok {
			d.attr(&out.Attr) // its times too: the kernel keeps this answer
		} else {
			out.Mode = syscall.S_IFDIR | 0o755
			out.Nlink = 2
		}
		out.Ino = runs.StableAttr().Ino
		out.SetEntryTimeout(immutable)
		out.SetAttrTimeout(rootTimeout)
		return runs, 0
	}
	ds, ver, isVersion := strings.Cut(name, "@")
	if !isVersion {
		return r.lookupDataset(ctx, name, out)
	}
	ref, err := repo.ParseRef(name)
	if err != nil {
		return nil, syscall.ENOENT
	}
	v, err := r.sys.repo.Resolve(ctx, ref)
	if errors.Is(err, repo.ErrNoVersion) {
		return nil, syscall.ENOENT
	}
	if err != nil {
		r.sys.log.Error("resolve version", "version", name, "err", err)
		return nil, syscall.EIO
	}
	ino := childIno(1, name)
	if ver == "latest" {
		target := ds + "@" + v.Ref.Version
		e := object.Entry{Type: object.TypeSymlink, Perm: 0o777, MTime: v.Time, Target: target}
		entryAttr(&e, &out.Attr)
		out.Ino = ino
		out.SetEntryTimeout(rootTimeout)
		out.SetAttrTimeout(rootTimeout)
		// A new node each time: the target changes with every version.
		return r.NewInode(ctx, &versionLink{ent: e}, gofs.StableAttr{Mode: syscall.S_IFLNK, Ino: ino, Gen: uint64(v.Time)}), 0
	}
	e := object.Entry{Name: name, Type: object.TypeDir, Perm: 0o755, MTime: v.Time, ID: v.Tree}
	entryAttr(&e, &out.Attr)
	ino = versionIno(name, v.ID)
	out.Ino = ino
	out.SetEntryTimeout(immutable)
	out.SetAttrTimeout(immutable)
	return r.sys.newVersionNode(ctx, r.EmbeddedInode(), e, ino, &versionRef{ref: ds + "@" + v.Ref.Version, id: v.ID}, nil, 0), 0
}

func (r *Root) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	list := []fuse.DirEntry{{Name: "runs", Mode: syscall.S_IFDIR, Ino: childIno(1, "runs")}}
	if r.sys.work != nil {
		names, err := r.sys.work.Names(ctx)
		if err != nil {
			r.sys.log.Error("list working trees", "err", err)
			return nil, syscall.EIO
		}
		for _, ds := range names {
			list = append(list, fuse.DirEntry{Name: ds, Mode: syscall.S_IFDIR, Ino: childIno(1, ds)})
		}
	}
	datasets, err := r.sys.repo.Datasets(ctx)
	if err != nil {
		r.sys.log.Error("list datasets", "err", err)
		return nil, syscall.EIO
	}
	for _, ds := range datasets {
		// Names only: a listing needs no version object, so versions this
		// machine has not fetched are listed also while the remote is out
		// of reach (looking one up then fails with EIO). One dataset that
		// cannot be listed leaves the others listed.
		vs, err := r.sys.repo.VersionNames(ctx, ds)
		if err != nil {
			r.sys.log.Error("list versions", "dataset", ds, "err", err)
			continue
		}
		for _, v := range vs {
			name := ds + "@" + v
			list = append(list, fuse.DirEntry{Name: name, Mode: syscall.S_IFDIR, Ino: childIno(1, name)})
		}
		if len(vs) > 0 {
			name := ds + "@latest"
			list = append(list, fuse.DirEntry{Name: name, Mode: syscall.S_IFLNK, Ino: childIno(1, name)})
		}
	}
	sortEntries(list)
	return gofs.NewListDirStream(list), 0
}

// Rmdir of a version or a dataset is refused: versions are removed only
// by the CLI, and a dataset's working tree goes with its versions.
func (r *Root) Rmdir(ctx context.Context, name string) syscall.Errno {
	if _, errno := r.Lookup(ctx, name, &fuse.EntryOut{}); errno != 0 {
		return errno
	}
	return syscall.EPERM
}

// Unlink refuses to remove a version's name (or @latest) from the mount.
func (r *Root) Unlink(ctx context.Context, name string) syscall.Errno {
	if _, errno := r.Lookup(ctx, name, &fuse.EntryOut{}); errno != 0 {
		return errno
	}
	return syscall.EPERM
}

// lookupDataset returns the top of dataset's working tree.
func (r *Root) lookupDataset(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if r.sys.work == nil || name == "runs" || repo.CheckDatasetName(name) != nil {
		return nil, syscall.ENOENT
	}
	t, err := r.sys.work.Get(ctx, name, false)
	if errors.Is(err, worktree.ErrNoDataset) {
		return nil, syscall.ENOENT
	}
	if err != nil {
		return nil, r.sys.errno("open working tree", err)
	}
	return r.datasetNode(ctx, t, out)
}

func (r *Root) datasetNode(ctx context.Context, t *worktree.Tree, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	a, err := t.GetAttr(worktree.RootIno)
	if err != nil {
		return nil, r.sys.errno("getattr", err)
	}
	workAttr(a, &out.Attr)
	ino := workIno(t.Dataset(), worktree.RootIno)
	out.Ino = ino
	out.SetEntryTimeout(workTimeout)
	out.SetAttrTimeout(workTimeout)
	n := &workNode{sys: r.sys, t: t, ino: worktree.RootIno}
	return r.NewInode(ctx, n, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino}), 0
}

// Mkdir of "name" creates an empty dataset; of "dataset@version" it
// snapshots the dataset's working tree as that version.
func (r *Root) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if r.sys.work == nil {
		return nil, syscall.EROFS
	}
	ds, ver, isVersion := strings.Cut(name, "@")
	if !isVersion {
		if name == "runs" {
			return nil, syscall.EEXIST
		}
		if repo.CheckDatasetName(name) != nil {
			return nil, syscall.EINVAL
		}
		names, err := r.sys.work.Names(ctx)
		if err != nil {
			return nil, r.sys.errno("list datasets", err)
		}
		if slices.Contains(names, name) {
			return nil, syscall.EEXIST
		}
		t, err := r.sys.work.Get(ctx, name, true)
		if err != nil {
			return nil, r.sys.errno("create dataset", err)
		}
		return r.datasetNode(ctx, t, out)
	}
	if repo.CheckDatasetName(ds) != nil || repo.CheckVersionName(ver) != nil {
		return nil, syscall.EINVAL
	}
	t, err := r.sys.work.Get(ctx, ds, false)
	if errors.Is(err, worktree.ErrNoDataset) {
		return nil, syscall.ENOENT
	}
	if err != nil {
		return nil, r.sys.errno("open working tree", err)
	}
	res, err := t.Snapshot(ctx, r.sys.repo, repo.Ref{Dataset: ds, Version: ver}, "")
	if errors.Is(err, cas.ErrExists) {
		return nil, syscall.EEXIST
	}
	if err != nil {
		return nil, r.sys.errno("snapshot", err)
	}
	r.sys.log.Info("snapshot", "version", name, "id", res.ID.Short(), "files stored", res.Stored, "new bytes", res.NewBytes)
	if latest := r.GetChild(ds + "@latest"); latest != nil {
		r.RmChild(ds + "@latest")
	}
	// The kernel holds this folder's lock until Mkdir returns, and a
	// notification waits for that lock: send it from outside.
	go r.NotifyEntry(ds + "@latest")
	return r.Lookup(ctx, name, out)
}

// versionIno is the inode number of version name at id. A name removed
// and made again with other content (on another machine) is a new node
// with new numbers below it too (children's derive from it): a node of
// the same number would be the old one, still registered, with the old
// content. ForgetVersion makes the kernel look the name up again.
func versionIno(name string, id cas.ID) uint64 {
	return childIno(1, name+"\x00"+id.String())
}

// ForgetVersion drops what the kernel and this filesystem remember of
// version name (dataset@version), whose id changed behind the mount:
// removed, or made again with other content, on another machine.
func (r *Root) ForgetVersion(name string) {
	ds, _, _ := strings.Cut(name, "@")
	r.RmChild(name, ds+"@latest")
	go func() {
		r.NotifyEntry(name)
		r.NotifyEntry(ds + "@latest")
	}()
}

// Forget drops what the kernel and this filesystem remember of dataset's
// working tree, after it was changed behind the mount (a checkout).
//
// The kernel may hold entries below the old folder too (a file looked up
// before, for a second): they name nodes the reset removed, so they are
// dropped as well, and Forget waits (a little) for the kernel to take it
// all, so that a command run after a checkout finds the new tree.
func (r *Root) Forget(dataset string) {
	old := r.GetChild(dataset)
	r.RmChild(dataset)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.NotifyEntry(dataset)
		if old != nil {
			forgetBelow(old)
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
}

// forgetBelow drops the kernel's entries below folder n.
func forgetBelow(n *gofs.Inode) {
	for name, c := range n.Children() {
		n.NotifyEntry(name)
		if c.IsDir() {
			forgetBelow(c)
		}
	}
}
