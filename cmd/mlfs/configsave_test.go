package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Commands that edit the config change what they edit and nothing else:
// values from MLFS_* variables and flags, and defaults, stay out of the
// file, and the file's own values stay in it.
func TestConfigSaveKeepsTheFile(t *testing.T) {
	in := newInstance(t, "")
	file := filepath.Join(in.home, "config/mlfs/config.toml")
	must(t, os.MkdirAll(filepath.Dir(file), 0o755))
	must(t, os.WriteFile(file, []byte("cache_size = \"10GiB\"\nruns_killed_after = \"20m\"\n"), 0o644))
	envStore := filepath.Join(in.home, "env-store")
	flagStore := filepath.Join(in.home, "flag-store")
	in.env = append(in.env, "MLFS_CACHE_SIZE=1GiB", "MLFS_MOUNT="+filepath.Join(in.home, "env-mnt"), "MLFS_STORE="+envStore,
		"MLFS_RUNS_KILLED_AFTER=3m", "MLFS_REMOTE_TIMEOUT=7s", "MLFS_REMOTE_REGION=eu-west-9")
	lab, team := t.TempDir(), t.TempDir()
	in.ok("remote", "add", "lab", "file://"+lab)
	in.ok("--store", flagStore, "remote", "add", "team", "file://"+team, "--no-default")

	read := func() string {
		t.Helper()
		b, err := os.ReadFile(file)
		must(t, err)
		return string(b)
	}
	cfg := read()
	for _, v := range []string{"1GiB", "env-mnt", envStore, flagStore, "store =", "mount =", `"3m"`, "7s", "eu-west-9"} {
		if strings.Contains(cfg, v) {
			t.Errorf("remote add with MLFS_* set wrote %q into the config:\n%s", v, cfg)
		}
	}
	for _, v := range []string{`cache_size = "10GiB"`, `runs_killed_after = "20m"`, `remote = "lab"`, "file://" + lab, "file://" + team} {
		if !strings.Contains(cfg, v) {
			t.Errorf("remote add lost %q from the config:\n%s", v, cfg)
		}
	}

	in.ok("remote", "rm", "team")
	cfg = read()
	if strings.Contains(cfg, "1GiB") || strings.Contains(cfg, "store =") || strings.Contains(cfg, "file://"+team) ||
		!strings.Contains(cfg, `cache_size = "10GiB"`) || !strings.Contains(cfg, "file://"+lab) {
		t.Errorf("after remote rm team with MLFS_* set, the config is:\n%s", cfg)
	}

	// With no file at all, an edit writes no default.
	fresh := newInstance(t, "")
	fresh.env = append(fresh.env, "MLFS_CACHE_SIZE=2GiB")
	fresh.ok("remote", "add", "lab", "file://"+lab)
	b, err := os.ReadFile(filepath.Join(fresh.home, "config/mlfs/config.toml"))
	must(t, err)
	for _, key := range []string{"store", "mount", "cache_size", "runs_killed_after"} {
		if strings.Contains(string(b), key+" =") {
			t.Errorf("remote add on no config wrote %s, a default or a variable's value:\n%s", key, b)
		}
	}
}
