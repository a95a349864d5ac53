package repo

import (
	"context"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
)

// Walk calls fn once for every object that version reaches: the version
// object itself, its trees, its file objects and their chunks, each before
// what it refers to. The trees and file objects are read through the
// repo's store to find the rest; chunks are only named. An error from fn
// stops the walk and is returned.
func (r *Repo) Walk(ctx context.Context, version cas.ID, fn func(id cas.ID, size int64) error) error {
	v, err := r.loadVersion(ctx, version)
	if err != nil {
		return err
	}
	if err := fn(version, -1); err != nil {
		return err
	}
	seen := map[cas.ID]bool{}
	var tree func(id cas.ID) error
	tree = func(id cas.ID) error {
		if seen[id] {
			return nil
		}
		seen[id] = true
		if err := fn(id, -1); err != nil {
			return err
		}
		t, err := r.loadTree(ctx, id)
		if err != nil {
			return err
		}
		for _, e := range t.Entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			switch e.Type {
			case object.TypeDir:
				if err := tree(e.ID); err != nil {
					return err
				}
			case object.TypeFile:
				if seen[e.ID] {
					continue
				}
				seen[e.ID] = true
				if err := fn(e.ID, -1); err != nil {
					return err
				}
				f, err := r.loadFile(ctx, e.ID)
				if err != nil {
					return err
				}
				for _, c := range f.Chunks {
					if seen[c.ID] {
						continue
					}
					seen[c.ID] = true
					if err := fn(c.ID, int64(c.Size)); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	return tree(v.Tree)
}
