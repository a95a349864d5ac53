package worktree

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/mlfs/mlfs/repo"
)

// Checkout resets dataset's working tree to version ref (a name, latest or
// an id prefix). Without force it refuses, wrapping ErrChanged, if the tree
// has changes that are in no version. It copies nothing: the tree's nodes
// are made again, lazily, from the version's trees.
//
// A checkout of latest leaves the tree following the dataset's latest
// version (see Set.Follow); one of a named version pins it there, as the
// user asked for that version and not for whatever comes next.
func (s *Set) Checkout(ctx context.Context, ref repo.Ref, force bool) (repo.VersionInfo, error) {
	v, err := s.repo.Resolve(ctx, ref)
	if err != nil {
		return repo.VersionInfo{}, err
	}
	t, err := s.Get(ctx, ref.Dataset, true)
	if err != nil {
		return repo.VersionInfo{}, err
	}
	switch err := t.checkout(ctx, v.ID, v.Tree, force, ref.Version != "latest"); {
	case errors.Is(err, ErrChanged):
		return repo.VersionInfo{}, fmt.Errorf("checkout %s: %w; snapshot them first (mkdir %s@NEWNAME in the mount) or use --force to drop them", v.Ref, err, ref.Dataset)
	case errors.Is(err, syscall.EBUSY):
		return repo.VersionInfo{}, fmt.Errorf("checkout %s: a file of the working tree is open for writing; close it first, or use --force", v.Ref)
	case err != nil:
		return repo.VersionInfo{}, fmt.Errorf("checkout %s: %w", v.Ref, err)
	}
	return v, nil
}
