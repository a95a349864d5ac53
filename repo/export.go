package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
)

// ExportOptions tune Export.
type ExportOptions struct {
	Progress func(bytes, files int64)
}

// Export writes version ref into dir, which must not exist or be empty:
// every file's bytes (each chunk verified), modes, modification times,
// symlinks and empty folders. Each file is written under a temporary name
// in its folder and renamed into place once all its chunks are written and
// verified, so on error dir may hold a partial copy, but every file in it
// under its real name has its full, verified content.
func (r *Repo) Export(ctx context.Context, ref Ref, dir string, opts ExportOptions) (VersionInfo, error) {
	v, err := r.Resolve(ctx, ref)
	if err != nil {
		return v, err
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return v, fmt.Errorf("export %s: %s is not empty; export into a new or empty folder", ref, dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return v, fmt.Errorf("export %s: %w", ref, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return v, fmt.Errorf("export %s: %w", ref, err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	e := &exporter{r: r, ctx: ctx, cancel: cancel, opts: opts,
		sem: make(chan struct{}, 4*runtime.GOMAXPROCS(0)+4)}
	err = e.tree(v.Tree, dir)
	e.wg.Wait()
	if ctx.Err() != nil {
		err = context.Cause(ctx) // the first failure, not what it canceled
	}
	if err == nil {
		// The root's own mode and time come from no entry; keep the default.
		err = e.setDirTimes()
	}
	if err != nil {
		return v, fmt.Errorf("export %s: %w", ref, err)
	}
	return v, nil
}

type exporter struct {
	r      *Repo
	ctx    context.Context
	cancel context.CancelCauseFunc
	opts   ExportOptions
	sem    chan struct{} // bounds chunks in flight
	wg     sync.WaitGroup

	mu           sync.Mutex
	bytes, files int64
	dirs         []dirMeta // set after all files are written
}

type dirMeta struct {
	path  string
	perm  fs.FileMode
	mtime int64
}

func (e *exporter) tree(id cas.ID, dir string) error {
	t, err := e.r.loadTree(e.ctx, id)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	temps := 0 // temporary names handed out in dir
	for i := range t.Entries {
		ent := &t.Entries[i]
		p := filepath.Join(dir, ent.Name)
		if err := e.ctx.Err(); err != nil {
			return context.Cause(e.ctx)
		}
		switch ent.Type {
		case object.TypeDir:
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
			if err := e.tree(ent.ID, p); err != nil {
				return err
			}
			e.mu.Lock()
			e.dirs = append(e.dirs, dirMeta{p, ent.FileMode(), ent.MTime})
			e.mu.Unlock()
		case object.TypeSymlink:
			if err := os.Symlink(ent.Target, p); err != nil {
				return err
			}
			ts := []unix.Timespec{unix.NsecToTimespec(ent.MTime), unix.NsecToTimespec(ent.MTime)}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("%s: set time: %w", p, err)
			}
		case object.TypeFile:
			if err := e.file(ent, p, filepath.Join(dir, tempName(t, &temps))); err != nil {
				return err
			}
		}
	}
	return nil
}

// tempName returns a name for a file being written in the folder of t that
// no entry of t has, so it can collide neither with what the export
// creates there nor with another file's temporary name. The folder was
// empty when the export began.
func tempName(t *object.Tree, n *int) string {
	for {
		name := fmt.Sprintf(".mlfs-export-%d.tmp", *n)
		*n++
		i := sort.Search(len(t.Entries), func(i int) bool { return t.Entries[i].Name >= name })
		if i == len(t.Entries) || t.Entries[i].Name != name {
			return name
		}
	}
}

// file writes one file under the name tmp; its chunks are fetched and
// written in parallel (at their offsets), and when the last one has landed
// its mode and time are set and it is renamed to path. On any failure tmp
// is removed, so path never holds wrong bytes.
func (e *exporter) file(ent *object.Entry, path, tmp string) error {
	fo, err := e.r.loadFile(e.ctx, ent.ID)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if fo.Size != ent.Size {
		return fmt.Errorf("%s: tree says %d bytes, file object %s says %d: %w", path, ent.Size, ent.ID.Short(), fo.Size, cas.ErrCorrupt)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	discard := func() {
		f.Close()
		os.Remove(tmp)
	}
	if err := f.Truncate(fo.Size); err != nil {
		discard()
		return fmt.Errorf("%s: %w", path, err)
	}
	var fileWG sync.WaitGroup
	var once sync.Once
	var ferr error
	setErr := func(err error) { once.Do(func() { ferr = err; e.cancel(err) }) }
	off := int64(0)
	for _, c := range fo.Chunks {
		c, at := c, off
		off += int64(c.Size)
		select {
		case e.sem <- struct{}{}:
		case <-e.ctx.Done():
			fileWG.Wait()
			discard()
			return context.Cause(e.ctx)
		}
		fileWG.Add(1)
		go func() {
			defer fileWG.Done()
			defer func() { <-e.sem }()
			b, err := e.r.store.Get(e.ctx, c.ID)
			if err == nil && len(b) != int(c.Size) {
				err = fmt.Errorf("chunk %s has %d bytes, file object says %d: %w", c.ID.Short(), len(b), c.Size, cas.ErrCorrupt)
			}
			if err == nil {
				_, err = f.WriteAt(b, at)
			}
			if err != nil {
				setErr(fmt.Errorf("%s: %w", path, err))
			}
		}()
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		fileWG.Wait()
		// ferr is nil only if every chunk arrived, verified against its
		// id by the store and against its length above.
		err := ferr
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(tmp, ent.FileMode())
		}
		if err == nil {
			mt := time.Unix(0, ent.MTime)
			err = os.Chtimes(tmp, mt, mt)
		}
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			os.Remove(tmp)
			setErr(fmt.Errorf("%s: %w", path, err))
			return
		}
		e.mu.Lock()
		e.bytes += fo.Size
		e.files++
		if e.opts.Progress != nil {
			e.opts.Progress(e.bytes, e.files)
		}
		e.mu.Unlock()
	}()
	return nil
}

// setDirTimes applies folder modes and times once their contents exist
// (writing into a folder changes its mtime, and a read-only folder could
// not be filled). e.dirs is in post-order: deepest first.
func (e *exporter) setDirTimes() error {
	for _, d := range e.dirs {
		mt := time.Unix(0, d.mtime)
		if err := os.Chtimes(d.path, mt, mt); err != nil {
			return err
		}
		if err := os.Chmod(d.path, d.perm); err != nil {
			return err
		}
	}
	return nil
}
