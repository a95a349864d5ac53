package repo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRemoveVersionUnblocksGC: gc refuses a damaged store, names the
// damaged versions and the way out; removing them lets gc run again and
// leaves the other versions whole.
func TestRemoveVersionUnblocksGC(t *testing.T) {
	r := TestRepo(t)
	src := t.TempDir()
	randomFile(t, filepath.Join(src, "shared.bin"), 100<<10, 7)
	mustAdd(t, r, "d@v1", src)
	randomFile(t, filepath.Join(src, "more.bin"), 100<<10, 8)
	mustAdd(t, r, "d@v2", src)
	other := t.TempDir()
	randomFile(t, filepath.Join(other, "o.bin"), 100<<10, 9)
	mustAdd(t, r, "o@v1", other)
	want := snapshot(t, other)

	// Both d versions reach shared.bin's file object.
	v1, _ := r.Resolve(bg, ref("d@v1"))
	tr, _ := r.loadTree(bg, v1.Tree)
	if err := r.store.Delete(bg, tr.Entries[0].ID); err != nil {
		t.Fatal(err)
	}
	_, err := r.GC(bg, false)
	var dmg *DamageError
	if !errors.As(err, &dmg) || len(dmg.Versions) != 2 {
		t.Fatalf("gc of a damaged store: %v", err)
	}
	msg := err.Error()
	for _, s := range []string{"d@v1", "d@v2", "mlfs version rm DATASET@VERSION", "then run gc again", "nothing removed"} {
		if !strings.Contains(msg, s) {
			t.Errorf("gc message lacks %q: %s", s, msg)
		}
	}
	if strings.Contains(msg, "o@v1") {
		t.Errorf("gc message names an undamaged version: %s", msg)
	}

	// Refused: latest, id prefixes, missing names; nothing is removed.
	if err := r.RemoveVersion(bg, ref("d@latest")); err == nil {
		t.Error("removing d@latest succeeded")
	}
	prefix := v1.ID.String()[:10]
	if err := r.RemoveVersion(bg, ref("d@"+prefix)); !errors.Is(err, ErrNoVersion) || !strings.Contains(err.Error(), "d@v1") {
		t.Errorf("removing by id prefix: %v", err)
	}
	if err := r.RemoveVersion(bg, ref("d@v9")); !errors.Is(err, ErrNoVersion) || !strings.Contains(err.Error(), "v1, v2") {
		t.Errorf("removing a missing version: %v", err)
	}
	if err := r.RemoveVersion(bg, ref("nope@v1")); !errors.Is(err, ErrNoVersion) {
		t.Errorf("removing from a missing dataset: %v", err)
	}

	for _, v := range []string{"d@v1", "d@v2"} {
		if err := r.RemoveVersion(bg, ref(v)); err != nil {
			t.Fatalf("remove %s: %v", v, err)
		}
	}
	if err := r.RemoveVersion(bg, ref("d@v1")); !errors.Is(err, ErrNoVersion) {
		t.Errorf("removing d@v1 twice: %v", err)
	}
	if vs, err := r.Versions(bg, "d"); err != nil || len(vs) != 0 {
		t.Fatalf("versions of d after removal: %v %v", vs, err)
	}
	st, err := r.GC(bg, false)
	if err != nil {
		t.Fatalf("gc after removing the damaged versions: %v", err)
	}
	if st.RemovedBytes < 100<<10 {
		t.Errorf("gc removed %d bytes, want at least more.bin's", st.RemovedBytes)
	}
	if _, err := r.Fsck(bg, func(p Problem) { t.Errorf("fsck: %s", p) }); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := r.Export(bg, ref("o@v1"), out, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, want, snapshot(t, out))
}

// TestRemoveVersionWithHexName: a hex-looking name created before such
// names were refused is still a real name and can be removed.
func TestRemoveVersionWithHexName(t *testing.T) {
	r := TestRepo(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o644)
	res := mustAdd(t, r, "x@v1", src)
	if err := r.store.CreateRef(bg, "x/deadbeef", res.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveVersion(bg, ref("x@deadbeef")); err != nil {
		t.Fatal(err)
	}
	if vs, _ := r.Versions(bg, "x"); len(vs) != 1 || vs[0].Ref.Version != "v1" {
		t.Fatalf("versions left: %v", vs)
	}
}
