package tracking

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/index"
	"github.com/mlfs/mlfs/tracking/series"
	"github.com/mlfs/mlfs/worktree"
)

// View is what the CLI asks of the runs, answered by the daemon (over its
// socket) or, without one, from the index directly; both give the same.
type View interface {
	Search(ctx context.Context, req SearchRequest) (*SearchResult, error)
	Show(ctx context.Context, id string) (*Detail, error)
	History(ctx context.Context, id, metric string, points int) ([]Bucket, error)
	RemoveRun(ctx context.Context, id string, force bool) error
}

// SearchRequest asks for the runs matching Filter (MLflow's search
// grammar), sorted by Sort ("KEY [asc|desc], ..."; newest first), at most
// Limit of them (0: all).
type SearchRequest struct {
	Filter string `json:"filter"`
	Sort   string `json:"sort"`
	Limit  int    `json:"limit"`
}

// SearchResult is the runs found: Total matched, Runs the first Limit.
type SearchResult struct {
	Total int     `json:"total"`
	Runs  []*Info `json:"runs"`
}

func search(infos []*Info, req SearchRequest) (*SearchResult, error) {
	found, err := Search(infos, req.Filter, req.Sort)
	if err != nil {
		return nil, err
	}
	res := &SearchResult{Total: len(found), Runs: found}
	if req.Limit > 0 && len(found) > req.Limit {
		res.Runs = found[:req.Limit]
	}
	return res, nil
}

// Detail is one run in full.
type Detail struct {
	Info      *Info      `json:"info"`
	Errors    ErrorList  `json:"errors"`
	Artifacts []Artifact `json:"artifacts"`
}

// Artifact is a file under a run's artifacts/.
type Artifact struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	// ID is the file's content id once it is stored; empty while it is
	// being written.
	ID string `json:"id,omitempty"`
}

// Offline answers from an index no daemon holds.
type Offline struct {
	KV      index.KV
	DataDir string // the runs' local files
}

var _ View = (*Offline)(nil)

func (o *Offline) Search(ctx context.Context, req SearchRequest) (*SearchResult, error) {
	infos, err := LoadInfos(o.KV)
	if err != nil {
		return nil, err
	}
	return search(infos, req)
}

func (o *Offline) info(id string) (*Info, error) {
	raw, err := o.KV.Get(infoKey(id))
	if errors.Is(err, index.ErrNotFound) {
		return nil, fmt.Errorf("run %s: %w", id, ErrNoRun)
	}
	if err != nil {
		return nil, err
	}
	in, err := decodeInfo(raw)
	if err != nil {
		return nil, fmt.Errorf("run %s: record: %w", id, err)
	}
	return in, nil
}

func (o *Offline) Show(ctx context.Context, id string) (*Detail, error) {
	in, err := o.info(id)
	if err != nil {
		return nil, err
	}
	errs := LoadErrors(o.KV, id)
	t, err := worktree.Open(ctx, o.KV, filepath.Join(o.DataDir, id), treeName(id), cas.ID{}, cas.ID{}, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", id, err)
	}
	arts, err := artifacts(ctx, t)
	if err != nil {
		return nil, err
	}
	return &Detail{Info: in, Errors: errs, Artifacts: arts}, nil
}

func (o *Offline) History(ctx context.Context, id, metric string, points int) ([]Bucket, error) {
	if _, err := o.info(id); err != nil {
		return nil, err
	}
	return history(o.KV, id, metric, points)
}

func (o *Offline) RemoveRun(ctx context.Context, id string, force bool) error {
	if _, err := o.info(id); err != nil {
		return err
	}
	return RemoveRecords(o.KV, o.DataDir, id)
}

// artifacts lists the files under a run's artifacts/.
func artifacts(ctx context.Context, t *worktree.Tree) ([]Artifact, error) {
	a, err := t.Lookup(ctx, worktree.RootIno, "artifacts")
	if err != nil {
		return []Artifact{}, nil // removed by the program: none
	}
	out := []Artifact{}
	err = t.Walk(ctx, a.Ino, func(path string, a worktree.Attr) error {
		if a.Type == object.TypeFile {
			ar := Artifact{Path: "artifacts/" + path, Size: a.Size}
			if !a.ID.IsZero() {
				ar.ID = a.ID.String()
			}
			out = append(out, ar)
		}
		return nil
	})
	return out, err
}

// history reads the downsample of one metric of run id from kv: from
// every file that holds the metric, brought up to date from the blocks
// written after it was saved, and merged to at most points buckets.
func history(kv index.KV, id, metric string, points int) ([]Bucket, error) {
	if points <= 0 {
		points = 1000
	}
	prefix := sourcePrefix(id)
	var paths []string
	counts := map[string]int64{}
	err := kv.Scan(prefix, func(k, v []byte) error {
		path := string(k[len(prefix):])
		s, err := decodeSource(path, v)
		if err != nil {
			return err
		}
		if m, ok := s.metrics[metric]; ok && m.Count > 0 {
			paths = append(paths, path)
			counts[path] = m.Count
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("run %s: no metric %q", id, metric)
	}
	sort.Strings(paths)
	var all []series.Bucket
	for _, p := range paths {
		b, err := restoreSeries(kv, id, p, metric, counts[p])
		if err != nil {
			return nil, err
		}
		all = append(all, b.ds.Points(points)...)
	}
	if len(paths) > 1 {
		sort.SliceStable(all, func(i, j int) bool { return all[i].FirstStep < all[j].FirstStep })
	}
	out := make([]Bucket, len(all))
	for i, b := range all {
		out[i] = Bucket{FirstStep: b.FirstStep, LastStep: b.LastStep, Count: b.Count, Min: Float(b.Min), Max: Float(b.Max),
			First: Float(b.First), Last: Float(b.Last), FirstTime: b.FirstTime, LastTime: b.LastTime}
	}
	return out, nil
}

// Bucket summarizes consecutive points of a metric, for plots: the min
// and max draw its range, First and Last join it to its neighbours.
type Bucket struct {
	FirstStep int64 `json:"first_step"`
	LastStep  int64 `json:"last_step"`
	Count     int64 `json:"count"`
	Min       Float `json:"min"`
	Max       Float `json:"max"`
	First     Float `json:"first"`
	Last      Float `json:"last"`
	FirstTime int64 `json:"first_time"`
	LastTime  int64 `json:"last_time"`
}

// Live answers from the daemon's tracker.
type Live struct{ T *Tracker }

var _ View = Live{}

func (l Live) Search(ctx context.Context, req SearchRequest) (*SearchResult, error) {
	return search(l.T.Infos(), req)
}

func (l Live) Show(ctx context.Context, id string) (*Detail, error) {
	r, err := l.T.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	r.process(ctx)
	arts, err := artifacts(ctx, r.Tree())
	if err != nil {
		return nil, err
	}
	return &Detail{Info: r.Info(), Errors: r.Errors(), Artifacts: arts}, nil
}

func (l Live) History(ctx context.Context, id, metric string, points int) ([]Bucket, error) {
	r, err := l.T.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	r.process(ctx)
	if _, err := r.commit(true); err != nil {
		return nil, err
	}
	return history(l.T.kv, id, metric, points)
}

func (l Live) RemoveRun(ctx context.Context, id string, force bool) error {
	return l.T.Remove(ctx, id, force)
}
