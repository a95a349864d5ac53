package tiered

import (
	"context"
	"fmt"
	"time"

	"github.com/mlfs/mlfs/cas"
)

// ListRefsFresh is ListRefs with the remote's refs listed after the call
// began, rather than taken from a listing up to RefsMaxAge old: for the
// rare caller that must see a ref another machine created a moment ago (a
// snapshot telling whether its base is still its dataset's latest
// version). It costs one listing of the remote per call, which refreshes
// the listing ListRefs serves from; callers that look often use ListRefs.
// Unlike ListRefs, a remote that cannot be listed is an error.
func (s *Store) ListRefsFresh(ctx context.Context, prefix string, fn func(string, cas.ID) error) error {
	// A listing under way may have started before this call: wait for it
	// to end, then mark the listing stale, so that the next one, which
	// this call makes or shares, starts after.
	for {
		s.refsMu.Lock()
		wait := s.listOnce
		if wait == nil {
			s.listed = time.Time{}
		}
		s.refsMu.Unlock()
		if wait == nil {
			break
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if _, err := s.remoteRefs(ctx); err != nil {
		return fmt.Errorf("list the remote's refs: %w", err)
	}
	return s.ListRefs(ctx, prefix, fn)
}
