package cache

import (
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDefaultSize(t *testing.T) {
	const gib = 1 << 30
	for _, c := range []struct{ fs, want int64 }{
		{100 * gib, 10 * gib},
		{2000 * gib, 50 * gib}, // at most 50 GiB
		{4 * gib, 1 * gib},     // at least 1 GiB
		{512 << 20, 512 << 20}, // but never more than the filesystem
	} {
		if got := defaultSize(c.fs); got != c.want {
			t.Errorf("filesystem of %d bytes: default cache %d bytes, want %d", c.fs, got, c.want)
		}
	}
}

func TestSizeFor(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	fs := int64(st.Blocks) * st.Frsize

	for _, c := range []struct {
		name    string
		dir     string
		bytes   int64
		percent float64
		want    int64
	}{
		{"bytes win", dir, 12345, 50, 12345},
		{"percent", dir, 0, 50, fs / 2},
		{"all of it", dir, 0, 100, fs},
		{"default", dir, 0, 0, defaultSize(fs)},
		{"dir not made yet", filepath.Join(dir, "a", "b"), 0, 50, fs / 2},
	} {
		got, err := SizeFor(c.dir, c.bytes, c.percent)
		if err != nil || got != c.want {
			t.Errorf("%s: SizeFor(%d, %v) = %d, %v; want %d", c.name, c.bytes, c.percent, got, err, c.want)
		}
	}
	for _, c := range []struct {
		bytes   int64
		percent float64
	}{{-1, 0}, {0, -5}, {0, 101}} {
		if got, err := SizeFor(dir, c.bytes, c.percent); err == nil {
			t.Errorf("SizeFor(%d, %v) = %d, want an error", c.bytes, c.percent, got)
		}
	}
}
