package repo

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mlfs/mlfs/cas"
)

// RemoveVersion deletes the name of version ref. Its objects stay in the
// store until gc finds that no other version reaches them. It reads
// nothing but the name, so it also removes a version whose objects are
// damaged, which is how a store that gc refuses to collect is repaired.
//
// ref.Version must be a version's own name: "latest" and id prefixes are
// refused, as a typo there would remove the wrong version. A missing
// version gives an error wrapping ErrNoVersion. It takes the store lock
// shared, as Add does.
func (r *Repo) RemoveVersion(ctx context.Context, ref Ref) error {
	if err := CheckDatasetName(ref.Dataset); err != nil {
		return err
	}
	if ref.Version == "latest" {
		return fmt.Errorf("remove %s: name the version to remove; \"latest\" is not a version's name", ref)
	}
	if !nameRE.MatchString(ref.Version) {
		return fmt.Errorf("remove %s: version %q is not a valid name", ref, ref.Version)
	}
	unlock, err := r.lock(false)
	if err != nil {
		return err
	}
	defer unlock()

	// Names made of hex digits were allowed before CheckVersionName refused
	// them, so a hex-looking name is an id prefix only if no version has
	// it as its name.
	if _, err := r.store.GetRef(ctx, ref.refName()); errors.Is(err, cas.ErrNotFound) {
		return r.noVersion(ctx, ref)
	} else if err != nil {
		return fmt.Errorf("remove %s: %w", ref, err)
	}
	if err := r.store.DeleteRef(ctx, ref.refName()); err != nil {
		return fmt.Errorf("remove %s: %w", ref, err)
	}
	return nil
}

// noVersion explains that ref names no version, listing the names that
// exist. It lists refs only and loads no version object, so it works on a
// damaged store.
func (r *Repo) noVersion(ctx context.Context, ref Ref) error {
	var names []string
	var byID []string
	err := r.store.ListRefs(ctx, ref.Dataset+"/", func(name string, id cas.ID) error {
		ver := strings.TrimPrefix(name, ref.Dataset+"/")
		if strings.Contains(ver, "/") {
			return nil
		}
		names = append(names, ver)
		if isHexPrefix(ref.Version) && strings.HasPrefix(id.String(), ref.Version) {
			byID = append(byID, ver)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove %s: %w", ref, err)
	}
	if len(byID) > 0 {
		return fmt.Errorf("remove %s: %q is an id prefix of %s@%s; remove a version by its name: %w",
			ref, ref.Version, ref.Dataset, strings.Join(byID, ", "+ref.Dataset+"@"), ErrNoVersion)
	}
	hint := "it has no versions"
	if len(names) > 0 {
		hint = "it has " + strings.Join(names, ", ")
	}
	return fmt.Errorf("remove %s: dataset %q has no version %q (%s): %w", ref, ref.Dataset, ref.Version, hint, ErrNoVersion)
}
