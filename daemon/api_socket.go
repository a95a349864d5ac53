package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxSocketPath is the longest path a Unix socket address holds (108 bytes
// with the terminating NUL).
const maxSocketPath = len(unix.RawSockaddrUnix{}.Path) - 1

// Listen creates the daemon's Unix socket at path, mode 0600, and listens
// on it. A socket file left by a daemon that died (connecting is refused)
// is replaced; a daemon that answers there, or one starting at the same
// moment, makes Listen fail. Closing the listener removes the socket.
//
// An exclusive lock on path+".lock", held until Close, orders daemons that
// start together: whoever holds it owns path, so removing a stale socket
// never removes a live one.
func Listen(path string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("daemon socket %s: longer than %d bytes, the limit of a Unix socket address; set XDG_DATA_HOME to a shorter folder", path, maxSocketPath)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("daemon socket: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("daemon socket: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("daemon socket %s: another mlfs daemon is running or starting there; stop it first", path)
		}
		return nil, fmt.Errorf("daemon socket %s: lock: %w", path, err)
	}
	ln, err := listen(path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		lock.Close()
		return nil, fmt.Errorf("daemon socket %s: %w", path, err)
	}
	return &listener{UnixListener: ln, path: path, fi: fi, lock: lock}, nil
}

func listen(path string) (*net.UnixListener, error) {
	if err := clearStale(path); err != nil {
		return nil, err
	}
	// Bind in a private folder, set the mode, then rename into place: the
	// socket is never reachable with the umask's looser mode. (Only when
	// the longer temporary path fits; the SO_PEERCRED check covers the
	// moment otherwise.)
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".sock")
	if err != nil {
		return nil, fmt.Errorf("daemon socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	bind := filepath.Join(tmp, "s")
	if len(bind) > maxSocketPath {
		bind = path
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: bind, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("daemon socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // the listener removes path itself
	err = os.Chmod(bind, 0o600)
	if err == nil && bind != path {
		err = os.Rename(bind, path)
	}
	if err != nil {
		ln.Close()
		os.Remove(bind)
		return nil, fmt.Errorf("daemon socket %s: %w", path, err)
	}
	return ln, nil
}

// clearStale removes a socket at path that no process listens on, and
// fails if one does.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("daemon socket: %w", err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("daemon socket %s: the file exists and is not a socket; move it away", path)
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("daemon socket %s: a daemon is already serving there; stop it first", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("daemon socket %s: cannot tell whether a daemon serves there: %w", path, err)
	}
	// Connecting was refused: the daemon that made it is gone.
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("daemon socket %s: remove the stale socket: %w", path, err)
	}
	return nil
}

// listener removes its socket and releases the lock on Close.
type listener struct {
	*net.UnixListener
	path string
	fi   fs.FileInfo // the socket as created, so Close removes only that
	lock *os.File
	once sync.Once
	err  error
}

func (l *listener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *listener) Close() error {
	l.once.Do(func() {
		if fi, err := os.Lstat(l.path); err == nil && os.SameFile(fi, l.fi) {
			os.Remove(l.path)
		}
		l.err = l.UnixListener.Close()
		l.lock.Close()
	})
	return l.err
}
