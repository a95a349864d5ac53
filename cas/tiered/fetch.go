package tiered

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/mlfs/mlfs/cas"
)

// fetchers is how many objects Fetch copies at once: a remote's latency,
// not its bandwidth, bounds one copy, and the remote tier's read-ahead
// brings neighbours along.
const fetchers = 16

// FetchStats counts what Fetch copied.
type FetchStats struct {
	Objects int   // copied from the remote
	Bytes   int64 // their bytes
	Present int   // already here
}

// Fetch copies every object of ids that the local tier lacks from the
// remote into the local tier, verified, so that it reads without the
// network. progress, if set, gets the bytes copied so far.
func (s *Store) Fetch(ctx context.Context, ids []cas.ID, progress func(bytes int64)) (FetchStats, error) {
	var st FetchStats
	var objects, present atomic.Int64
	var done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchers)
	seen := make(map[cas.ID]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			present.Add(1) // copied by its first mention
			continue
		}
		seen[id] = true
		g.Go(func() error {
			if _, err := s.o.Local.Stat(gctx, id); err == nil {
				present.Add(1)
				return nil
			} else if !errors.Is(err, cas.ErrNotFound) {
				return err
			}
			b, err := s.o.Remote.Get(gctx, id)
			if err != nil {
				return fmt.Errorf("fetch %s: %w", id.Short(), err)
			}
			if err := s.o.Local.Put(gctx, id, b); err != nil {
				return fmt.Errorf("fetch %s: %w", id.Short(), err)
			}
			objects.Add(1)
			n := done.Add(int64(len(b)))
			if progress != nil {
				progress(n)
			}
			return nil
		})
	}
	err := g.Wait()
	if err == nil {
		err = s.o.Local.Flush(ctx)
	}
	st.Objects, st.Present, st.Bytes = int(objects.Load()), int(present.Load()), done.Load()
	return st, err
}
