package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readString reads a file, "" if it cannot be read.
func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

// daemonLog is the log of an instance's daemon started by mlfs mount.
func daemonLog(in *instance) string {
	return readString(filepath.Join(in.home, "data/mlfs/daemon.log"))
}

// Two machines on one remote. The second machine's working tree, clean,
// follows each version the first makes: its reads through ds/ give the
// new bytes. Once it has a change of its own it stays, keeping the change
// and a write through a file held open meanwhile, and its snapshot, made
// on a base that is no longer the latest, succeeds and warns in mlfs
// status, naming both versions and the machine that made the newer one.
func TestFollowLatestAcrossMachines(t *testing.T) {
	needFUSE(t)
	a, b := machines(t, remoteKinds[0])
	ma, mb := a.mount(""), b.mount("")
	host, err := os.Hostname()
	must(t, err)

	must(t, os.Mkdir(filepath.Join(ma, "ds"), 0o755))
	must(t, os.WriteFile(filepath.Join(ma, "ds/a.txt"), []byte("one\n"), 0o644))
	must(t, os.Mkdir(filepath.Join(ma, "ds@v1"), 0o755))
	waitFor(t, "ds/a.txt of ds@v1 on the second machine", 15*time.Second, func() bool {
		return readString(filepath.Join(mb, "ds/a.txt")) == "one\n"
	})

	// (a) The clean tree follows ds@v2, made on the first machine.
	must(t, os.WriteFile(filepath.Join(ma, "ds/a.txt"), []byte("two\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(ma, "ds/new.txt"), []byte("made on A\n"), 0o644))
	must(t, os.Mkdir(filepath.Join(ma, "ds@v2"), 0o755))
	took := waitFor(t, "the second machine's working tree following ds@v2", 20*time.Second, func() bool {
		return readString(filepath.Join(mb, "ds/new.txt")) == "made on A\n" && readString(filepath.Join(mb, "ds/a.txt")) == "two\n"
	})
	t.Logf("the second machine's working tree followed ds@v2 after %v", took.Round(time.Millisecond))
	if log := daemonLog(b); !strings.Contains(log, "working tree follows the latest version") || !strings.Contains(log, "to=ds@v2") {
		t.Fatalf("the second machine's log does not tell the move:\n%s", log)
	}
	ents, err := os.ReadDir(filepath.Join(mb, "ds"))
	must(t, err)
	if len(ents) != 2 {
		t.Fatalf("ls ds on the second machine: %d entries, want a.txt and new.txt", len(ents))
	}
	if out := b.ok("status"); !strings.Contains(out, "errors  none") {
		t.Fatalf("mlfs status on the second machine after following:\n%s", out)
	}

	// (b) A change of its own, and a file held open for writing: the
	// tree stays on ds@v2 when ds@v3 comes, and keeps both.
	must(t, os.WriteFile(filepath.Join(mb, "ds/mine.txt"), []byte("made on B\n"), 0o644))
	held, err := os.OpenFile(filepath.Join(mb, "ds/a.txt"), os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	defer held.Close()
	must(t, os.WriteFile(filepath.Join(ma, "ds/a.txt"), []byte("three\n"), 0o644))
	must(t, os.Mkdir(filepath.Join(ma, "ds@v3"), 0o755))
	waitFor(t, "ds@v3 on the second machine", 15*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(mb, "ds@v3"))
		return err == nil
	})
	// The daemon says, once it has looked, that the tree stays behind.
	waitFor(t, "the second machine's daemon looking at ds@v3", 20*time.Second, func() bool {
		return strings.Contains(daemonLog(b), "working tree stays behind the latest version")
	})
	if _, err := held.WriteString("appended on B\n"); err != nil {
		t.Fatal(err)
	}
	must(t, held.Close())
	if got := readString(filepath.Join(mb, "ds/mine.txt")); got != "made on B\n" {
		t.Fatalf("ds/mine.txt on the second machine after ds@v3: %q", got)
	}
	if got := readString(filepath.Join(mb, "ds/a.txt")); got != "two\nappended on B\n" {
		t.Fatalf("ds/a.txt on the second machine after ds@v3: %q, want ds@v2's and the write through the held file", got)
	}

	if err := os.Mkdir(filepath.Join(mb, "ds@v4"), 0o755); err != nil {
		t.Fatalf("snapshot on the second machine: %v\n%s", err, daemonLog(b))
	}
	out := b.ok("status")
	for _, want := range []string{"WARN snapshot of a working tree not based on the dataset's latest version",
		"version=ds@v4", "base=ds@v2", "latest=ds@v3", "latest made on=" + host} {
		if !strings.Contains(out, want) {
			t.Fatalf("mlfs status on the second machine does not say %q:\n%s", want, out)
		}
	}
	if log := daemonLog(b); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "latest=ds@v3") {
		t.Fatalf("the second machine's log has no warning about the stale snapshot:\n%s", log)
	}
	// ds@v4 is B's tree as it was: ds@v2 with B's changes, not ds@v3's.
	if got := readString(filepath.Join(mb, "ds@v4/a.txt")); got != "two\nappended on B\n" {
		t.Fatalf("ds@v4/a.txt: %q", got)
	}
	if got := readString(filepath.Join(mb, "ds@v4/mine.txt")); got != "made on B\n" {
		t.Fatalf("ds@v4/mine.txt: %q", got)
	}
	// The first machine's tree, clean on ds@v3, follows ds@v4 in turn.
	deadline := time.Now().Add(20 * time.Second)
	for readString(filepath.Join(ma, "ds/mine.txt")) != "made on B\n" {
		if time.Now().After(deadline) {
			t.Fatalf("the first machine's working tree did not follow ds@v4 within 20s; its log:\n%s", daemonLog(a))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
