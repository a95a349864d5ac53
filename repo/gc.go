package repo

import (
	"context"
	"fmt"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
)

// GCStats tells what GC did (or would do, in a dry run).
type GCStats struct {
	Reachable    int64
	Removed      int64
	RemovedBytes int64
	Temps        int // leftover temp files of interrupted adds
}

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
	if t, ok := r.store.(interface{ RemoveTemps(time.Duration) int }); ok {
		st.Temps = t.RemoveTemps(0)
	}
	return st, nil
}
