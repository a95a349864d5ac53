package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/chunker"
	"github.com/mlfs/mlfs/cas/object"
)

// AddOptions tune Add.
type AddOptions struct {
	Message string
	// Warn is told about entries that were skipped (fifos, sockets,
	// devices). Nil ignores them.
	Warn func(path, reason string)
	// Progress is called now and then with the bytes and files done.
	Progress func(bytes, files int64)
}

// AddResult describes a new version.
type AddResult struct {
	VersionInfo
	// NewBytes counts the chunk bytes that were not in the store before.
	NewBytes int64
	// NewChunks counts the chunks written.
	NewChunks int64
	// Reused counts files whose content was known from an earlier add and
	// not read again.
	Reused int64
	// Skipped counts entries that are not files, folders or symlinks.
	Skipped int64
}

// Add imports the folder (or single file) at path as version ref. A
// symlink given as path is followed; symlinks inside the folder are stored
// as symlinks. It reads
// each file once, chunking it and hashing the chunks on all cores, with
// memory bounded by a fixed number of chunks in flight, and creates the
// version's name only after every object is stored.
func (r *Repo) Add(ctx context.Context, ref Ref, path string, opts AddOptions) (*AddResult, error) {
	if err := CheckDatasetName(ref.Dataset); err != nil {
		return nil, err
	}
	if err := CheckVersionName(ref.Version); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New("add: PATH is empty")
	}
	if _, err := r.store.GetRef(ctx, ref.refName()); err == nil {
		return nil, fmt.Errorf("version %s: %w; versions are immutable, pick a new name", ref, cas.ErrExists)
	} else if !errors.Is(err, cas.ErrNotFound) {
		return nil, err
	}
	root, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	// Stat, not Lstat: "mlfs add ds@v1 ./current" with current -> run-42/
	// means the folder the user points at.
	info, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("add %s: %w", path, err)
	}
	unlock, err := r.lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	a := &adder{r: r, ctx: ctx, cancel: cancel, opts: opts, files: newFileCache(r.idx)}
	a.workers = make(chan struct{}, 2*runtime.GOMAXPROCS(0)+4)
	a.fileSlots = make(chan struct{}, min(runtime.GOMAXPROCS(0), 8)+1)

	var treeID cas.ID
	switch {
	case info.IsDir():
		treeID, err = a.dir(root, "")
	case info.Mode().IsRegular():
		// A single file becomes a version holding just that file.
		var e object.Entry
		var job *pendingFile
		if err = object.CheckName(info.Name()); err != nil {
			err = fmt.Errorf("add %s: %v; rename it, mlfs stores only UTF-8 names", path, err)
		} else if e, job, err = a.entryOf(root, "", info); err == nil {
			t := &object.Tree{Entries: []object.Entry{e}}
			treeID, err = a.finishTree(t, []*pendingFile{job})
		}
	default:
		err = fmt.Errorf("add %s: not a folder or a regular file", path)
	}
	a.wg.Wait()
	if err == nil {
		err = a.err()
	}
	if err != nil {
		return nil, err
	}

	parent := cas.ID{}
	if vs, err := r.Versions(ctx, ref.Dataset); err != nil {
		return nil, err
	} else if len(vs) > 0 {
		parent = vs[len(vs)-1].ID
	}
	vi, err := a.commit(ref, treeID, parent, opts.Message)
	if err != nil {
		return nil, err
	}
	return &AddResult{
		VersionInfo: vi,
		NewBytes:    a.newBytes.Load(), NewChunks: a.newChunks.Load(),
		Reused: a.reused.Load(), Skipped: a.skipped.Load(),
	}, nil
}

// adder is the state of one Add.
type adder struct {
	r      *Repo
	ctx    context.Context
	cancel context.CancelCauseFunc
	opts   AddOptions
	files  *fileCache

	workers   chan struct{} // bounds chunks in flight (hash + put)
	fileSlots chan struct{} // bounds files being chunked at once
	wg        sync.WaitGroup

	nfiles, nbytes, newBytes, newChunks, reused, skipped atomic.Int64
	progressMu                                           sync.Mutex
}

func (a *adder) fail(err error) { a.cancel(err) }

func (a *adder) err() error {
	if a.ctx.Err() != nil {
		return context.Cause(a.ctx)
	}
	return nil
}

func (a *adder) wait() { a.wg.Wait() }

// dir adds the folder at path (shown as rel) and returns its tree id. Its
// files are chunked in the background while dir walks on into subfolders.
func (a *adder) dir(path, rel string) (cas.ID, error) {
	ents, err := os.ReadDir(path)
	if err != nil {
		return cas.ID{}, fmt.Errorf("add %s: %w", path, err)
	}
	t := &object.Tree{Entries: make([]object.Entry, 0, len(ents))}
	var jobs []*pendingFile
	for _, de := range ents {
		if err := a.err(); err != nil {
			return cas.ID{}, err
		}
		childPath := filepath.Join(path, de.Name())
		childRel := de.Name()
		if rel != "" {
			childRel = rel + "/" + de.Name()
		}
		if err := object.CheckName(de.Name()); err != nil {
			return cas.ID{}, fmt.Errorf("add %s: %v; rename it, mlfs stores only UTF-8 names", childPath, err)
		}
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed while we walked
		}
		if err != nil {
			return cas.ID{}, fmt.Errorf("add %s: %w", childPath, err)
		}
		e, job, err := a.entryOf(childPath, childRel, info)
		if err != nil {
			return cas.ID{}, err
		}
		if e.Type != 0 {
			t.Entries = append(t.Entries, e)
			jobs = append(jobs, job)
		}
	}
	return a.finishTree(t, jobs)
}

// finishTree waits for the file jobs of t (jobs[i] belongs to entry i, nil
// for non-files), fills in their ids and stores the tree.
func (a *adder) finishTree(t *object.Tree, jobs []*pendingFile) (cas.ID, error) {
	for i, job := range jobs {
		if job == nil {
			continue
		}
		select {
		case <-job.done:
		case <-a.ctx.Done():
			return cas.ID{}, a.err()
		}
		if job.err != nil {
			return cas.ID{}, job.err
		}
		t.Entries[i].ID, t.Entries[i].Size = job.id, job.size
	}
	// The entries were checked one by one as they were read; this is the
	// last word, the same check the decoder applies, so no tree is stored
	// that readers would reject.
	if err := t.Check(); err != nil {
		return cas.ID{}, fmt.Errorf("add: %w", err)
	}
	return a.putObject(t.Encode())
}

func (a *adder) putObject(b []byte) (cas.ID, error) {
	id := cas.Sum(b)
	if err := a.r.store.Put(a.ctx, id, b); err != nil {
		return id, err
	}
	return id, nil
}

// entryOf makes the tree entry for one path; for a regular file it also
// starts the job that computes the file's id. Type 0 means skipped.
func (a *adder) entryOf(path, rel string, info fs.FileInfo) (object.Entry, *pendingFile, error) {
	e := object.Entry{Name: info.Name(), Perm: object.UnixPerm(info.Mode()), MTime: info.ModTime().UnixNano()}
	switch m := info.Mode(); {
	case m.IsRegular():
		e.Type = object.TypeFile
		return e, a.startFile(path, info), nil
	case m.IsDir():
		e.Type = object.TypeDir
		id, err := a.dir(path, rel)
		e.ID = id
		return e, nil, err
	case m&fs.ModeSymlink != 0:
		e.Type = object.TypeSymlink
		target, err := os.Readlink(path)
		if err != nil {
			return e, nil, fmt.Errorf("add %s: %w", path, err)
		}
		e.Target = target
		if err := object.CheckTarget(target); err != nil {
			return e, nil, fmt.Errorf("add %s: %v; point the link at a UTF-8 path, mlfs stores only UTF-8 symlink targets", path, err)
		}
		if err := e.Check(); err != nil {
			return e, nil, fmt.Errorf("add %s: %v", path, err)
		}
		return e, nil, nil
	default:
		a.skipped.Add(1)
		if a.opts.Warn != nil {
			a.opts.Warn(path, fmt.Sprintf("skipped: %s is not a file, folder or symlink", kindOf(m)))
		}
		return object.Entry{}, nil, nil
	}
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a fifo"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// pendingFile is a file whose object is being computed.
type pendingFile struct {
	done chan struct{}
	id   cas.ID
	size int64
	err  error
}

// startFile computes the file's object in the background, at most a few
// files at a time; it blocks while all file slots are busy, which keeps
// the walk from running far ahead of the work.
func (a *adder) startFile(path string, info fs.FileInfo) *pendingFile {
	p := &pendingFile{done: make(chan struct{})}
	a.fileSlots <- struct{}{}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(p.done)
		defer func() { <-a.fileSlots }()
		p.id, p.size, p.err = a.file(path, info)
		if p.err != nil {
			a.fail(p.err)
			return
		}
		a.nfiles.Add(1)
		a.nbytes.Add(p.size)
		if a.opts.Progress != nil {
			a.progressMu.Lock()
			a.opts.Progress(a.nbytes.Load(), a.nfiles.Load())
			a.progressMu.Unlock()
		}
	}()
	return p
}

var chunkBufs = sync.Pool{New: func() any { b := make([]byte, chunker.MaxSize); return &b }}

var chunkers = sync.Pool{New: func() any { return chunker.New(nil) }}

// chunkResult is filled in by the worker that hashed and stored a chunk.
type chunkResult struct {
	id  cas.ID
	err error
}

// file stores the content of one file and returns its file object's id.
func (a *adder) file(path string, info fs.FileInfo) (cas.ID, int64, error) {
	if id, ok := a.files.lookup(a.ctx, a.r.store, path, info); ok {
		a.reused.Add(1)
		return id, info.Size(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return cas.ID{}, 0, fmt.Errorf("add %s: %w", path, err)
	}
	defer f.Close()
	c := chunkers.Get().(*chunker.Chunker)
	c.Reset(f)
	defer func() { c.Reset(nil); chunkers.Put(c) }()

	var (
		file    object.File
		results []*chunkResult
		wg      sync.WaitGroup
	)
	for {
		b, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			wg.Wait()
			return cas.ID{}, 0, fmt.Errorf("add %s: read: %w", path, err)
		}
		if err := a.err(); err != nil {
			wg.Wait()
			return cas.ID{}, 0, err
		}
		bufp := chunkBufs.Get().(*[]byte)
		buf := (*bufp)[:len(b)]
		copy(buf, b)
		res := &chunkResult{}
		results = append(results, res)
		file.Chunks = append(file.Chunks, object.ChunkRef{Size: uint32(len(b))})
		file.Size += int64(len(b))

		a.workers <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-a.workers }()
			res.id, res.err = a.putChunk(buf)
			chunkBufs.Put(bufp)
		}()
	}
	wg.Wait()
	for i, res := range results {
		if res.err != nil {
			return cas.ID{}, 0, fmt.Errorf("add %s: %w", path, res.err)
		}
		file.Chunks[i].ID = res.id
	}
	id, err := a.putObject(file.Encode())
	if err != nil {
		return cas.ID{}, 0, fmt.Errorf("add %s: %w", path, err)
	}
	if after, err := f.Stat(); err == nil {
		a.files.remember(path, info, after, file.Size, id)
	}
	return id, file.Size, nil
}

func (a *adder) putChunk(b []byte) (cas.ID, error) {
	id := cas.Sum(b)
	if _, err := a.r.store.Stat(a.ctx, id); err == nil {
		return id, nil
	} else if !errors.Is(err, cas.ErrNotFound) {
		return id, err
	}
	if err := a.r.store.Put(a.ctx, id, b); err != nil {
		return id, err
	}
	a.newBytes.Add(int64(len(b)))
	a.newChunks.Add(1)
	return id, nil
}

// statKey is what identifies an unchanged file between two adds, as git's
// index and restic's parent snapshots do: same inode, size, mtime, ctime.
func statKey(fi fs.FileInfo) (dev, ino uint64, ctime int64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0, false
	}
	return uint64(st.Dev), st.Ino, st.Ctim.Nano(), true
}
