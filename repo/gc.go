package repo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/cas/pack"
)

// GCStats tells what GC did (or would do, in a dry run).
type GCStats struct {
	Reachable    int64
	Removed      int64
	RemovedBytes int64
	// Packs rewritten or deleted to give the space back, and the bytes
	// that freed on disk.
	PacksDeleted, PacksRewritten int
	BytesFreed                   int64
	Temps                        int // leftover temp files of interrupted adds
}

// compactLive: a pack with less than this share of live bytes is rewritten.
const compactLive = 0.5

// GC removes every object that no version reaches. It holds the store
// lock exclusively, so no add is between writing objects and naming them.
// If any reachable tree or file object cannot be read, it removes nothing
// (it cannot know what that object would have kept) and returns a
// *DamageError naming the versions that reach damage.
func (r *Repo) GC(ctx context.Context, dryRun bool) (GCStats, error) {
	var st GCStats
	unlock, err := r.lock(true)
	if err != nil {
		return st, err
	}
	defer unlock()

	live := map[cas.ID]bool{}
	// bad remembers the objects below which something could not be read,
	// so that every version sharing a damaged subtree is named, not only
	// the first one marked.
	bad := map[cas.ID]error{}
	var mark func(id cas.ID, dir bool, where string) error
	mark = func(id cas.ID, dir bool, where string) error {
		if err, ok := bad[id]; ok {
			return err
		}
		if live[id] {
			return nil
		}
		live[id] = true
		err := r.markOne(ctx, id, dir, where, live, mark)
		if err != nil {
			bad[id] = err
		}
		return err
	}
	dmg := &DamageError{}
	err = r.store.ListRefs(ctx, "", func(name string, id cas.ID) error {
		live[id] = true
		v, err := r.loadVersion(ctx, id)
		if err != nil {
			err = fmt.Errorf("ref %s: %w", name, err)
		} else {
			err = mark(v.Tree, true, name+":/")
		}
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			dmg.add(name, err)
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("gc: nothing removed: %w", err)
	}
	for _, roots := range r.roots {
		err := roots.walk(ctx, func(id cas.ID, dir bool) error {
			if err := mark(id, dir, roots.name+":"); err != nil {
				dmg.add(roots.name, err)
			}
			return ctx.Err()
		})
		if err != nil {
			return st, fmt.Errorf("gc: nothing removed: %s: %w", roots.name, err)
		}
	}
	if dmg.First != nil {
		return st, dmg
	}
	st.Reachable = int64(len(live))

	var dead []cas.ID
	err = r.store.List(ctx, func(id cas.ID, size int64) error {
		if !live[id] {
			dead = append(dead, id)
			st.RemovedBytes += size
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("gc: %w", err)
	}
	st.Removed = int64(len(dead))
	if dryRun {
		return st, nil
	}
	// The file cache needs no care: a hit is used only when the file
	// object and all its chunks are still stored.
	for _, id := range dead {
		if err := r.store.Delete(ctx, id); err != nil {
			return st, fmt.Errorf("gc: %w", err)
		}
	}
	if ps, ok := r.store.(*pack.Store); ok {
		cs, err := ps.Compact(ctx, compactLive)
		st.PacksDeleted, st.PacksRewritten, st.BytesFreed = cs.PacksDeleted, cs.PacksRewritten, cs.BytesFreed
		if err != nil {
			return st, fmt.Errorf("gc: %w", err)
		}
	}
	// Temp files of interrupted writes: the exclusive lock says that no
	// writer is running, so all of them are leftovers.
	for s := r.store; s != nil; {
		if t, ok := s.(interface{ RemoveTemps(time.Duration) int }); ok {
			st.Temps += t.RemoveTemps(0)
		}
		u, ok := s.(interface{ Backend() cas.Store })
		if !ok {
			break
		}
		s = u.Backend()
	}
	return st, nil
}

// Roots calls fn for every object that something other than a version
// still uses (a working tree's unchanged files and folders): dir tells a
// tree from a file object.
type Roots func(ctx context.Context, fn func(id cas.ID, dir bool) error) error

type namedRoots struct {
	name string
	walk Roots
}

// AddRoots makes GC keep what walk names, as it keeps what versions reach.
// name says what holds them, for messages.
func (r *Repo) AddRoots(name string, walk Roots) {
	r.roots = append(r.roots, namedRoots{name, walk})
}

// markOne marks what the file or tree object id reaches, calling mark for
// each child tree or file.
func (r *Repo) markOne(ctx context.Context, id cas.ID, dir bool, where string, live map[cas.ID]bool, mark func(cas.ID, bool, string) error) error {
	if !dir {
		f, err := r.loadFile(ctx, id)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		for _, c := range f.Chunks {
			live[c.ID] = true
		}
		return nil
	}
	t, err := r.loadTree(ctx, id)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	for _, e := range t.Entries {
		if e.Type == object.TypeDir || e.Type == object.TypeFile {
			if err := mark(e.ID, e.Type == object.TypeDir, where+e.Name+"/"); err != nil {
				return err
			}
		}
	}
	return nil
}

// DamageError is GC's refusal: some versions reach objects that cannot be
// read. Removing those versions (RemoveVersion) lets GC run again.
type DamageError struct {
	// Versions that reach damage, in ref order. Refs that are not dataset
	// versions are listed in Others.
	Versions []Ref
	Others   []string
	// First is the first problem found; Fsck lists them all.
	First error
}

func (d *DamageError) add(ref string, err error) {
	if d.First == nil {
		d.First = err
	}
	if ds, ver, ok := cutRef(ref); ok && CheckDatasetName(ds) == nil {
		d.Versions = append(d.Versions, Ref{ds, ver})
	} else {
		d.Others = append(d.Others, ref)
	}
}

// maxNamed bounds the versions a DamageError message lists.
const maxNamed = 10

func (d *DamageError) Error() string {
	var b strings.Builder
	b.WriteString("gc: nothing removed, the store has damage")
	if n := len(d.Versions); n > 0 {
		names := make([]string, 0, min(n, maxNamed))
		for _, v := range d.Versions[:min(n, maxNamed)] {
			names = append(names, v.String())
		}
		list := strings.Join(names, ", ")
		if n > maxNamed {
			list += fmt.Sprintf(" and %d more", n-maxNamed)
		}
		what := "version"
		if n > 1 {
			what = "versions"
		}
		fmt.Fprintf(&b, ": %s %s cannot be read in full", what, list)
	}
	if len(d.Others) > 0 {
		fmt.Fprintf(&b, "; refs %s cannot be read in full", strings.Join(d.Others, ", "))
	}
	fmt.Fprintf(&b, " (first problem: %v); ", d.First)
	if len(d.Versions) > 0 {
		b.WriteString("remove them with `mlfs version rm DATASET@VERSION`, then run gc again; ")
	}
	b.WriteString("mlfs fsck lists every damaged object")
	return b.String()
}

func (d *DamageError) Unwrap() error { return d.First }
