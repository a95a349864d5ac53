package repo

import (
	"context"
	"fmt"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
)

// ChangeKind says how a path differs between two versions.
type ChangeKind byte

const (
	Added    ChangeKind = 'A'
	Removed  ChangeKind = 'D'
	Modified ChangeKind = 'M'
)

// Change is one path that differs. Sizes are those of files (0 for other
// entries); OldSize is 0 for added paths and NewSize for removed ones.
type Change struct {
	Kind             ChangeKind
	Path             string
	Type             object.EntryType
	OldSize, NewSize int64
}

// Diff lists the files, symlinks and empty folders that differ from a to b,
// in path order. Subtrees with equal tree ids are skipped without being
// read, so the cost grows with what changed, not with the versions' size.
func (r *Repo) Diff(ctx context.Context, a, b Ref) ([]Change, error) {
	va, err := r.Resolve(ctx, a)
	if err != nil {
		return nil, err
	}
	vb, err := r.Resolve(ctx, b)
	if err != nil {
		return nil, err
	}
	var out []Change
	err = r.diffTrees(ctx, va.Tree, vb.Tree, "", func(c Change) { out = append(out, c) })
	return out, err
}

func (r *Repo) diffTrees(ctx context.Context, a, b cas.ID, prefix string, emit func(Change)) error {
	if a == b {
		return nil
	}
	ta, err := r.loadTreeOrEmpty(ctx, a)
	if err != nil {
		return err
	}
	tb, err := r.loadTreeOrEmpty(ctx, b)
	if err != nil {
		return err
	}
	i, j := 0, 0
	for i < len(ta.Entries) || j < len(tb.Entries) {
		var ea, eb *object.Entry
		switch {
		case j == len(tb.Entries) || i < len(ta.Entries) && ta.Entries[i].Name < tb.Entries[j].Name:
			ea = &ta.Entries[i]
			i++
		case i == len(ta.Entries) || tb.Entries[j].Name < ta.Entries[i].Name:
			eb = &tb.Entries[j]
			j++
		default:
			ea, eb = &ta.Entries[i], &tb.Entries[j]
			i, j = i+1, j+1
		}
		if err := r.diffEntry(ctx, ea, eb, prefix, emit); err != nil {
			return err
		}
	}
	return nil
}

func (r *Repo) diffEntry(ctx context.Context, ea, eb *object.Entry, prefix string, emit func(Change)) error {
	name := eb
	if name == nil {
		name = ea
	}
	path := prefix + name.Name
	switch {
	case ea != nil && eb != nil && ea.Type == object.TypeDir && eb.Type == object.TypeDir:
		return r.diffTrees(ctx, ea.ID, eb.ID, path+"/", emit)
	case ea != nil && eb != nil && ea.Type == eb.Type:
		if ea.ID != eb.ID || ea.Target != eb.Target || ea.Perm != eb.Perm {
			emit(Change{Modified, path, ea.Type, ea.Size, eb.Size})
		}
		return nil
	}
	// Added, removed, or changed type: a folder counts as all it holds.
	if ea != nil {
		if err := r.each(ctx, ea, path, func(e *object.Entry, p string) {
			emit(Change{Removed, p, e.Type, e.Size, 0})
		}); err != nil {
			return err
		}
	}
	if eb != nil {
		return r.each(ctx, eb, path, func(e *object.Entry, p string) {
			emit(Change{Added, p, e.Type, 0, e.Size})
		})
	}
	return nil
}

// each calls fn for e, or for every leaf under e if it is a folder (an
// empty folder is a leaf).
func (r *Repo) each(ctx context.Context, e *object.Entry, path string, fn func(*object.Entry, string)) error {
	if e.Type != object.TypeDir {
		fn(e, path)
		return nil
	}
	t, err := r.loadTree(ctx, e.ID)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(t.Entries) == 0 {
		fn(e, path+"/")
	}
	for i := range t.Entries {
		if err := r.each(ctx, &t.Entries[i], path+"/"+t.Entries[i].Name, fn); err != nil {
			return err
		}
	}
	return nil
}

func (r *Repo) loadTreeOrEmpty(ctx context.Context, id cas.ID) (*object.Tree, error) {
	if id.IsZero() {
		return &object.Tree{}, nil
	}
	return r.loadTree(ctx, id)
}
