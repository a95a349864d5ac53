package worktree_test

import (
	"strings"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/mem"
	"github.com/mlfs/mlfs/cas/pack"
	"github.com/mlfs/mlfs/cas/tiered"
	"github.com/mlfs/mlfs/index/memkv"
	"github.com/mlfs/mlfs/repo"
	"github.com/mlfs/mlfs/worktree"
)

// sharedRemote is a bucket that machines share: one closing its view
// leaves it open.
type sharedRemote struct{ cas.Store }

func (sharedRemote) Close() error { return nil }

// onRemote is one machine on the shared remote: its repo over a tiered
// store whose cached listing of the remote's refs never goes stale by age
// here, its working trees and their log.
type onRemote struct {
	r   *repo.Repo
	set *worktree.Set
	log *logBuffer
}

func machineOn(t *testing.T, remote cas.Store) *onRemote {
	t.Helper()
	localFiles := mem.New()
	local, err := pack.New(ctx, localFiles, pack.Options{PackSize: 1 << 20})
	must(t, err)
	rp, err := pack.New(ctx, sharedRemote{remote}, pack.Options{})
	must(t, err)
	st, err := tiered.New(tiered.Options{Local: local, LocalFiles: localFiles, Remote: rp, RemoteFiles: sharedRemote{remote},
		RefsMaxAge: time.Hour})
	must(t, err)
	t.Cleanup(func() { st.Close() })
	dir := t.TempDir()
	r := repo.New(st, memkv.New(), dir+"/lock", nil)
	m := &onRemote{r: r, log: &logBuffer{}}
	m.set = worktree.NewSet(memkv.New(), t.TempDir(), r, st, m.log.logger())
	return m
}

func (m *onRemote) tree(t *testing.T, ds string) *worktree.Tree {
	t.Helper()
	tr, err := m.set.Get(ctx, ds, true)
	must(t, err)
	return tr
}

func (m *onRemote) snapshot(t *testing.T, ref string) {
	t.Helper()
	ds, _, _ := strings.Cut(ref, "@")
	_, err := m.tree(t, ds).Snapshot(ctx, m.r, repoRef(t, ref), "")
	must(t, err)
}

func repoRef(t *testing.T, s string) repo.Ref {
	t.Helper()
	r, err := repo.ParseRef(s)
	must(t, err)
	return r
}

// staleWarning returns the stale-snapshot warning logged for version, or "".
func staleWarning(log *logBuffer, version string) string {
	for _, line := range strings.Split(log.String(), "\n") {
		if strings.Contains(line, worktree.StaleSnapshot) && strings.Contains(line, "version="+version+" ") {
			return line
		}
	}
	return ""
}

// Two machines take turns snapshotting one dataset, each right after the
// other's snapshot. Each snapshot after the first is of a tree based on a
// version that is no longer the latest (the other machine's is), and
// warns, although the store's cached listing of the remote has not seen
// the other machine's version yet: the snapshot lists the remote afresh.
func TestStaleSnapshotSeesOtherMachineAtOnce(t *testing.T) {
	remote := mem.New()
	a, b := machineOn(t, remote), machineOn(t, remote)
	create(t, a.tree(t, "d"), worktree.RootIno, "base", "0")
	a.snapshot(t, "d@v0")
	create(t, b.tree(t, "d"), worktree.RootIno, "b1", "")
	b.snapshot(t, "d@s1")
	create(t, a.tree(t, "d"), worktree.RootIno, "a1", "")
	a.snapshot(t, "d@s2")
	create(t, b.tree(t, "d"), worktree.RootIno, "b2", "")
	b.snapshot(t, "d@s3")

	if w := staleWarning(b.log, "d@s1"); w != "" {
		t.Errorf("d@s1, of a tree on the latest version, warned: %s", w)
	}
	for _, c := range []struct {
		m                     *onRemote
		version, base, latest string
	}{
		{a, "d@s2", "d@v0", "d@s1"},
		// B's tree is on its own d@s1, which A's d@s2 followed.
		{b, "d@s3", "d@s1", "d@s2"},
	} {
		w := staleWarning(c.m.log, c.version)
		if w == "" {
			t.Errorf("the snapshot %s of a tree based on %s, after %s was made on the other machine, did not warn:\n%s", c.version, c.base, c.latest, c.m.log)
			continue
		}
		if !strings.Contains(w, "base="+c.base+" ") || !strings.Contains(w, "latest="+c.latest+" ") || !strings.Contains(w, "level=WARN") {
			t.Errorf("the warning for %s does not name base %s and latest %s: %s", c.version, c.base, c.latest, w)
		}
	}
}
