package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envOf(m map[string]string) Env { return func(k string) string { return m[k] } }

func TestDefaultsWithoutAnyFile(t *testing.T) {
	home := t.TempDir()
	c, err := Load(envOf(map[string]string{"HOME": home}))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(home, ".local/share/mlfs/store"); c.Store != want {
		t.Errorf("store %q, want %q", c.Store, want)
	}
	if c.Paths.CacheDir != filepath.Join(home, ".cache/mlfs") || c.Mount != "/mnt/ml" {
		t.Errorf("paths %+v mount %q", c.Paths, c.Mount)
	}
}

func TestXDGAndEnvOverrideFile(t *testing.T) {
	d := t.TempDir()
	env := map[string]string{"XDG_CONFIG_HOME": d + "/c", "XDG_DATA_HOME": d + "/d", "XDG_CACHE_HOME": d + "/k"}
	os.MkdirAll(d+"/c/mlfs", 0o755)
	os.WriteFile(d+"/c/mlfs/config.toml", []byte("store = \"/srv/store\"\ncache_size = \"10GiB\"\n"), 0o644)
	c, err := Load(envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != "/srv/store" || c.CacheSize != "10GiB" || c.Paths.IndexDir != d+"/d/mlfs/index" {
		t.Fatalf("%+v", c)
	}
	env["MLFS_STORE"] = "/elsewhere"
	if c, _ = Load(envOf(env)); c.Store != "/elsewhere" {
		t.Fatalf("MLFS_STORE did not override the file: %q", c.Store)
	}
}

func TestBadFilesAreNamed(t *testing.T) {
	d := t.TempDir()
	env := envOf(map[string]string{"HOME": d})
	os.MkdirAll(d+"/.config/mlfs", 0o755)
	for content, want := range map[string]string{
		"stor = \"/x\"\n":         "unknown setting stor",
		"store = \n":              "config.toml",
		"store = \"relative\"\n":  "absolute",
		"cache_size = \"lots\"\n": "cache_size",
		"store = 5\n":             "config.toml",
	} {
		os.WriteFile(d+"/.config/mlfs/config.toml", []byte(content), 0o644)
		_, err := Load(env)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to mention %q", content, err, want)
		}
	}
}

func TestSaveRoundTrip(t *testing.T) {
	d := t.TempDir()
	env := envOf(map[string]string{"HOME": d})
	c, _ := Load(env)
	c.Store = "/data/mlfs-store"
	c.CacheSize = "20GiB"
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c2, err := Load(env)
	if err != nil || c2.Store != c.Store || c2.CacheSize != c.CacheSize {
		t.Fatalf("%v %+v", err, c2)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "1KiB": 1024, "1.5 GiB": 3 << 29, "2GB": 2e9, "0": 0, "7M": 7 << 20} {
		got, _, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, p, err := ParseSize("10%"); err != nil || p != 10 {
		t.Errorf("10%%: %v %v", p, err)
	}
	for _, bad := range []string{"", "x", "-1", "1XB", "200%", "0%", "1e30GiB"} {
		if _, _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded", bad)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("store = \"/x\"\nremote = \"s3://b/p\"\ncache_size = \"10%\"\n"))
	f.Add([]byte("[x]\ny=1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Config
		if Parse(b, &c) == nil {
			c.Check()
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1GiB", "10%", "12 MB", "0", "1.5T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, p, err := ParseSize(s)
		if err == nil && (b < 0 || p < 0 || p > 100 || (b > 0 && p > 0)) {
			t.Fatalf("ParseSize(%q) = %d, %v", s, b, p)
		}
	})
}

// A remote is never silently ignored: a bad URL is named as such, and a
// good one is refused until remotes exist.
func TestRemoteRefused(t *testing.T) {
	for url, want := range map[string]string{
		"s3://bucket/p":  "not supported yet",
		"file:///srv/ml": "not supported yet",
		"ftp://x/y":      "unknown scheme",
		"bucket":         "want file:///path",
	} {
		err := CheckRemote(url)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckRemote(%q) = %v, want %q", url, err, want)
		}
	}
	env := map[string]string{"HOME": t.TempDir(), "MLFS_REMOTE": "s3://b/p"}
	if _, err := Load(func(k string) string { return env[k] }); err == nil {
		t.Error("Load accepted MLFS_REMOTE")
	}
}

func TestBadEnvValueIsNamed(t *testing.T) {
	d := t.TempDir()
	env := map[string]string{"HOME": d, "MLFS_CACHE_SIZE": "bogus"}
	_, err := Load(envOf(env))
	if err == nil || !strings.Contains(err.Error(), "$MLFS_CACHE_SIZE") {
		t.Fatalf("bad MLFS_CACHE_SIZE: %v", err)
	}
	env = map[string]string{"HOME": d, "MLFS_RUNS_KILLED_AFTER": "soon"}
	if _, err := Load(envOf(env)); err == nil || !strings.Contains(err.Error(), "$MLFS_RUNS_KILLED_AFTER") {
		t.Fatalf("bad MLFS_RUNS_KILLED_AFTER: %v", err)
	}
}
