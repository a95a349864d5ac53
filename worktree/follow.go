package worktree

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/repo"
)

// Working trees across machines. A tree starts as its dataset's latest
// version; when another machine (or an add on this one) makes a newer
// version, a tree with nothing of its own follows it (Set.Follow), as a
// reader of the mount expects to see the dataset's current state. A tree
// with changes stays where it is, since moving it would drop them; its
// next snapshot then lacks what the newer version brought, and says so
// (StaleSnapshot). A checkout of a named version pins the tree there.

// StaleSnapshot is the message of the warning logged when a snapshot is
// made of a working tree whose base is not its dataset's latest version:
// the new version lacks whatever the newer ones changed. The daemon shows
// it in mlfs status.
const StaleSnapshot = "snapshot of a working tree not based on the dataset's latest version"

// Behind describes a working tree whose base is not its dataset's latest
// version.
type Behind struct {
	// Base names the tree's base: its ref, or its short id when no name
	// has it any more, or "none" for a tree that started empty.
	Base   string
	Latest repo.VersionInfo
	// Newer is set when the latest version was made after the base (or
	// the tree started empty): the tree then fell behind, rather than a
	// newer version being removed.
	Newer bool
}

// behind compares base, the base of dataset's working tree, with the
// dataset's latest version; nil if base is the latest or there is none.
// The names are listed through the store's cache of the remote's (up to
// a second or so old, see tiered.Options.RefsMaxAge), which is cheap
// enough to poll.
func (s *Set) behind(ctx context.Context, dataset string, base cas.ID) (*Behind, error) {
	return behindLatest(ctx, s.repo, s.objs, dataset, base, false)
}

// freshLister is a store that can list refs with the remote as it is now,
// bypassing its cache of the remote's listing (tiered.Store).
type freshLister interface {
	ListRefsFresh(ctx context.Context, prefix string, fn func(string, cas.ID) error) error
}

// freshRefs is a store whose ListRefs lists the remote afresh.
type freshRefs struct {
	cas.Store
	fresh freshLister
}

func (s freshRefs) ListRefs(ctx context.Context, prefix string, fn func(string, cas.ID) error) error {
	return s.fresh.ListRefsFresh(ctx, prefix, fn)
}

// behindLatest is Set.behind. With fresh, the dataset's names are listed
// from the remote as it is now rather than from the store's cache, so
// that a version another machine made a moment ago counts: a snapshot
// looks once, and must not miss it. A store without a remote is always
// fresh.
func behindLatest(ctx context.Context, r *repo.Repo, objs cas.Getter, dataset string, base cas.ID, fresh bool) (*Behind, error) {
	if f, ok := r.Store().(freshLister); ok && fresh {
		// The same listing and order as r's (what "latest" resolves to),
		// through a store that lists the remote afresh.
		r = repo.New(freshRefs{Store: r.Store(), fresh: f}, nil, "", nil)
	}
	vs, err := r.Versions(ctx, dataset)
	if err != nil {
		return nil, fmt.Errorf("versions of %s: %w", dataset, err)
	}
	if len(vs) == 0 || vs[len(vs)-1].ID == base {
		return nil, nil
	}
	b := &Behind{Latest: vs[len(vs)-1], Base: "none", Newer: base.IsZero()}
	if base.IsZero() {
		return b, nil
	}
	b.Base = dataset + "@" + base.Short()
	for _, v := range vs {
		if v.ID == base {
			b.Base = v.Ref.String()
			b.Newer = b.Latest.Time > v.Time
			return b, nil
		}
	}
	// The base's name was removed; its object tells its time.
	if objs == nil {
		return nil, fmt.Errorf("base %s of the working tree of %s: no store to read it from", base.Short(), dataset)
	}
	raw, err := objs.Get(ctx, base)
	var v *object.Version
	if err == nil {
		v, err = object.DecodeVersion(raw)
	}
	if err != nil {
		return nil, fmt.Errorf("base %s of the working tree of %s: %w", base.Short(), dataset, err)
	}
	b.Newer = b.Latest.Time > v.Time
	return b, nil
}

// warnStale logs StaleSnapshot for version ref, made of a tree that was
// behind b.
func (t *Tree) warnStale(ref repo.Ref, b *Behind) {
	l := b.Latest
	t.log.Warn(StaleSnapshot, "version", ref.String(), "base", b.Base, "latest", l.Ref.String(),
		"latest made on", l.Host, "latest made by", l.User, "latest made at", time.Unix(0, l.Time).UTC().Format(time.RFC3339),
		"hint", fmt.Sprintf("%s lacks the changes of %s; mlfs diff %s %s shows them", ref, l.Ref, l.Ref, ref))
}

// Pinned reports whether a checkout of a named version pinned the tree.
func (t *Tree) Pinned() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.meta.Pinned
}

// stuck says why the tree cannot follow a newer version ("" if it can).
// t.mu must be held.
func (t *Tree) stuck() string {
	switch {
	case t.meta.Pinned:
		return "pinned by a checkout"
	case len(t.writers) > 0:
		return "a file is open for writing"
	case t.changed():
		return "it has changes that are in no version"
	}
	return ""
}

// followState returns what Set.Follow looks at: the base, and why the
// tree cannot move.
func (t *Tree) followState() (cas.ID, string) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.meta.Base, t.stuck()
}

// Follow resets the tree to version (whose tree is root) if its base is
// still from and it can move without losing anything (see stuck): no
// change in no version, no file open for writing, not pinned. It tells
// whether it moved. The check and the reset are one step under the tree's
// lock, so no write is lost: a change made before makes the tree stay, a
// handle open for writing too, and an operation after the reset works on
// the new tree (or, naming a node of the old one, fails with ENOENT, as
// after a checkout).
func (t *Tree) Follow(ctx context.Context, from, version, root cas.ID) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.meta.Base != from || t.stuck() != "" {
		return false, nil
	}
	if err := t.reset(ctx, version, root, false); err != nil {
		return false, fmt.Errorf("working tree %s: follow %s: %w", t.dataset, version.Short(), err)
	}
	return true, nil
}

// Followed says what Set.Follow did with a working tree that is behind.
type Followed struct {
	Behind
	// Moved is set when the tree was reset to the latest version; else
	// Stuck says why it stays.
	Moved bool
	Stuck string
}

// Follow brings dataset's working tree, if it has one, to the dataset's
// latest version when that is newer than the tree's base and the tree can
// move (Tree.Follow). It returns nil when the tree is on the latest
// version, has none to follow, or nothing changed since the last call:
// the dataset's names, the tree's base and why it could not move are
// remembered, so that a caller polling every few seconds costs one
// listing of names (which the store serves from its cache of the
// remote's) and reads version objects only when the names change.
func (s *Set) Follow(ctx context.Context, dataset string) (*Followed, error) {
	t, err := s.existing(ctx, dataset)
	if t == nil || err != nil {
		return nil, err
	}
	names, err := s.refsSum(ctx, dataset)
	if err != nil {
		return nil, err
	}
	base, stuck := t.followState()
	key := names.String() + " " + base.String() + " " + stuck
	s.mu.Lock()
	seen := s.seen[dataset] == key
	s.mu.Unlock()
	if seen {
		return nil, nil
	}
	b, err := s.behind(ctx, dataset, base)
	if err != nil {
		return nil, err
	}
	var out *Followed
	if b != nil && b.Newer {
		out = &Followed{Behind: *b, Stuck: stuck}
		if stuck == "" {
			if out.Moved, err = t.Follow(ctx, base, b.Latest.ID, b.Latest.Tree); err != nil {
				return nil, err
			}
			if !out.Moved {
				return nil, nil // it changed meanwhile: look again next time
			}
		}
	}
	if out == nil || !out.Moved {
		s.mu.Lock()
		s.seen[dataset] = key
		s.mu.Unlock()
	}
	return out, nil
}

// existing returns dataset's working tree, opening it if it exists on
// this machine, or nil if it does not.
func (s *Set) existing(ctx context.Context, dataset string) (*Tree, error) {
	s.mu.Lock()
	t := s.trees[dataset]
	s.mu.Unlock()
	if t != nil || !Exists(s.kv, dataset) {
		return t, nil
	}
	t, err := s.Get(ctx, dataset, false)
	if errors.Is(err, ErrNoDataset) {
		return nil, nil
	}
	return t, err
}

// refsSum returns a digest of dataset's version names and ids.
func (s *Set) refsSum(ctx context.Context, dataset string) (cas.ID, error) {
	var b []byte
	err := s.repo.Store().ListRefs(ctx, dataset+"/", func(name string, id cas.ID) error {
		b = append(append(append(b, name...), 0), id[:]...)
		return nil
	})
	if err != nil {
		return cas.ID{}, fmt.Errorf("versions of %s: %w", dataset, err)
	}
	return cas.Sum(b), nil
}
