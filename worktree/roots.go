package worktree

import (
	"bytes"
	"context"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/index"
)

// Roots names every object that the working trees in kv still read from
// the store: the content of each clean file and folder. Garbage collection
// must keep them, or an unchanged file of a working tree whose version was
// removed would be lost.
func Roots(kv index.KV) func(ctx context.Context, fn func(id cas.ID, dir bool) error) error {
	return func(ctx context.Context, fn func(id cas.ID, dir bool) error) error {
		return kv.Scan([]byte("wt/"), func(k, v []byte) error {
			if !isNodeKey(k) {
				return nil
			}
			r, err := decodeRecord(v)
			if err != nil {
				return err
			}
			if r.Flags&flagClean == 0 || r.Origin.IsZero() || r.Type == object.TypeSymlink {
				return nil
			}
			return fn(r.Origin, r.Type == object.TypeDir)
		})
	}
}

// isNodeKey reports whether k is "wt/<dataset>/n/<8 bytes>" (dataset names
// hold no '/').
func isNodeKey(k []byte) bool {
	rest, ok := bytes.CutPrefix(k, []byte("wt/"))
	if !ok {
		return false
	}
	i := bytes.IndexByte(rest, '/')
	if i < 1 {
		return false
	}
	rest, ok = bytes.CutPrefix(rest[i+1:], []byte("n/"))
	return ok && len(rest) == 8
}
