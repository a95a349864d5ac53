package config

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
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
	f.Add([]byte("store = \"/x\"\nremote = \"s3://bkt/p\"\ncache_size = \"10%\"\n"))
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

// long returns a valid name of n characters.
func long(n int) string { return strings.Repeat("a", n) }

// A bad remote is named as such, and never silently ignored.
func TestRemotes(t *testing.T) {
	for url, want := range map[string]string{
		"ftp://x/y":                "unknown scheme",
		"bucket":                   "want file:///path",
		"s3://key:secret@bucket/p": "credentials do not belong in the URL",
		"s3://bucket/p?region=x":   "not in the URL",
		"az://c/p?sv=1&sig=secret": "not in the URL",
		"s3://bkt/../escape":       "'..'",
		"file://relative/path":     "three slashes",
		// Bucket and container names a cloud would refuse are named here,
		// not left to end in a DNS error.
		"s3://Bad_Bucket!/x":       `remote s3://Bad_Bucket!/x: bucket name "Bad_Bucket!": S3 takes 3 to 63 lowercase`,
		"s3://b/p":                 "3 to 63",
		"s3://-bucket/p":           "starting and ending with a letter or digit",
		"s3://a..b/p":              "no '..'",
		"s3://192.168.5.4/p":       "not an IP address",
		"s3://" + long(64) + "/p":  "3 to 63",
		"s3://localhost:9000/b":    "goes in the endpoint",
		"gs://Bucket/p":            "GCS takes",
		"gs://" + long(64) + "/p":  "up to 222 with dots",
		"gs://goog-data/p":         `"goog"`,
		"gs://my-google-data":      `"google"`,
		"gs://a..b":                "GCS takes",
		"az://a--b/p":              `no "--"`,
		"az://ml_data/p":           "Azure takes",
		"az://ml./p":               "Azure takes",
		"ftp://x/y?sig=secret":     "unknown scheme",
		"%zz?sig=secret":           "want file:///path",
		"s3://bkt/p#sig=secret":    "not in the URL",
		"s3://key:secret@Bad!/p?q": "credentials do not belong in the URL",
	} {
		err := CheckRemote(url)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckRemote(%q) = %v, want %q", url, err, want)
		}
		if strings.Contains(fmt.Sprint(err), "secret") {
			t.Errorf("CheckRemote(%q) prints the secret: %v", url, err)
		}
	}
	for _, url := range []string{"s3://bucket/p", "gs://bkt", "az://container/a/b", "file:///srv/ml",
		"s3://my.bucket-1/p", "s3://" + long(63), "gs://my_bucket", "gs://" + long(63) + "." + long(63) + "." + long(63),
		"az://ml-data-1/p", "az://$root/p", "az://" + long(63)} {
		if err := CheckRemote(url); err != nil {
			t.Errorf("CheckRemote(%q) = %v", url, err)
		}
	}

	home := t.TempDir()
	env := map[string]string{"HOME": home, "MLFS_REMOTE": "s3://bkt/p", "MLFS_REMOTE_ENDPOINT": "http://127.0.0.1:7070", "MLFS_REMOTE_PATH_STYLE": "true"}
	c, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.RemoteSettings()
	if err != nil || r != (Remote{URL: "s3://bkt/p", Endpoint: "http://127.0.0.1:7070", PathStyle: true}) {
		t.Fatalf("RemoteSettings = %+v, %v", r, err)
	}

	// Named remotes round-trip through the file.
	c.Remote = "team"
	c.Remotes = map[string]Remote{"team": {URL: "az://mlc/data", Account: "devstoreaccount1"}}
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
	if r, err := c.RemoteSettings(); err != nil || r.URL != "az://mlc/data" || r.Account != "devstoreaccount1" {
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

// FuzzCheckRemote: a remote URL is accepted only with a known scheme, no
// credentials, no query and a bucket (container) name its cloud accepts;
// a refusal never repeats a password or a query it was given.
func FuzzCheckRemote(f *testing.F) {
	for _, s := range []string{"s3://bkt/p", "gs://bkt", "az://ctr/p/q", "file:///srv", "s3://k:hunter2@b/p", "ftp://x", "s3://", "file://", "%zz", "s3://b/p?x=1",
		"s3://Bad_Bucket!/x", "gs://goog-x/p", "az://a--b/p", "s3://192.168.0.1/p", "gs://a.b..c", "s3://host:9000/b", "ftp://x?sig=hunter2", "%zz?sig=hunter2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckRemote(s)
		u, perr := url.Parse(s)
		if err == nil {
			if perr != nil || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
				t.Fatalf("accepted %q", s)
			}
			switch u.Scheme {
			case "s3", "gs", "az":
				if n := len(u.Host); n < 3 || n > 222 || strings.Trim(u.Host, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != "" && u.Host != "$root" && u.Host != "$web" {
					t.Fatalf("accepted %q with the bucket name %q", s, u.Host)
				}
			case "file":
			default:
				t.Fatalf("accepted %q with scheme %q", s, u.Scheme)
			}
			return
		}
		msg := err.Error()
		if perr == nil && u.User != nil {
			// (A password that the rest of the URL holds too may show.)
			if p, ok := u.User.Password(); ok && len(p) > 3 && strings.Count(s, p) == 1 && strings.Contains(msg, p) {
				t.Fatalf("the error for %q shows the password: %v", s, err)
			}
		}
		// What follows the first '?' or '#' is a query or fragment (as
		// url.Parse splits it), which may hold a signature or a SAS token:
		// the error must not depend on it. Another query of the same
		// shape (each letter and digit changed, hex digits to hex digits)
		// must give the same error.
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			other := s[:i+1] + otherQuery(s[i+1:])
			if other != s {
				if err2 := CheckRemote(other); err2 == nil || err2.Error() != msg {
					t.Fatalf("the error for %q shows its query: %v (for %q: %v)", s, err, other, err2)
				}
			}
		}
	})
}

// otherQuery changes every letter and digit of q, keeping hex digits hex
// (so that a %-escape stays valid or invalid) and the rest as it is.
func otherQuery(q string) string {
	b := []byte(q)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'f':
			b[i] = 'a' + (c-'a'+1)%6
		case c >= 'g' && c <= 'z':
			b[i] = 'g' + (c-'g'+1)%20
		case c >= 'A' && c <= 'F':
			b[i] = 'A' + (c-'A'+1)%6
		case c >= 'G' && c <= 'Z':
			b[i] = 'G' + (c-'G'+1)%20
		case c >= '0' && c <= '9':
			b[i] = '0' + (c-'0'+1)%10
		}
	}
	return string(b)
}

// Removing the remote the daemon uses unsets it: the config never names
// a remote it lacks, and loads again.
func TestRemoveRemote(t *testing.T) {
	home := t.TempDir()
	env := envOf(map[string]string{"HOME": home})
	c, err := Load(env)
	if err != nil {
		t.Fatal(err)
	}
	c.Remote = "team"
	c.Remotes = map[string]Remote{"team": {URL: "s3://bkt/team"}, "lab": {URL: "file:///srv/lab"}}
	if unset, err := c.RemoveRemote("lab"); err != nil || unset {
		t.Fatalf("remove another remote than the daemon's: unset %v, %v", unset, err)
	}
	if c.Remote != "team" {
		t.Fatalf("removing lab changed the daemon's remote to %q", c.Remote)
	}
	if unset, err := c.RemoveRemote("team"); err != nil || !unset {
		t.Fatalf("remove the daemon's remote: unset %v, %v; want it unset", unset, err)
	}
	if _, err := c.RemoveRemote("team"); !errors.Is(err, ErrNoSuchRemote) {
		t.Fatalf("remove it again: %v, want ErrNoSuchRemote", err)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c, err = Load(env)
	if err != nil {
		t.Fatalf("the config after removing the daemon's remote: %v", err)
	}
	if c.Remote != "" || len(c.Remotes) != 0 {
		t.Fatalf("after a round trip: remote %q, remotes %v", c.Remote, c.Remotes)
	}
}

// An edit saves the file's own values: a value from an MLFS_* variable
// stays in the environment, and the file's value under it survives.
func TestEditLeavesEnvValuesOut(t *testing.T) {
	d := t.TempDir()
	env := map[string]string{"HOME": d}
	file := filepath.Join(d, ".config/mlfs/config.toml")
	must(t, os.MkdirAll(filepath.Dir(file), 0o755))
	must(t, os.WriteFile(file, []byte("cache_size = \"10GiB\"\n"), 0o644))
	for k, v := range map[string]string{"MLFS_CACHE_SIZE": "1GiB", "MLFS_STORE": "/from/env", "MLFS_MOUNT": "/mnt/env",
		"MLFS_RUNS_KILLED_AFTER": "3m", "MLFS_REMOTE": "s3://env/p", "MLFS_REMOTE_ENDPOINT": "http://127.0.0.1:9",
		"MLFS_REMOTE_REGION": "eu-west-9", "MLFS_REMOTE_PATH_STYLE": "true", "MLFS_REMOTE_ACCOUNT": "envacct", "MLFS_REMOTE_TIMEOUT": "7s"} {
		env[k] = v
	}
	if c, err := Load(envOf(env)); err != nil || c.CacheSize != "1GiB" || c.Store != "/from/env" {
		t.Fatalf("the settings in effect: %+v, %v; want the environment's", c, err)
	}
	c, err := LoadFile(envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	c.Remotes = map[string]Remote{"lab": {URL: "file:///srv/lab"}}
	must(t, c.Save())
	b, err := os.ReadFile(file)
	must(t, err)
	for _, v := range []string{"1GiB", "/from/env", "/mnt/env", "3m", "s3://env/p", "127.0.0.1", "eu-west-9", "path_style", "envacct", "7s"} {
		if strings.Contains(string(b), v) {
			t.Errorf("the saved config holds %q, from the environment:\n%s", v, b)
		}
	}
	if !strings.Contains(string(b), `cache_size = "10GiB"`) || !strings.Contains(string(b), "file:///srv/lab") {
		t.Errorf("the saved config lost the file's cache_size or the edit:\n%s", b)
	}
}

// An edit saves no default: a setting the file never had stays unset,
// and follows the default (here the data folder) wherever it goes.
func TestEditLeavesDefaultsOut(t *testing.T) {
	d := t.TempDir()
	env := map[string]string{"XDG_CONFIG_HOME": d + "/c", "XDG_DATA_HOME": d + "/d", "XDG_CACHE_HOME": d + "/k"}
	c, err := LoadFile(envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != "" || c.Mount != "" || c.Paths.ConfigFile != d+"/c/mlfs/config.toml" {
		t.Fatalf("LoadFile without a file: %+v; want no settings, and the paths", c)
	}
	c.Remote = "team"
	c.Remotes = map[string]Remote{"team": {URL: "s3://bkt/team"}}
	must(t, c.Save())
	b, err := os.ReadFile(c.Paths.ConfigFile)
	must(t, err)
	for _, key := range []string{"store", "mount", "cache_size", "runs_killed_after"} {
		if strings.Contains(string(b), key+" =") {
			t.Errorf("the saved config sets %s, a default:\n%s", key, b)
		}
	}
	env["XDG_DATA_HOME"] = d + "/moved"
	c, err = Load(envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != d+"/moved/mlfs/store" || c.Mount != "/mnt/ml" || c.Remote != "team" {
		t.Fatalf("after the edit: store %q, mount %q, remote %q; want the defaults and the edit", c.Store, c.Mount, c.Remote)
	}
}

// An edit changes what it edits and keeps every other key of the file,
// whatever the environment says.
func TestEditKeepsTheOtherKeys(t *testing.T) {
	d := t.TempDir()
	env := map[string]string{"HOME": d, "MLFS_STORE": "/from/env", "MLFS_CACHE_SIZE": "1GiB", "MLFS_REMOTE": "s3://env/p",
		"MLFS_REMOTE_TIMEOUT": "7s"}
	file := filepath.Join(d, ".config/mlfs/config.toml")
	must(t, os.MkdirAll(filepath.Dir(file), 0o755))
	must(t, os.WriteFile(file, []byte(`store = "/srv/store"
remote = "team"
mount = "/mnt/data"
cache_size = "10%"
runs_killed_after = "20m"

[remotes.team]
url = "s3://ml-data/team"
endpoint = "http://minio:9000"
region = "eu-west-1"
path_style = true
timeout = "1m"

[remotes.az]
url = "az://mlc/p"
account = "acct"
`), 0o644))
	// The file as written, read with no MLFS_* variable.
	fileEnv := envOf(map[string]string{"HOME": d})
	before, err := LoadFile(fileEnv)
	if err != nil {
		t.Fatal(err)
	}
	if before.Store != "/srv/store" || before.CacheSize != "10%" || len(before.Remotes) != 2 {
		t.Fatalf("the file as written: %+v", before)
	}
	c, err := LoadFile(envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	c.Remotes["lab"] = Remote{URL: "file:///srv/lab"}
	must(t, c.Save())
	after, err := LoadFile(fileEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := *before
	want.Remotes = maps.Clone(before.Remotes)
	want.Remotes["lab"] = Remote{URL: "file:///srv/lab"}
	if !reflect.DeepEqual(*after, want) {
		t.Fatalf("after adding a remote:\n got %+v\nwant %+v", *after, want)
	}

	// Removing one keeps the rest too.
	if _, err := after.RemoveRemote("az"); err != nil {
		t.Fatal(err)
	}
	must(t, after.Save())
	again, err := LoadFile(fileEnv)
	if err != nil {
		t.Fatal(err)
	}
	delete(want.Remotes, "az")
	if !reflect.DeepEqual(*again, want) {
		t.Fatalf("after removing a remote:\n got %+v\nwant %+v", *again, want)
	}
	// And the settings in effect are still the environment's over the file's.
	eff, err := Load(envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := eff.RemoteSettings(); eff.Store != "/from/env" || eff.CacheSize != "1GiB" || eff.Mount != "/mnt/data" ||
		err != nil || r.URL != "s3://env/p" || r.Timeout != "7s" {
		t.Fatalf("the settings in effect after the edits: %+v, remote %+v, %v", eff, r, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
