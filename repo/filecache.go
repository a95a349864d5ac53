package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"io/fs"
	"sync"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/index"
)

// fileCache remembers, per absolute path, the stat data and file object id
// of files added before, so that adding an unchanged tree again reads no
// file content. It is only a hint: a hit is used only if the file object
// and all its chunks are still in the store.
type fileCache struct {
	idx  index.KV
	mu   sync.Mutex
	news map[string][]byte
}

const fileCachePrefix = "fc\x00"

// racyWindow: files modified this recently may change again within the
// timestamp granularity without their mtime changing, so they are not
// remembered.
const racyWindow = 2 * time.Second

func newFileCache(idx index.KV) *fileCache {
	return &fileCache{idx: idx, news: map[string][]byte{}}
}

func encodeStat(fi fs.FileInfo, size int64, id cas.ID) ([]byte, bool) {
	dev, ino, ctime, ok := statKey(fi)
	if !ok {
		return nil, false
	}
	b := make([]byte, 0, 5*binary.MaxVarintLen64+cas.IDSize)
	b = binary.AppendUvarint(b, dev)
	b = binary.AppendUvarint(b, ino)
	b = binary.AppendVarint(b, size)
	b = binary.AppendVarint(b, fi.ModTime().UnixNano())
	b = binary.AppendVarint(b, ctime)
	return append(b, id[:]...), true
}

func (c *fileCache) lookup(ctx context.Context, s cas.Store, path string, fi fs.FileInfo) (cas.ID, bool) {
	if c.idx == nil {
		return cas.ID{}, false
	}
	v, err := c.idx.Get([]byte(fileCachePrefix + path))
	if err != nil || len(v) < cas.IDSize {
		return cas.ID{}, false
	}
	want, ok := encodeStat(fi, fi.Size(), cas.ID{})
	if !ok || !bytes.Equal(v[:len(v)-cas.IDSize], want[:len(want)-cas.IDSize]) {
		return cas.ID{}, false
	}
	id := cas.ID(v[len(v)-cas.IDSize:])
	// Trust the hint only if everything it stands for is still stored: an
	// interrupted gc may have removed some of a file's chunks.
	b, err := s.Get(ctx, id)
	if err != nil {
		return cas.ID{}, false
	}
	f, err := object.DecodeFile(b)
	if err != nil || f.Size != fi.Size() {
		return cas.ID{}, false
	}
	for _, c := range f.Chunks {
		if _, err := s.Stat(ctx, c.ID); err != nil {
			return cas.ID{}, false
		}
	}
	return id, true
}

// remember records a file whose stat did not change while it was read.
func (c *fileCache) remember(path string, before, after fs.FileInfo, size int64, id cas.ID) {
	if c.idx == nil || time.Since(after.ModTime()) < racyWindow {
		return
	}
	b1, ok1 := encodeStat(before, before.Size(), id)
	b2, ok2 := encodeStat(after, size, id)
	if !ok1 || !ok2 || !bytes.Equal(b1, b2) {
		return
	}
	c.mu.Lock()
	c.news[path] = b2
	c.mu.Unlock()
}

// flush writes what was learned; called once the version is committed.
func (c *fileCache) flush() error {
	if c.idx == nil || len(c.news) == 0 {
		return nil
	}
	b := c.idx.NewBatch()
	for p, v := range c.news {
		if err := b.Set([]byte(fileCachePrefix+p), v); err != nil {
			b.Cancel()
			return err
		}
	}
	return b.Commit()
}
