package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/mlfs/mlfs/config"
)

// IsMounted reports whether an mlfs filesystem is mounted at dir.
func IsMounted(dir string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - fuse.mlfs mlfs rw
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields := strings.Fields(pre)
		if len(fields) < 5 || unescape(fields[4]) != dir {
			continue
		}
		if typ := strings.Fields(post); len(typ) > 0 && typ[0] == "fuse.mlfs" {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescape undoes the octal escapes (\040 for a space) of mountinfo.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// An unmount seen by the daemon comes from mlfs umount or from anyone
// else (fusermount3 -u, umount, a reboot's cleanup): only the second is
// worth a remark in the log. mlfs umount says it is the one by a note in
// the data folder, with its pid and the mount point, written before it
// unmounts; the daemon reads the note when it sees the unmount. A note is
// believed only while its writer runs (mlfs umount waits for the daemon
// to exit), so one left by a umount that failed or died misleads no one.

func unmountNote(cfg *config.Config) string { return filepath.Join(cfg.Paths.DataDir, "umount") }

// NoteUnmount tells the daemon of cfg that this process is about to
// unmount dir.
func NoteUnmount(cfg *config.Config, dir string) error {
	path := unmountNote(cfg)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d\n%s\n", os.Getpid(), dir), 0o600); err != nil {
		return fmt.Errorf("note the unmount: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("note the unmount: %w", err)
	}
	return nil
}

// ForgetUnmount takes back NoteUnmount, when the unmount failed.
// Best effort: a note that outlives its writer misleads no one.
func ForgetUnmount(cfg *config.Config) { os.Remove(unmountNote(cfg)) }

// unmountedBy returns the pid of the mlfs umount that unmounted dir, or 0
// if no running one noted it, and removes the note.
func unmountedBy(cfg *config.Config, dir string) int {
	path := unmountNote(cfg)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	os.Remove(path)
	spid, noted, _ := strings.Cut(strings.TrimSuffix(string(b), "\n"), "\n")
	pid, err := strconv.Atoi(spid)
	if err != nil || pid <= 0 || filepath.Clean(noted) != filepath.Clean(dir) {
		return 0
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0 // its writer is gone: a note from an unmount that failed
	}
	return pid
}
