package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// versionID returns the id `mlfs versions` shows for name (ds@v), or "".
func versionID(in *instance, ds, name string) string {
	for _, line := range strings.Split(in.ok("versions", ds), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == name {
			return f[1]
		}
	}
	return ""
}

// listed reports whether the mount at m lists name at its top. A listing
// that fails is tried again a few times: a signal to the test process
// (the Go runtime's preemption) can interrupt the FUSE request.
func listed(t *testing.T, m, name string) bool {
	t.Helper()
	var err error
	for try := 0; try < 5; try++ {
		var ents []os.DirEntry
		if ents, err = os.ReadDir(m); err == nil {
			return slices.ContainsFunc(ents, func(e os.DirEntry) bool { return e.Name() == name })
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("list %s: %v", m, err)
	return false
}

// A name removed on one machine goes from the other within seconds (its
// listing, its lookup, its versions), and made again with other content,
// the other machine reads the new content under it: two machines never
// serve different data under one name.
func TestReuseRemovedName(t *testing.T) {
	needFUSE(t)
	for _, kind := range remoteKinds[:2] { // a folder, and a bucket listed by names
		t.Run(kind.name, func(t *testing.T) {
			a, b := machines(t, kind)
			ma, mb := a.mount(""), b.mount("")
			t.Cleanup(func() {
				if t.Failed() {
					for _, in := range []*instance{a, b} {
						log, _ := os.ReadFile(filepath.Join(in.home, "data/mlfs/daemon.log"))
						t.Logf("daemon log of %s:\n%s", in.home, log)
					}
				}
			})
			must(t, os.Mkdir(filepath.Join(ma, "nd"), 0o755))
			must(t, os.WriteFile(filepath.Join(ma, "nd/f"), []byte("one\n"), 0o644))
			must(t, os.Mkdir(filepath.Join(ma, "nd@v1"), 0o755))
			must(t, os.WriteFile(filepath.Join(ma, "nd/f"), []byte("two\n"), 0o644))
			must(t, os.Mkdir(filepath.Join(ma, "nd@v2"), 0o755))

			// B has read nd@v1: the kernel keeps its folder for long.
			waitFor(t, "nd@v1 on b", 10*time.Second, func() bool {
				got, err := os.ReadFile(filepath.Join(mb, "nd@v1/f"))
				return err == nil && string(got) == "one\n"
			})
			b.ok("pull")

			a.ok("version", "rm", "nd@v1")
			took := waitFor(t, "nd@v1 gone from b", 15*time.Second, func() bool {
				_, err := os.Stat(filepath.Join(mb, "nd@v1"))
				return !listed(t, mb, "nd@v1") && os.IsNotExist(err)
			})
			t.Logf("nd@v1 gone from b after %v", took.Round(time.Millisecond))
			if id := versionID(b, "nd", "nd@v1"); id != "" {
				t.Fatalf("b's versions still show nd@v1 (%s)", id)
			}
			if out := b.ok("pull"); strings.Contains(out, "nd@v1") {
				t.Fatalf("pull on b: %s", out)
			}
			if !listed(t, mb, "nd@v2") {
				t.Fatal("b lost nd@v2 too")
			}

			// A makes the name again, with other content.
			must(t, os.WriteFile(filepath.Join(ma, "nd/newf"), []byte("\n"), 0o644))
			must(t, os.Mkdir(filepath.Join(ma, "nd@v1"), 0o755))
			want := versionID(a, "nd", "nd@v1")
			if want == "" {
				t.Fatal("a does not show the nd@v1 it made again")
			}
			took = waitFor(t, "the new nd@v1 on b", 15*time.Second, func() bool {
				_, err := os.Stat(filepath.Join(mb, "nd@v1/newf"))
				return err == nil
			})
			t.Logf("the new nd@v1 read on b after %v", took.Round(time.Millisecond))
			if got, err := os.ReadFile(filepath.Join(mb, "nd@v1/f")); err != nil || string(got) != "two\n" {
				t.Fatalf("nd@v1/f on b: %q, %v; want the new content", got, err)
			}
			if id := versionID(b, "nd", "nd@v1"); id != want {
				t.Fatalf("b's versions show nd@v1 %q, a's %q", id, want)
			}
			dst := t.TempDir()
			b.ok("export", "nd@v1", dst)
			if _, err := os.Stat(filepath.Join(dst, "newf")); err != nil {
				t.Fatalf("b exports the old nd@v1: %v", err)
			}
		})
	}
}

// A version made before the remote was added stays on its machine when
// the remote's names change, and push publishes it; a name another
// machine removed is not published again by push.
func TestReuseNeverPublishedKeptAndPushed(t *testing.T) {
	args, env := remoteKinds[0].make(t)
	a, c := newInstance(t, ""), newInstance(t, "")
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("made before the remote\n"), 0o644))
	c.ok("add", "old@v1", src)
	for _, in := range []*instance{a, c} {
		in.env = append(in.env, env...)
		in.ok(append([]string{"remote", "add", "team"}, args...)...)
	}
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("from a\n"), 0o644))
	a.ok("add", "nd@v1", src)
	a.ok("add", "nd@v2", src)
	c.ok("pull")
	if versionID(c, "nd", "nd@v1") == "" {
		t.Fatal("c did not pull nd@v1")
	}

	a.ok("version", "rm", "nd@v1")
	c.ok("push")
	if id := versionID(c, "old", "old@v1"); id == "" {
		t.Fatal("c lost old@v1, which it never published")
	}
	if id := versionID(c, "nd", "nd@v1"); id != "" {
		t.Fatalf("c still has nd@v1 (%s), which a removed", id)
	}
	a.ok("pull")
	if id := versionID(a, "nd", "nd@v1"); id != "" {
		t.Fatalf("c's push made nd@v1 (%s) again on the remote", id)
	}
	if id := versionID(a, "old", "old@v1"); id == "" || id != versionID(c, "old", "old@v1") {
		t.Fatalf("a does not see the old@v1 c pushed (%q)", id)
	}
	dst := t.TempDir()
	a.ok("export", "old@v1", dst)
	if got, _ := os.ReadFile(filepath.Join(dst, "f")); string(got) != "made before the remote\n" {
		t.Fatalf("old@v1 on a: %q", got)
	}
}
