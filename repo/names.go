package repo

import (
	"context"
	"strings"

	"github.com/mlfs/mlfs/cas"
)

// VersionNames lists the version names of dataset, unordered, from its
// refs alone: unlike Versions it reads no version object, so it costs
// nothing beyond the listing, and works for versions whose objects this
// machine has not fetched, also while their store is out of reach.
func (r *Repo) VersionNames(ctx context.Context, dataset string) ([]string, error) {
	if err := CheckDatasetName(dataset); err != nil {
		return nil, err
	}
	var out []string
	err := r.store.ListRefs(ctx, dataset+"/", func(name string, _ cas.ID) error {
		ver := strings.TrimPrefix(name, dataset+"/")
		if !strings.Contains(ver, "/") && CheckVersionName(ver) == nil {
			out = append(out, ver)
		}
		return nil
	})
	return out, err
}
