package repo

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lock takes the store lock, shared (add) or exclusive (gc). It tells
// waiting, if it has to wait, through r.log.
func (r *Repo) lock(exclusive bool) (unlock func(), err error) {
	if r.lockPath == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(filepath.Dir(r.lockPath), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", r.lockPath, err)
	}
	f, err := os.OpenFile(r.lockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", r.lockPath, err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err == unix.EWOULDBLOCK {
		if exclusive {
			r.log.Warn("waiting for running imports to finish before collecting garbage", "lock", r.lockPath)
		} else {
			r.log.Warn("waiting for a running garbage collection to finish", "lock", r.lockPath)
		}
		err = unix.Flock(int(f.Fd()), how)
	} else if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", r.lockPath, err)
	}
	return func() { f.Close() }, nil
}
