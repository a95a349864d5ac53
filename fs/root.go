package fs

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
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
	Log      *slog.Logger
}

// DefaultReadAhead keeps a streaming reader ahead of a store's latency.
const DefaultReadAhead = 8 << 20

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
// read-ahead is a hint, never a queue that grows.
func (s *sys) prefetch(id cas.ID) {
	if c, ok := s.objs.(interface{ Has(cas.ID) bool }); ok && c.Has(id) {
		return // cached already: nothing to fetch
	}
	select {
	case s.fetchers <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-s.fetchers }()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := s.objs.Get(ctx, id); err != nil {
			s.log.Warn("read-ahead failed", "object", id.String(), "err", err)
		}
	}()
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
	return &Root{sys: &sys{repo: opt.Repo, work: opt.Work, runs: opt.Runs, objs: opt.Objects, log: opt.Log, started: time.Now(),
		readAhead: opt.ReadAhead, fetchers: make(chan struct{}, opt.Fetchers)}}
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
		out.Mode = syscall.S_IFDIR | 0o755
		out.Nlink = 2
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
	out.Ino = ino
	out.SetEntryTimeout(immutable)
	out.SetAttrTimeout(immutable)
	return r.sys.newVersionNode(ctx, r.EmbeddedInode(), e, ino, &versionRef{ref: ds + "@" + v.Ref.Version, id: v.ID}), 0
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
		vs, err := r.sys.repo.Versions(ctx, ds)
		if err != nil {
			r.sys.log.Error("list versions", "dataset", ds, "err", err)
			return nil, syscall.EIO
		}
		for _, v := range vs {
			name := v.Ref.String()
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

// Forget drops what the kernel and this filesystem remember of dataset's
// working tree, after it was changed behind the mount (a checkout).
func (r *Root) Forget(dataset string) {
	r.RmChild(dataset)
	go r.NotifyEntry(dataset)
}
