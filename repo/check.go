package repo

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
)

// Problem is one bad object found by Fsck.
type Problem struct {
	ID    cas.ID
	What  string // "version", "tree", "file", "chunk" or "ref"
	Where string // the first version and path that reach it
	Err   error
}

func (p Problem) String() string {
	return fmt.Sprintf("%s %s (%s): %v", p.What, p.ID, p.Where, p.Err)
}

// FsckStats counts what Fsck verified. Runs are the version objects of
// published runs ("runs/<id>/<seq>"), counted apart from the datasets'
// versions although both are refs to version objects.
type FsckStats struct {
	Versions, Runs, Trees, Files, Chunks, Bytes, Problems int64
}

// IsRunRef reports whether ref name is a published run's
// ("runs/<id>/<seq>"), not a dataset's version.
func IsRunRef(name string) bool { return strings.HasPrefix(name, runsRefPrefix) }

// IsVersionRef reports whether ref name is a dataset's version
// ("<dataset>/<version>"), not a run's.
func IsVersionRef(name string) bool {
	ds, ver, ok := strings.Cut(name, "/")
	return ok && CheckDatasetName(ds) == nil && ver != "" && !strings.Contains(ver, "/")
}

// runsRefPrefix begins the refs of published runs (the "runs" dataset
// name is reserved for them: see CheckDatasetName).
const runsRefPrefix = "runs/"

// Fsck reads every object reachable from every version and from the
// roots added with AddRoots, checks that it
// hashes to its id and decodes, and reports each bad or missing one once.
// The error is non-nil only when the check itself could not run.
func (r *Repo) Fsck(ctx context.Context, report func(Problem)) (FsckStats, error) {
	c := &checker{r: r, ctx: ctx, report: report, seen: map[cas.ID]bool{},
		sem: make(chan struct{}, 2*runtime.GOMAXPROCS(0)+2)}
	err := r.store.ListRefs(ctx, "", func(name string, id cas.ID) error {
		c.version(name, id)
		return ctx.Err()
	})
	// What else is kept besides versions (working trees, run artifacts)
	// is read back the same way.
	for _, roots := range r.roots {
		if err != nil {
			break
		}
		err = roots.walk(ctx, func(id cas.ID, dir bool) error {
			if dir {
				c.tree(id, roots.name+": ")
			} else {
				c.file(id, -1, roots.name+": file "+id.Short())
			}
			return ctx.Err()
		})
	}
	c.wg.Wait()
	c.stats.Problems = c.problems.Load()
	return c.stats, err
}

type checker struct {
	r      *Repo
	ctx    context.Context
	report func(Problem)
	sem    chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	seen     map[cas.ID]bool
	stats    FsckStats
	problems atomic.Int64
}

func (c *checker) problem(id cas.ID, what, where string, err error) {
	c.problems.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.report(Problem{id, what, where, err})
}

// first reports whether id is seen for the first time.
func (c *checker) first(id cas.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[id] {
		return false
	}
	c.seen[id] = true
	return true
}

func (c *checker) version(ref string, id cas.ID) {
	where := ref
	if ds, ver, ok := cutRef(ref); ok {
		where = ds + "@" + ver
	}
	if !c.first(id) {
		return
	}
	v, err := c.r.loadVersion(c.ctx, id)
	if err != nil {
		c.problem(id, "version", where, err)
		return
	}
	if IsRunRef(ref) {
		c.add(&c.stats.Runs, 0)
	} else {
		c.add(&c.stats.Versions, 0)
	}
	c.tree(v.Tree, where+":/")
}

func cutRef(ref string) (string, string, bool) {
	for i := len(ref) - 1; i >= 0; i-- {
		if ref[i] == '/' {
			return ref[:i], ref[i+1:], true
		}
	}
	return "", "", false
}

func (c *checker) add(n *int64, bytes int64) {
	c.mu.Lock()
	*n++
	c.stats.Bytes += bytes
	c.mu.Unlock()
}

func (c *checker) tree(id cas.ID, where string) {
	if !c.first(id) || c.ctx.Err() != nil {
		return
	}
	t, err := c.r.loadTree(c.ctx, id)
	if err != nil {
		c.problem(id, "tree", where, err)
		return
	}
	c.add(&c.stats.Trees, 0)
	for _, e := range t.Entries {
		p := where + e.Name
		switch e.Type {
		case object.TypeDir:
			c.tree(e.ID, p+"/")
		case object.TypeFile:
			c.file(e.ID, e.Size, p)
		}
	}
}

func (c *checker) file(id cas.ID, size int64, where string) {
	if !c.first(id) {
		return
	}
	f, err := c.r.loadFile(c.ctx, id)
	if err == nil && size >= 0 && f.Size != size {
		err = fmt.Errorf("holds %d bytes, its tree entry says %d: %w", f.Size, size, cas.ErrCorrupt)
	}
	if err != nil {
		c.problem(id, "file", where, err)
		return
	}
	c.add(&c.stats.Files, 0)
	for i, ch := range f.Chunks {
		if !c.first(ch.ID) {
			continue
		}
		c.sem <- struct{}{}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer func() { <-c.sem }()
			b, err := c.r.store.Get(c.ctx, ch.ID)
			if err == nil && len(b) != int(ch.Size) {
				err = fmt.Errorf("has %d bytes, want %d: %w", len(b), ch.Size, cas.ErrCorrupt)
			}
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return
				}
				c.problem(ch.ID, "chunk", fmt.Sprintf("%s, chunk %d", where, i), err)
				return
			}
			c.add(&c.stats.Chunks, int64(len(b)))
		}()
	}
}
