package fs

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// MountOptions tune Mount.
type MountOptions struct {
	// Debug logs every FUSE request (very verbose).
	Debug bool
	// AllowOther lets users other than the one mounting use the mount
	// (needs user_allow_other in /etc/fuse.conf for non-root).
	AllowOther bool
}

// Mount mounts root at dir and returns the serving server once the mount
// is ready. As root it calls mount(2) itself; otherwise it goes through
// fusermount3 (Debian package fuse3).
func Mount(dir string, root *Root, opt MountOptions) (*fuse.Server, error) {
	zero := time.Duration(0)
	server, err := gofs.Mount(dir, root, &gofs.Options{
		MountOptions: fuse.MountOptions{
			FsName:       "mlfs",
			Name:         "mlfs",
			DirectMount:  os.Geteuid() == 0,
			Debug:        opt.Debug,
			AllowOther:   opt.AllowOther,
			MaxWrite:     1 << 20,
			MaxReadAhead: 1 << 20,
			// Extended attributes are served (user.mlfs.id).
			DisableXAttrs: false,
		},
		// Nodes set their own timeouts; these are for replies that do not.
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
		UID:             uint32(os.Getuid()),
		GID:             uint32(os.Getgid()),
	})
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, explainMountError(err))
	}
	if err := server.WaitMount(); err != nil {
		server.Unmount()
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	return server, nil
}

func explainMountError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "fusermount") && strings.Contains(msg, "not found"):
		return fmt.Errorf("%w (install the fuse3 package: apt-get install fuse3)", err)
	case strings.Contains(msg, "/dev/fuse") && strings.Contains(msg, "ermission denied"):
		return fmt.Errorf("%w (/dev/fuse is not open to this user; Debian makes it mode 0666)", err)
	case strings.Contains(msg, "/dev/fuse"):
		return fmt.Errorf("%w (this machine has no FUSE device; load the fuse module or run with /dev/fuse)", err)
	}
	return err
}

func sortEntries(list []fuse.DirEntry) {
	slices.SortFunc(list, func(a, b fuse.DirEntry) int { return strings.Compare(a.Name, b.Name) })
}
