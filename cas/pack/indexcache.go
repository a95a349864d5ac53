package pack

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mlfs/mlfs/cas"
)

// indexCache keeps the tail of each pack (its index and trailer, the bytes
// that end the pack) in a file of its own, named by the pack's id. Packs
// never change, so a file once written stays right for as long as its
// pack exists; the only work is to forget the packs that are deleted.
//
// The files are checked as the backend's bytes are (see parseTail): the
// trailer must hash to the pack's name, and the index to the hash in the
// trailer. So a damaged or torn file is noticed, removed and read again
// from the backend, and nothing is synced to disk when it is written.
//
// A nil *indexCache caches nothing.
type indexCache struct {
	dir string
	log *slog.Logger
}

// tempSuffix marks files being written; see save and prune.
const tempSuffix = ".tmp"

// staleTemp is the age at which prune removes a temporary file, left by
// a process that stopped between creating and renaming it. It is much
// longer than a write takes, so no writer loses its file to prune.
const staleTemp = time.Hour

// openIndexCache makes the folder dir if need be. It returns nil, and
// logs why, if it cannot: the cache only saves requests.
func openIndexCache(dir string, log *slog.Logger) *indexCache {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Debug("going on without the pack index cache", "dir", dir, "err", err)
		return nil
	}
	return &indexCache{dir: dir, log: log}
}

func (c *indexCache) path(id cas.ID) string { return filepath.Join(c.dir, id.String()) }

// load returns the entries of pack id, of size bytes, from its file. A
// file that fails the checks is removed, and the pack is read again.
func (c *indexCache) load(id cas.ID, size int64) ([]Entry, bool) {
	if c == nil {
		return nil, false
	}
	path := c.path(id)
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.log.Debug("pack index cache: cannot read", "pack", id.Short(), "err", err)
		}
		return nil, false
	}
	entries, err := parseTail(id, b, size)
	if err != nil {
		c.log.Debug("pack index cache: removing damaged file", "pack", id.Short(), "err", err)
		c.remove(id)
		return nil, false
	}
	return entries, true
}

// save writes the tail of pack id. It writes a temporary file and renames
// it, so that other processes sharing the folder see the whole file or
// none. Failures are logged and otherwise ignored.
func (c *indexCache) save(id cas.ID, tail []byte) {
	if c == nil {
		return
	}
	if err := c.write(id, tail); err != nil {
		c.log.Debug("pack index cache: cannot write", "pack", id.Short(), "err", err)
	}
}

func (c *indexCache) write(id cas.ID, tail []byte) error {
	f, err := os.CreateTemp(c.dir, id.String()+tempSuffix+"*")
	if err != nil {
		return err
	}
	_, err = f.Write(tail)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), c.path(id))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// remove forgets pack id.
func (c *indexCache) remove(id cas.ID) {
	if c == nil {
		return
	}
	if err := os.Remove(c.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Debug("pack index cache: cannot remove", "pack", id.Short(), "err", err)
	}
}

// prune removes the files of packs that are not in present, the backend's
// listing begun at listed, and temporary files older than staleTemp.
// Files changed since listed are kept: they may be of packs written (by
// this Store or another process sharing the folder) after the listing.
func (c *indexCache) prune(present map[cas.ID]bool, listed time.Time) {
	if c == nil {
		return
	}
	des, err := os.ReadDir(c.dir)
	if err != nil {
		c.log.Debug("pack index cache: cannot list", "dir", c.dir, "err", err)
		return
	}
	for _, de := range des {
		name := de.Name()
		keepSince := listed
		if strings.Contains(name, tempSuffix) {
			keepSince = time.Now().Add(-staleTemp)
		} else if id, err := cas.ParseID(name); err != nil || present[id] {
			continue // a live pack, or not a file of ours
		}
		info, err := de.Info()
		if err != nil || !info.ModTime().Before(keepSince) {
			continue
		}
		if err := os.Remove(filepath.Join(c.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.log.Debug("pack index cache: cannot remove", "file", name, "err", err)
		}
	}
}

// parseTail checks and decodes the tail of pack id, of size bytes: its
// index followed by its trailer, as they end the pack.
func parseTail(id cas.ID, tail []byte, size int64) ([]Entry, error) {
	if len(tail) < trailerSize {
		return nil, fmt.Errorf("%w: tail of %d bytes", ErrMalformed, len(tail))
	}
	end := len(tail) - trailerSize
	n, sum, err := checkTrailer(id, tail[end:], size)
	if err != nil {
		return nil, err
	}
	if int64(end) != int64(n)*entrySize {
		return nil, fmt.Errorf("%w: trailer claims %d blobs, index has %d bytes", ErrMalformed, n, end)
	}
	return ParseIndex(tail[:end], sum, size)
}

// checkTrailer checks the trailer t of pack id, of size bytes, as
// ParseTrailer does and, if the pack is named by its trailer, against its
// name; it returns the entry count and the index's hash.
func checkTrailer(id cas.ID, t []byte, size int64) (int, cas.ID, error) {
	if len(t) == trailerSize && namedByTrailer(t) && cas.Sum(t) != id {
		return 0, cas.ID{}, fmt.Errorf("%w: its trailer does not hash to its name", ErrMalformed)
	}
	return ParseTrailer(t, size)
}
