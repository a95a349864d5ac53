package repo

import (
	"context"
	"fmt"
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
// If any reachable tree or file object cannot be read, it removes nothing:
// it cannot know what that object would have kept.
func (r *Repo) GC(ctx context.Context, dryRun bool) (GCStats, error) {
	var st GCStats
	unlock, err := r.lock(true)
	if err != nil {
		return st, err
	}
	defer unlock()

	live := map[cas.ID]bool{}
	var mark func(id cas.ID, dir bool, where string) error
	mark = func(id cas.ID, dir bool, where string) error {
		if live[id] {
			return nil
		}
		live[id] = true
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
	err = r.store.ListRefs(ctx, "", func(name string, id cas.ID) error {
		v, err := r.loadVersion(ctx, id)
		if err != nil {
			return fmt.Errorf("ref %s: %w", name, err)
		}
		live[id] = true
		return mark(v.Tree, true, name+":/")
	})
	if err != nil {
		return st, fmt.Errorf("gc: nothing removed, the store has damage (run mlfs fsck): %w", err)
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
