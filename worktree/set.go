package worktree

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/index"
	"github.com/mlfs/mlfs/repo"
)

// Set is the working trees of every dataset on this machine.
type Set struct {
	kv      index.KV
	dataDir string
	repo    *repo.Repo
	objs    cas.Getter
	log     *slog.Logger

	mu    sync.Mutex
	trees map[string]*Tree
	// listed is the datasets with a working tree, read from the index once:
	// listing scans every key of every tree, and only this Set adds trees
	// to its index while it is open.
	listed map[string]bool
	// seen is what Follow last looked at, per dataset.
	seen map[string]string
}

// NewSet keeps working trees in kv, with file bytes under dataDir/<dataset>.
func NewSet(kv index.KV, dataDir string, r *repo.Repo, objs cas.Getter, log *slog.Logger) *Set {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Set{kv: kv, dataDir: dataDir, repo: r, objs: objs, log: log, trees: map[string]*Tree{}, seen: map[string]string{}}
}

// ErrNoDataset means a dataset has neither versions nor a working tree.
var ErrNoDataset = errors.New("no such dataset")

// Get returns the working tree of dataset. One that does not exist on
// this machine yet starts as the dataset's latest version; with create, a
// dataset with no versions starts empty, else it is ErrNoDataset.
func (s *Set) Get(ctx context.Context, dataset string, create bool) (*Tree, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.trees[dataset]; ok {
		return t, nil
	}
	if err := repo.CheckDatasetName(dataset); err != nil {
		return nil, err
	}
	var base, tree cas.ID
	if !Exists(s.kv, dataset) {
		v, err := s.repo.Resolve(ctx, repo.Ref{Dataset: dataset, Version: "latest"})
		switch {
		case err == nil:
			base, tree = v.ID, v.Tree
		case errors.Is(err, repo.ErrNoVersion) && create:
		case errors.Is(err, repo.ErrNoVersion):
			return nil, fmt.Errorf("dataset %s: %w", dataset, ErrNoDataset)
		default:
			return nil, err
		}
	}
	t, err := Open(ctx, s.kv, filepath.Join(s.dataDir, dataset), dataset, base, tree, s.objs, s.log)
	if err != nil {
		return nil, err
	}
	s.trees[dataset] = t
	if s.listed != nil {
		s.listed[dataset] = true
	}
	return t, nil
}

// Trees lists the datasets that have a working tree on this machine.
func (s *Set) Trees() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listed == nil {
		names, err := List(s.kv)
		if err != nil {
			return nil, err
		}
		s.listed = map[string]bool{}
		for _, n := range names {
			s.listed[n] = true
		}
	}
	wt := make([]string, 0, len(s.listed))
	for n := range s.listed {
		wt = append(wt, n)
	}
	sort.Strings(wt)
	return wt, nil
}

// Names lists the datasets that have a working tree or a version, sorted.
func (s *Set) Names(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	wt, err := s.Trees()
	if err != nil {
		return nil, err
	}
	ds, err := s.repo.Datasets(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range append(wt, ds...) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}
