package config

import (
	"fmt"
	"net/url"
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

// A bad remote is named as such, and never silently ignored.
func TestRemotes(t *testing.T) {
	for url, want := range map[string]string{
		"ftp://x/y":                "unknown scheme",
		"bucket":                   "want file:///path",
		"s3://key:secret@bucket/p": "credentials do not belong in the URL",
		"s3://bucket/p?region=x":   "not in the URL",
		"az://c/p?sv=1&sig=secret": "not in the URL",
		"s3://b/../escape":         "'..'",
		"file://relative/path":     "three slashes",
	} {
		err := CheckRemote(url)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckRemote(%q) = %v, want %q", url, err, want)
		}
		if strings.Contains(fmt.Sprint(err), "secret") {
			t.Errorf("CheckRemote(%q) prints the secret: %v", url, err)
		}
	}
	for _, url := range []string{"s3://bucket/p", "gs://b", "az://container/a/b", "file:///srv/ml"} {
		if err := CheckRemote(url); err != nil {
			t.Errorf("CheckRemote(%q) = %v", url, err)
		}
	}

	home := t.TempDir()
	env := map[string]string{"HOME": home, "MLFS_REMOTE": "s3://b/p", "MLFS_REMOTE_ENDPOINT": "http://127.0.0.1:7070", "MLFS_REMOTE_PATH_STYLE": "true"}
	c, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.RemoteSettings()
	if err != nil || r != (Remote{URL: "s3://b/p", Endpoint: "http://127.0.0.1:7070", PathStyle: true}) {
		t.Fatalf("RemoteSettings = %+v, %v", r, err)
	}

	// Named remotes round-trip through the file.
	c.Remote = "team"
	c.Remotes = map[string]Remote{"team": {URL: "az://ml/data", Account: "devstoreaccount1"}}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	delete(env, "MLFS_REMOTE")
	delete(env, "MLFS_REMOTE_ENDPOINT")
	delete(env, "MLFS_REMOTE_PATH_STYLE")
	c, err = Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.RemoteSettings(); err != nil || r.URL != "az://ml/data" || r.Account != "devstoreaccount1" {
		t.Fatalf("after a round trip: %+v, %v", r, err)
	}
	env["MLFS_REMOTE"] = "nosuch"
	if _, err := Load(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "no such remote") {
		t.Fatalf("an unknown remote name: %v", err)
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

// FuzzCheckRemote: a remote URL is accepted only with a known scheme and
// no credentials, and a refusal never repeats a password it was given.
func FuzzCheckRemote(f *testing.F) {
	for _, s := range []string{"s3://b/p", "gs://b", "az://c/p/q", "file:///srv", "s3://k:hunter2@b/p", "ftp://x", "s3://", "file://", "%zz", "s3://b/p?x=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckRemote(s)
		u, perr := url.Parse(s)
		if err == nil {
			if perr != nil || u.User != nil {
				t.Fatalf("accepted %q", s)
			}
			switch u.Scheme {
			case "s3", "gs", "az", "file":
			default:
				t.Fatalf("accepted %q with scheme %q", s, u.Scheme)
			}
			return
		}
		if perr == nil && u.User != nil {
			if p, ok := u.User.Password(); ok && len(p) > 3 && strings.Contains(err.Error(), p) {
				t.Fatalf("the error for %q shows the password: %v", s, err)
			}
		}
	})
}
