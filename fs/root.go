package fs

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/repo"
)

// Options configure the filesystem.
type Options struct {
	// Repo names the versions.
	Repo *repo.Repo
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
	return &Root{sys: &sys{repo: opt.Repo, objs: opt.Objects, log: opt.Log,
		readAhead: opt.ReadAhead, fetchers: make(chan struct{}, opt.Fetchers)}}
}

func (r *Root) OnAdd(ctx context.Context) {
	runs := r.NewPersistentInode(ctx, &runsDir{}, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: childIno(1, "runs")})
	r.AddChild("runs", runs, false)
}

func (r *Root) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | 0o755
	out.Nlink = 2
	out.SetTimeout(rootTimeout)
	return 0
}

func (r *Root) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ds, ver, isVersion := strings.Cut(name, "@")
	if !isVersion {
		return nil, syscall.ENOENT
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
	return r.sys.newVersionNode(ctx, r.EmbeddedInode(), e, ino), 0
}

func (r *Root) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	list := []fuse.DirEntry{{Name: "runs", Mode: syscall.S_IFDIR, Ino: childIno(1, "runs")}}
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

// Rmdir of a version is refused: versions are removed only by the CLI.
func (r *Root) Rmdir(ctx context.Context, name string) syscall.Errno {
	if strings.Contains(name, "@") {
		return syscall.EPERM
	}
	return syscall.ENOENT
}

// runsDir is where runs will live; empty for now.
type runsDir struct{ gofs.Inode }

var _ gofs.NodeReaddirer = (*runsDir)(nil)

func (d *runsDir) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	return gofs.NewListDirStream(nil), 0
}
