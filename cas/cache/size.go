package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"

	"golang.org/x/sys/unix"
)

const (
	defaultPercent = 10
	defaultMin     = 1 << 30
	defaultMax     = 50 << 30
)

// SizeFor turns a configured cache size into bytes (config.ParseSize gives
// bytes or a percentage): bytes if > 0; else percent, in (0, 100], of the
// filesystem that holds dir; else, with both zero, the default: 10% of that
// filesystem, at most 50 GiB and at least 1 GiB, but never more than the
// filesystem itself. dir need not exist yet: its nearest existing parent is
// measured.
func SizeFor(dir string, bytes int64, percent float64) (int64, error) {
	switch {
	case bytes > 0:
		return bytes, nil
	case bytes < 0:
		return 0, fmt.Errorf("cache size %d bytes: must be positive", bytes)
	case percent < 0 || percent > 100 || math.IsNaN(percent):
		return 0, fmt.Errorf("cache size %v%%: must be in (0, 100]", percent)
	}
	total, err := fsSize(dir)
	if err != nil {
		return 0, fmt.Errorf("cache size: %w", err)
	}
	if percent > 0 {
		return max(1, int64(float64(total)*percent/100)), nil
	}
	return defaultSize(total), nil
}

// defaultSize is the cache size when none is configured, for a filesystem
// of total bytes.
func defaultSize(total int64) int64 {
	return min(max(total/100*defaultPercent, defaultMin), defaultMax, total)
}

// fsSize returns the size in bytes of the filesystem holding dir or, if dir
// does not exist, its nearest existing parent.
func fsSize(dir string) (int64, error) {
	p, err := filepath.Abs(dir)
	if err != nil {
		return 0, err
	}
	for {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if err == nil {
			bsize := st.Frsize
			if bsize == 0 {
				bsize = st.Bsize
			}
			return int64(st.Blocks) * bsize, nil
		}
		parent := filepath.Dir(p)
		if !errors.Is(err, fs.ErrNotExist) || parent == p {
			return 0, fmt.Errorf("statfs %s: %w", p, err)
		}
		p = parent
	}
}
