package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// names lists a folder's entries, "" if it cannot be read.
func names(dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return strings.Join(out, " ")
}

// staleLine returns the line of mlfs status that warns of the stale
// snapshot version, or "".
func staleLine(status, version string) string {
	for _, line := range strings.Split(status, "\n") {
		if strings.Contains(line, "not based on the dataset's latest version") && strings.Contains(line, "version="+version+" ") {
			return line
		}
	}
	return ""
}

// Two machines take turns snapshotting one dataset, each right after the
// other. A snapshot that lacks what the other machine's version just
// before it brought warns, at once: the daemon lists the remote afresh at
// snapshot time instead of trusting its listing of a second ago. (Were a
// tree to follow the other machine's version in between, its snapshot
// would hold that version's files and need no warning.)
func TestStaleSnapshotRightAfterOtherMachine(t *testing.T) {
	needFUSE(t)
	a, b := machines(t, remoteKinds[0])
	ma, mb := a.mount(""), b.mount("")
	must(t, os.Mkdir(filepath.Join(ma, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(ma, "d/base"), []byte("0\n"), 0o644))
	must(t, os.Mkdir(filepath.Join(ma, "d@v0"), 0o755))
	waitFor(t, "d@v0 in the second machine's working tree", 20*time.Second, func() bool {
		return readString(filepath.Join(mb, "d/base")) == "0\n"
	})

	steps := []struct {
		in          *instance
		mnt, file   string
		version     string
		other, base string // the other machine's version just before, and this one's base then
	}{
		{b, mb, "b1", "s1", "", ""},
		{a, ma, "a1", "s2", "s1", "v0"},
		{b, mb, "b2", "s3", "s2", "s1"},
	}
	for _, s := range steps {
		must(t, os.WriteFile(filepath.Join(s.mnt, "d", s.file), []byte("\n"), 0o644))
		must(t, os.Mkdir(filepath.Join(s.mnt, "d@"+s.version), 0o755))
	}
	for _, s := range steps[1:] {
		otherFile := map[string]string{"s1": "b1", "s2": "a1"}[s.other]
		has := strings.Contains(" "+names(filepath.Join(s.mnt, "d@"+s.version))+" ", " "+otherFile+" ")
		status := s.in.ok("status")
		line := staleLine(status, "d@"+s.version)
		switch {
		case has:
			t.Logf("d@%s holds %s: its tree followed d@%s first", s.version, otherFile, s.other)
		case line == "":
			t.Fatalf("d@%s lacks d@%s's %s (ls: %s) and mlfs status does not warn:\n%s", s.version, s.other, otherFile,
				names(filepath.Join(s.mnt, "d@"+s.version)), status)
		case !strings.Contains(line, "base=d@"+s.base) || !strings.Contains(line, "latest=d@"+s.other):
			t.Fatalf("the warning for d@%s does not name base d@%s and latest d@%s: %s", s.version, s.base, s.other, line)
		}
	}
}

// A file of a clean working tree opened for writing and closed without a
// write (as Python's open(path, "ab").close()), or opened for reading and
// writing and only read, leaves the tree clean: it follows the version
// the other machine makes next, and a checkout of latest works. An open
// that empties the file is a change, which a checkout refuses to drop.
func TestFollowAfterOpenWithoutWrite(t *testing.T) {
	needFUSE(t)
	a, b := machines(t, remoteKinds[0])
	ma, mb := a.mount(""), b.mount("")
	must(t, os.Mkdir(filepath.Join(ma, "ow"), 0o755))
	must(t, os.WriteFile(filepath.Join(ma, "ow/f"), []byte("1\n"), 0o644))
	must(t, os.Mkdir(filepath.Join(ma, "ow@v1"), 0o755))
	f := filepath.Join(mb, "ow/f")
	waitFor(t, "ow@v1 in the second machine's working tree", 20*time.Second, func() bool {
		return readString(f) == "1\n"
	})

	h, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	must(t, h.Close())
	h, err = os.OpenFile(f, os.O_RDWR, 0)
	must(t, err)
	buf := make([]byte, 8)
	if n, err := h.Read(buf); err != nil || string(buf[:n]) != "1\n" {
		t.Fatalf("read through a handle open for reading and writing: %q, %v", buf[:n], err)
	}
	must(t, h.Close())

	must(t, os.WriteFile(filepath.Join(ma, "ow/f"), []byte("3\n"), 0o644))
	must(t, os.Mkdir(filepath.Join(ma, "ow@v3"), 0o755))
	waitFor(t, "the second machine's working tree following ow@v3", 30*time.Second, func() bool {
		return readString(f) == "3\n"
	})
	b.ok("checkout", "ow@latest")

	h, err = os.OpenFile(f, os.O_WRONLY|os.O_TRUNC, 0)
	must(t, err)
	must(t, h.Close())
	if got := readString(f); got != "" {
		t.Fatalf("ow/f after an open with O_TRUNC: %q", got)
	}
	b.fails("changes that are in no version", "checkout", "ow@latest")
}
