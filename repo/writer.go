package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
)

// Writer stores the objects of one new version piece by piece, for callers
// that build the tree themselves (the mount's snapshots). It holds the
// store's shared lock from NewWriter to Close, so gc cannot remove what it
// has stored before Commit names it.
type Writer struct {
	a      *adder
	unlock func()
	done   bool
}

// NewWriter starts a version. Close must be called.
func (r *Repo) NewWriter(ctx context.Context) (*Writer, error) {
	unlock, err := r.lock(false)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	a := &adder{r: r, ctx: ctx, cancel: cancel, files: newFileCache(r.idx)}
	a.workers = make(chan struct{}, 2*runtime.GOMAXPROCS(0)+4)
	a.fileSlots = make(chan struct{}, 1)
	return &Writer{a: a, unlock: unlock}, nil
}

// PutFile chunks and stores the regular file at path and returns its file
// object's id and size. The file must not change while it is read.
func (w *Writer) PutFile(path string) (cas.ID, int64, error) {
	info, err := os.Stat(path)
	if err != nil {
		return cas.ID{}, 0, err
	}
	id, size, err := w.a.file(path, info)
	if err == nil {
		w.a.nfiles.Add(1)
		w.a.nbytes.Add(size)
	}
	return id, size, err
}

// PutTree stores a tree object, after checking it.
func (w *Writer) PutTree(t *object.Tree) (cas.ID, error) {
	if err := t.Check(); err != nil {
		return cas.ID{}, err
	}
	return w.a.putObject(t.Encode())
}

// Count adds files and bytes that the tree reuses from earlier versions
// to the totals recorded in the version.
func (w *Writer) Count(files, bytes int64) {
	w.a.nfiles.Add(files)
	w.a.nbytes.Add(bytes)
}

// NewBytes tells how many chunk bytes were new to the store.
func (w *Writer) NewBytes() int64 { return w.a.newBytes.Load() }

// Commit stores the version object for tree and creates its name, which
// fails with an error wrapping cas.ErrExists if the name is taken.
func (w *Writer) Commit(ref Ref, tree, parent cas.ID, message string) (VersionInfo, error) {
	if err := CheckDatasetName(ref.Dataset); err != nil {
		return VersionInfo{}, err
	}
	if err := CheckVersionName(ref.Version); err != nil {
		return VersionInfo{}, err
	}
	vi, err := w.a.commit(ref, tree, parent, message)
	if err == nil {
		w.done = true
	}
	return vi, err
}

// CommitRef is Commit for a ref that is not a dataset's version (runs are
// published as "runs/<id>/<seq>"): it stores a version object of tree,
// naming dataset as what it holds, and creates the ref name for it, which
// fails with an error wrapping cas.ErrExists if name is taken. Datasets
// and Versions do not list such refs; gc keeps, and fsck reads, what they
// reach as for every ref. It returns the version object's id.
func (w *Writer) CommitRef(name, dataset string, tree, parent cas.ID, message string) (cas.ID, error) {
	if err := cas.CheckRefName(name); err != nil {
		return cas.ID{}, err
	}
	if ds, _, _ := strings.Cut(name, "/"); CheckDatasetName(ds) == nil {
		return cas.ID{}, fmt.Errorf("ref %s would be a version of dataset %s; use Commit", name, ds)
	}
	a := w.a
	host, user := whoami()
	v := &object.Version{Dataset: dataset, Tree: tree, Parent: parent, Time: now(),
		Host: host, User: user, Message: message, Files: a.nfiles.Load(), Bytes: a.nbytes.Load()}
	if err := v.Check(); err != nil {
		return cas.ID{}, fmt.Errorf("ref %s: %w", name, err)
	}
	enc := v.Encode()
	vid := cas.Sum(enc)
	if err := a.r.store.Put(a.ctx, vid, enc); err != nil {
		return cas.ID{}, fmt.Errorf("ref %s: %w", name, err)
	}
	if err := a.r.store.CreateRef(a.ctx, name, vid); err != nil {
		return cas.ID{}, fmt.Errorf("create ref %s: %w", name, err)
	}
	w.done = true
	a.files.flush()
	return vid, nil
}

// Flush makes the objects stored so far durable in the store, for callers
// that keep their ids without a version naming them (a run's artifacts,
// kept by a working tree).
func (w *Writer) Flush(ctx context.Context) error {
	if f, ok := w.a.r.store.(interface{ Flush(context.Context) error }); ok {
		return f.Flush(ctx)
	}
	return nil
}

// Close releases the lock. Objects stored without a Commit are left for gc.
func (w *Writer) Close() {
	if w.unlock != nil {
		w.unlock()
		w.unlock = nil
	}
	w.a.cancel(errors.New("writer closed"))
}

// commit names a version of tree: the last step of every new version.
func (a *adder) commit(ref Ref, tree, parent cas.ID, message string) (VersionInfo, error) {
	r := a.r
	host, user := whoami()
	v := &object.Version{Dataset: ref.Dataset, Tree: tree, Parent: parent, Time: now(),
		Host: host, User: user, Message: message, Files: a.nfiles.Load(), Bytes: a.nbytes.Load()}
	if err := v.Check(); err != nil {
		return VersionInfo{}, fmt.Errorf("version %s: %w", ref, err)
	}
	enc := v.Encode()
	vid := cas.Sum(enc)
	if err := r.store.Put(a.ctx, vid, enc); err != nil {
		return VersionInfo{}, err
	}
	if err := r.store.CreateRef(a.ctx, ref.refName(), vid); err != nil {
		if errors.Is(err, cas.ErrExists) {
			return VersionInfo{}, fmt.Errorf("version %s: %w (created by another writer meanwhile); pick a new name", ref, cas.ErrExists)
		}
		return VersionInfo{}, fmt.Errorf("commit version %s: %w", ref, err)
	}
	a.files.flush()
	return VersionInfo{Ref: ref, ID: vid, Version: v}, nil
}
