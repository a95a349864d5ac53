package cache

import (
	"path/filepath"

	"github.com/mlfs/mlfs/cas"
)

// RecordOverhead is what a record costs on disk beyond its object's bytes.
const RecordOverhead = recordOverhead

// RecordAt returns the segment file and the offset of the bytes of the
// cached copy of id, if it is on disk.
func RecordAt(c *Cache, id cas.ID) (path string, off int64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.idx[id]
	if !ok {
		return "", 0, false
	}
	return filepath.Join(c.segDir, segName(e.seg)+segSuffix), e.off, true
}
