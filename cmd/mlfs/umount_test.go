package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The daemon's log tells an unmount by mlfs umount from one by anyone
// else: only the second is "from outside".
func TestUmountLog(t *testing.T) {
	needFUSE(t)
	in := newInstance(t, "")
	logPath := filepath.Join(in.home, "data/mlfs/daemon.log")

	mnt := in.mount("")
	in.ok("umount", mnt)
	log, err := os.ReadFile(logPath)
	must(t, err)
	if strings.Contains(string(log), "unmounted from outside") || !strings.Contains(string(log), "unmounted by mlfs umount") {
		t.Fatalf("the daemon's log after mlfs umount:\n%s", log)
	}

	in.mount(mnt)
	pid := in.daemonPID()
	must(t, unmount(mnt)) // as mlfs umount does, but without its note
	waitFor(t, "the daemon to exit after an unmount from outside", 60*time.Second, func() bool { return exited(pid) })
	log, err = os.ReadFile(logPath)
	must(t, err)
	if !strings.Contains(string(log), "unmounted from outside") {
		t.Fatalf("the daemon's log after an unmount from outside:\n%s", log)
	}
}
