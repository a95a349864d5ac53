package repo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/index"
)

// Repo is a store of dataset versions.
type Repo struct {
	store    cas.Store
	idx      index.KV
	lockPath string
	log      *slog.Logger
	roots    []namedRoots // besides versions, for GC
}

// New returns a Repo over store and idx. lockPath is the file that add and
// gc lock against each other; every process sharing the store must use
// the same path.
func New(store cas.Store, idx index.KV, lockPath string, log *slog.Logger) *Repo {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Repo{store: store, idx: idx, lockPath: lockPath, log: log}
}

// Store returns the underlying store.
func (r *Repo) Store() cas.Store { return r.store }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// CheckDatasetName validates a dataset name (SPEC section 2).
func CheckDatasetName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("dataset name %q: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	if name == "runs" {
		return fmt.Errorf("dataset name %q is reserved for runs", name)
	}
	return nil
}

// CheckVersionName validates a version name (SPEC section 2).
func CheckVersionName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("version name %q: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	if name == "latest" {
		return fmt.Errorf("version name %q is reserved: it always means the newest version", name)
	}
	if isHexPrefix(name) {
		return fmt.Errorf("version name %q is only hex digits, so it would be confused with a version id (DATASET@<8+ hex digits> names a version by id); add a letter other than a-f, for example v%s", name, name)
	}
	return nil
}

// Ref is a parsed "dataset@version".
type Ref struct {
	Dataset, Version string
}

func (r Ref) String() string { return r.Dataset + "@" + r.Version }

func (r Ref) refName() string { return r.Dataset + "/" + r.Version }

// ParseRef parses "dataset@version". Version may be "latest" or an id
// prefix when the ref is to be read (see Resolve); for a new version use
// CheckVersionName too.
func ParseRef(s string) (Ref, error) {
	ds, ver, ok := strings.Cut(s, "@")
	if !ok {
		return Ref{}, fmt.Errorf("%q: want DATASET@VERSION, for example iris@v1", s)
	}
	if err := CheckDatasetName(ds); err != nil {
		return Ref{}, err
	}
	if !nameRE.MatchString(ver) {
		return Ref{}, fmt.Errorf("%q: version %q is not a valid name", s, ver)
	}
	return Ref{ds, ver}, nil
}

// VersionInfo describes one version.
type VersionInfo struct {
	Ref Ref
	ID  cas.ID
	*object.Version
}

// Versions lists the versions of a dataset, oldest first.
func (r *Repo) Versions(ctx context.Context, dataset string) ([]VersionInfo, error) {
	if err := CheckDatasetName(dataset); err != nil {
		return nil, err
	}
	var out []VersionInfo
	err := r.store.ListRefs(ctx, dataset+"/", func(name string, id cas.ID) error {
		ver := strings.TrimPrefix(name, dataset+"/")
		if strings.Contains(ver, "/") {
			return nil
		}
		v, err := r.loadVersion(ctx, id)
		if err != nil {
			return fmt.Errorf("version %s@%s: %w", dataset, ver, err)
		}
		out = append(out, VersionInfo{Ref: Ref{dataset, ver}, ID: id, Version: v})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Time != out[j].Time {
			return out[i].Time < out[j].Time
		}
		return out[i].Ref.Version < out[j].Ref.Version
	})
	return out, nil
}

// Datasets lists the names of datasets that have at least one version.
func (r *Repo) Datasets(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	err := r.store.ListRefs(ctx, "", func(name string, _ cas.ID) error {
		ds, _, ok := strings.Cut(name, "/")
		if ok && !seen[ds] && CheckDatasetName(ds) == nil {
			seen[ds] = true
			out = append(out, ds)
		}
		return nil
	})
	return out, err
}

// ErrNoVersion is wrapped when a dataset@version does not exist.
var ErrNoVersion = errors.New("no such version")

// Resolve finds a version by name, by "latest", or by a prefix of 8 or
// more hex digits of its id.
func (r *Repo) Resolve(ctx context.Context, ref Ref) (VersionInfo, error) {
	if ref.Version != "latest" {
		id, err := r.store.GetRef(ctx, ref.refName())
		if err == nil {
			v, err := r.loadVersion(ctx, id)
			if err != nil {
				return VersionInfo{}, fmt.Errorf("version %s: %w", ref, err)
			}
			return VersionInfo{Ref: ref, ID: id, Version: v}, nil
		}
		if !errors.Is(err, cas.ErrNotFound) {
			return VersionInfo{}, fmt.Errorf("version %s: %w", ref, err)
		}
	}
	vs, err := r.Versions(ctx, ref.Dataset)
	if err != nil {
		return VersionInfo{}, err
	}
	if ref.Version == "latest" {
		if len(vs) == 0 {
			return VersionInfo{}, fmt.Errorf("%s: dataset %q has no versions: %w", ref, ref.Dataset, ErrNoVersion)
		}
		return vs[len(vs)-1], nil
	}
	if isHexPrefix(ref.Version) {
		var match []VersionInfo
		for _, v := range vs {
			if strings.HasPrefix(v.ID.String(), ref.Version) {
				match = append(match, v)
			}
		}
		if len(match) == 1 {
			return match[0], nil
		}
		if len(match) > 1 {
			return VersionInfo{}, fmt.Errorf("%s: id prefix matches %d versions; give more digits", ref, len(match))
		}
	}
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.Ref.Version
	}
	hint := "it has no versions yet"
	if len(names) > 0 {
		hint = "it has " + strings.Join(names, ", ")
	}
	return VersionInfo{}, fmt.Errorf("%s: dataset %q has no version %q (%s): %w", ref, ref.Dataset, ref.Version, hint, ErrNoVersion)
}

func isHexPrefix(s string) bool {
	if len(s) < 8 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (r *Repo) loadVersion(ctx context.Context, id cas.ID) (*object.Version, error) {
	b, err := r.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	v, err := object.DecodeVersion(b)
	if err != nil {
		return nil, fmt.Errorf("version object %s: %w", id.Short(), err)
	}
	return v, nil
}

func (r *Repo) loadTree(ctx context.Context, id cas.ID) (*object.Tree, error) {
	b, err := r.store.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	t, err := object.DecodeTree(b)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	return t, nil
}

func (r *Repo) loadFile(ctx context.Context, id cas.ID) (*object.File, error) {
	b, err := r.store.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("file object %s: %w", id.Short(), err)
	}
	f, err := object.DecodeFile(b)
	if err != nil {
		return nil, fmt.Errorf("file object %s: %w", id.Short(), err)
	}
	return f, nil
}

// whoami returns the host and user recorded in a version.
func whoami() (host, name string) {
	host, _ = os.Hostname()
	if u, err := user.Current(); err == nil {
		name = u.Username
	} else {
		name = os.Getenv("USER")
	}
	// A version records only UTF-8; an odd host or user name must not
	// make every add fail.
	return strings.ToValidUTF8(host, "\uFFFD"), strings.ToValidUTF8(name, "\uFFFD")
}

func now() int64 { return time.Now().UnixNano() }
