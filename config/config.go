// Package config finds mlfs's files and reads its settings.
//
// Settings come from, in increasing precedence: built-in defaults, the TOML
// file $XDG_CONFIG_HOME/mlfs/config.toml, MLFS_* environment variables, and
// command-line flags (applied by cmd/mlfs). State lives under
// $XDG_DATA_HOME/mlfs and the chunk cache under $XDG_CACHE_HOME/mlfs, so
// setting those three variables is all it takes to run a second, fully
// separate instance. With no file and no variables, mlfs works on a local
// store in the data folder.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the content of config.toml.
type Config struct {
	// Store is the folder of the local store. Default: <data>/store.
	Store string `toml:"store,omitempty"`
	// Remote is the shared remote the daemon publishes to and reads from:
	// the name of one of Remotes, or a URL (file://, s3://, gs://, az://);
	// empty for none.
	Remote string `toml:"remote,omitempty"`
	// Remotes are the named remotes (mlfs remote add).
	Remotes map[string]Remote `toml:"remotes,omitempty"`
	// Mount is where the daemon mounts; default /mnt/ml.
	Mount string `toml:"mount,omitempty"`
	// CacheSize bounds the local chunk cache ("20GiB", "10%"); empty for
	// the default.
	CacheSize string `toml:"cache_size,omitempty"`
	// RunsKilledAfter is how long a running run may have no writer before
	// it is marked killed ("10m", the default; Go duration syntax).
	RunsKilledAfter string `toml:"runs_killed_after,omitempty"`

	// Paths derived from the environment; not read from the file.
	Paths Paths `toml:"-"`
	// remoteEnv holds the MLFS_REMOTE_* overrides.
	remoteEnv Remote
}

// Remote says where a remote store is and how to reach it. Credentials are
// never part of it: they come from each cloud SDK's own chain.
type Remote struct {
	// URL is s3://bucket/prefix, gs://bucket/prefix, az://container/prefix
	// or file:///path.
	URL string `toml:"url"`
	// Endpoint is the service's URL for S3-compatible stores, emulators
	// and private endpoints; empty for the cloud's own.
	Endpoint string `toml:"endpoint,omitempty"`
	// Region is the S3 region (default us-east-1).
	Region string `toml:"region,omitempty"`
	// PathStyle addresses S3 buckets as endpoint/bucket (most
	// S3-compatible servers need it).
	PathStyle bool `toml:"path_style,omitempty"`
	// Account is the Azure storage account (else $AZURE_STORAGE_ACCOUNT or
	// the connection string's).
	Account string `toml:"account,omitempty"`
	// Timeout bounds one request ("30s", the default; Go duration syntax).
	// A request that takes longer is retried, like a failed one.
	Timeout string `toml:"timeout,omitempty"`
}

// DefaultRemoteTimeout bounds one request to a remote: long enough for a
// 16 MiB pack at 1 MiB/s, short enough that a stalled connection is cut.
const DefaultRemoteTimeout = 30 * time.Second

// RequestTimeout parses Timeout (DefaultRemoteTimeout if empty).
func (r Remote) RequestTimeout() (time.Duration, error) {
	if r.Timeout == "" {
		return DefaultRemoteTimeout, nil
	}
	d, err := time.ParseDuration(r.Timeout)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("remote timeout %q: want a positive duration such as 30s", r.Timeout)
	}
	return d, nil
}

// Paths are where mlfs keeps its files.
type Paths struct {
	ConfigFile string // $XDG_CONFIG_HOME/mlfs/config.toml
	DataDir    string // $XDG_DATA_HOME/mlfs
	CacheDir   string // $XDG_CACHE_HOME/mlfs
	IndexDir   string // <data>/index
	Socket     string // <data>/mlfs.sock
}

// Env is the environment: os.Getenv in production, a map in tests.
type Env func(string) string

func xdg(env Env, name, fallback string) (string, error) {
	if v := env(name); v != "" {
		if !filepath.IsAbs(v) {
			return "", fmt.Errorf("$%s=%q is not an absolute path", name, v)
		}
		return v, nil
	}
	home := env("HOME")
	if home == "" {
		return "", fmt.Errorf("neither $%s nor $HOME is set; set one of them", name)
	}
	return filepath.Join(home, fallback), nil
}

// Locate derives the paths from the environment.
func Locate(env Env) (Paths, error) {
	cfg, err := xdg(env, "XDG_CONFIG_HOME", ".config")
	if err != nil {
		return Paths{}, err
	}
	data, err := xdg(env, "XDG_DATA_HOME", ".local/share")
	if err != nil {
		return Paths{}, err
	}
	cache, err := xdg(env, "XDG_CACHE_HOME", ".cache")
	if err != nil {
		return Paths{}, err
	}
	p := Paths{
		ConfigFile: filepath.Join(cfg, "mlfs", "config.toml"),
		DataDir:    filepath.Join(data, "mlfs"),
		CacheDir:   filepath.Join(cache, "mlfs"),
	}
	p.IndexDir = filepath.Join(p.DataDir, "index")
	p.Socket = filepath.Join(p.DataDir, "mlfs.sock")
	return p, nil
}

// Load reads the config file (if any) and applies MLFS_* variables and
// defaults: the settings in effect. Commands that change the file use
// LoadFile instead, since Save writes every value a Config holds.
func Load(env Env) (*Config, error) {
	c, err := LoadFile(env)
	if err != nil {
		return nil, err
	}
	paths := c.Paths
	var fromEnv []string
	for name, field := range map[string]*string{
		"MLFS_STORE": &c.Store, "MLFS_REMOTE": &c.Remote, "MLFS_MOUNT": &c.Mount, "MLFS_CACHE_SIZE": &c.CacheSize,
		"MLFS_RUNS_KILLED_AFTER": &c.RunsKilledAfter,
	} {
		if v := env(name); v != "" {
			*field = v
			fromEnv = append(fromEnv, name)
		}
	}
	c.remoteEnv = Remote{Endpoint: env("MLFS_REMOTE_ENDPOINT"), Region: env("MLFS_REMOTE_REGION"), Account: env("MLFS_REMOTE_ACCOUNT"),
		Timeout: env("MLFS_REMOTE_TIMEOUT")}
	if v := env("MLFS_REMOTE_PATH_STYLE"); v != "" {
		ps, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("config: $MLFS_REMOTE_PATH_STYLE=%q: want true or false", v)
		}
		c.remoteEnv.PathStyle = ps
	}
	if c.Store == "" {
		c.Store = filepath.Join(paths.DataDir, "store")
	}
	if c.Mount == "" {
		c.Mount = "/mnt/ml"
	}
	if err := c.Check(); err != nil {
		// Name the variable when a bad value came from one, not the file.
		sort.Strings(fromEnv)
		for _, name := range fromEnv {
			key := strings.ToLower(strings.TrimPrefix(name, "MLFS_"))
			if strings.Contains(err.Error(), key) {
				return nil, fmt.Errorf("%w (the value comes from $%s)", err, name)
			}
		}
		return nil, err
	}
	return c, nil
}

// LoadFile reads the config file alone, strictly, as Load does, but with
// neither MLFS_* variables nor defaults applied, and unchecked (so that an
// edit can repair it): the values the user wrote, and nothing else. It is
// for the commands that edit the file (mlfs remote add, mlfs remote rm):
// they change what they edit and Save the rest as it was, where saving a
// Config from Load would make permanent whatever the environment and the
// defaults said that day. A missing file is an empty config; Paths is set
// either way.
func LoadFile(env Env) (*Config, error) {
	paths, err := Locate(env)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c := &Config{Paths: paths}
	b, err := os.ReadFile(paths.ConfigFile)
	switch {
	case err == nil:
		if err := Parse(b, c); err != nil {
			return nil, fmt.Errorf("config %s: %w", paths.ConfigFile, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// Parse decodes a config file strictly: unknown keys are errors, so a typo
// does not silently fall back to a default.
func Parse(b []byte, c *Config) error {
	md, err := toml.Decode(string(b), c)
	if err != nil {
		return err
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("unknown setting %s (known: store, remote, mount, cache_size, runs_killed_after, and remotes.NAME.{url, endpoint, region, path_style, account, timeout})", strings.Join(keys, ", "))
	}
	return nil
}

// Check validates the settings.
func (c *Config) Check() error {
	if c.Store != "" && !filepath.IsAbs(c.Store) {
		return fmt.Errorf("config: store %q must be an absolute path", c.Store)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Remotes)) {
		if err := CheckRemoteName(name); err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if err := CheckRemote(c.Remotes[name].URL); err != nil {
			return fmt.Errorf("config: remotes.%s: %w", name, err)
		}
	}
	if _, err := c.RemoteSettings(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if c.CacheSize != "" {
		if _, _, err := ParseSize(c.CacheSize); err != nil {
			return fmt.Errorf("config: cache_size: %w", err)
		}
	}
	if _, err := c.KilledAfter(); err != nil {
		return err
	}
	return nil
}

// KilledAfter parses RunsKilledAfter (0 for the default).
func (c *Config) KilledAfter() (time.Duration, error) {
	if c.RunsKilledAfter == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(c.RunsKilledAfter)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("config: runs_killed_after %q: want a positive duration such as 10m or 30s", c.RunsKilledAfter)
	}
	return d, nil
}

// RemoteSettings returns the remote the daemon uses: the one named by
// Remote, or Remote itself if it is a URL. MLFS_REMOTE_ENDPOINT,
// MLFS_REMOTE_REGION, MLFS_REMOTE_PATH_STYLE, MLFS_REMOTE_ACCOUNT and
// MLFS_REMOTE_TIMEOUT,
// applied by Load, override its settings. The URL is empty when no remote
// is set.
func (c *Config) RemoteSettings() (r Remote, err error) {
	if c.Remote == "" {
		return Remote{}, nil
	}
	if rc, ok := c.Remotes[c.Remote]; ok {
		r = rc
	} else if strings.Contains(c.Remote, "://") {
		if err := CheckRemote(c.Remote); err != nil {
			return Remote{}, err
		}
		r = Remote{URL: c.Remote}
	} else {
		return Remote{}, fmt.Errorf("remote %q: no such remote (mlfs remote ls lists them; mlfs remote add NAME URL adds one)", c.Remote)
	}
	o := c.remoteEnv
	if o.Endpoint != "" {
		r.Endpoint = o.Endpoint
	}
	if o.Region != "" {
		r.Region = o.Region
	}
	if o.PathStyle {
		r.PathStyle = true
	}
	if o.Account != "" {
		r.Account = o.Account
	}
	if o.Timeout != "" {
		r.Timeout = o.Timeout
	}
	if _, err := r.RequestTimeout(); err != nil {
		return Remote{}, err
	}
	return r, nil
}

// ErrNoSuchRemote is returned by RemoveRemote for a name the config lacks.
var ErrNoSuchRemote = errors.New("no such remote")

// RemoveRemote forgets the named remote. If Remote names it (the daemon
// uses it), Remote is unset too, as git remote rm drops the settings that
// name the remote it removes: a config whose remote names no remote fails
// to load, which would stop every command. It reports whether Remote was
// unset. Save writes the change.
func (c *Config) RemoveRemote(name string) (unset bool, err error) {
	if _, ok := c.Remotes[name]; !ok {
		return false, fmt.Errorf("remote %s: %w", name, ErrNoSuchRemote)
	}
	delete(c.Remotes, name)
	if c.Remote != name {
		return false, nil
	}
	c.Remote = ""
	return true, nil
}

// CheckRemoteName validates the name of a remote.
func CheckRemoteName(name string) error {
	if name == "" || len(name) > 64 || strings.Contains(name, "://") {
		return fmt.Errorf("remote name %q: use 1 to 64 letters, digits, '.', '_' or '-'", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("remote name %q: use 1 to 64 letters, digits, '.', '_' or '-'", name)
		}
	}
	return nil
}

// CheckRemote validates a remote URL: its scheme, that it carries no
// credentials and no query, its path, and the name of its bucket (or Azure
// container) by that cloud's rules. Its errors never repeat credentials or
// a query the URL may carry.
func CheckRemote(remote string) error {
	u, err := url.Parse(remote)
	if err != nil || u.Host == "" && u.Scheme != "file" || u.Scheme == "file" && u.Path == "" {
		return fmt.Errorf("remote %q: want file:///path, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix", redact(remote, u))
	}
	if u.User != nil {
		return fmt.Errorf("remote %s: credentials do not belong in the URL; they come from the cloud's own settings (environment, profile, connection string)", redact(remote, u))
	}
	switch u.Scheme {
	case "file", "s3", "gs", "az":
		if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || u.Opaque != "" {
			// The query is left out: it may hold a signature or a SAS token.
			return fmt.Errorf("remote %s: settings go in the config (endpoint, region, path_style, account), not in the URL", redact(remote, u))
		}
		if u.Scheme == "file" && u.Host != "" {
			return fmt.Errorf("remote %s: a folder's URL is file:///absolute/path (three slashes)", u.Redacted())
		}
		for _, seg := range strings.Split(strings.Trim(u.Path, "/"), "/") {
			if seg == "." || seg == ".." || seg == "" && u.Path != "" && strings.Trim(u.Path, "/") != "" {
				return fmt.Errorf("remote %s: the path may not hold '.', '..' or empty segments", u.Redacted())
			}
		}
		if u.Scheme != "file" {
			if err := checkBucket(u.Scheme, u.Host); err != nil {
				return fmt.Errorf("remote %s: %w", u.Redacted(), err)
			}
		}
		return nil
	}
	return fmt.Errorf("remote %q: unknown scheme %q; want file, s3, gs or az", redact(remote, u), u.Scheme)
}

// checkBucket checks the name of a bucket (an Azure container) by the
// rules of its cloud, so that a name the cloud would refuse is named here
// rather than ending in a DNS or HTTP error.
func checkBucket(scheme, name string) error {
	if strings.Contains(name, ":") {
		return fmt.Errorf("bucket name %q holds ':'; a server's address (host:port) goes in the endpoint (--endpoint), and the bucket after the scheme", name)
	}
	switch scheme {
	case "s3":
		// https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
		const rule = "S3 takes 3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit, no '..', not an IP address"
		if len(name) < 3 || len(name) > 63 || !bucketChars(name, ".-") || !alnumEnds(name) ||
			strings.Contains(name, "..") || isIPv4(name) {
			return fmt.Errorf("bucket name %q: %s", name, rule)
		}
	case "gs":
		// https://cloud.google.com/storage/docs/buckets#naming
		const rule = "GCS takes 3 to 63 lowercase letters, digits, '-', '_' and '.' (up to 222 with dots, 63 between two), " +
			"starting and ending with a letter or digit, not an IP address, not starting with \"goog\" nor holding \"google\""
		if len(name) < 3 || len(name) > 222 || len(name) > 63 && !strings.Contains(name, ".") ||
			!bucketChars(name, "-_.") || !alnumEnds(name) || isIPv4(name) ||
			strings.HasPrefix(name, "goog") || strings.Contains(name, "google") {
			return fmt.Errorf("bucket name %q: %s", name, rule)
		}
		for _, part := range strings.Split(name, ".") {
			if part == "" || len(part) > 63 {
				return fmt.Errorf("bucket name %q: %s", name, rule)
			}
		}
	case "az":
		// https://learn.microsoft.com/rest/api/storageservices/naming-and-referencing-containers--blobs--and-metadata
		if name == "$root" || name == "$web" {
			return nil
		}
		if len(name) < 3 || len(name) > 63 || !bucketChars(name, "-") || !alnumEnds(name) || strings.Contains(name, "--") {
			return fmt.Errorf("container name %q: Azure takes 3 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit, no \"--\"", name)
		}
	}
	return nil
}

// bucketChars reports whether name holds only lowercase letters, digits
// and the characters of extra.
func bucketChars(name, extra string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

func alnumEnds(name string) bool {
	isAlnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	return name != "" && isAlnum(name[0]) && isAlnum(name[len(name)-1])
}

// isIPv4 reports whether name is written as an IPv4 address (192.168.5.4).
func isIPv4(name string) bool {
	parts := strings.Split(name, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 255 || p == "" || p[0] == '+' || p[0] == '-' {
			return false
		}
	}
	return true
}

// redact returns remote fit for a message: without whatever user
// information it holds, and without its query and fragment, which may hold
// a signature or a SAS token (u is its parse, nil if it does not parse).
func redact(remote string, u *url.URL) string {
	cut := ""
	if i := strings.IndexAny(remote, "?#"); i >= 0 {
		remote, cut = remote[:i], "?…"
		if u != nil {
			c := *u
			c.RawQuery, c.Fragment, c.ForceQuery, c.RawFragment = "", "", false, ""
			u = &c
		}
	}
	if u != nil && u.User != nil {
		c := *u
		c.User = nil
		return c.String() + cut + " (credentials left out)"
	}
	if u == nil && strings.Contains(remote, "@") {
		return "(a malformed URL holding '@', left out in case it carries credentials)"
	}
	return remote + cut
}

// Save writes c to its config file, atomically: every setting c holds,
// and only those (empty ones are left out). To change the file and keep
// the rest of it as the user wrote it, edit a Config from LoadFile; one
// from Load also holds the defaults and the MLFS_* values, which Save
// would write as if the user had (mlfs init does so on purpose: it writes
// the settings in effect). The MLFS_REMOTE_* overrides are never written.
//
// The file is rewritten, not patched: the TOML library
// (github.com/BurntSushi/toml) decodes into a struct and encodes one, and
// keeps neither comments nor the order of keys, so the user's comments
// are lost; the values all survive, as unknown keys are refused on load.
func (c *Config) Save() error {
	var sb strings.Builder
	sb.WriteString("# mlfs configuration; see the README for every setting.\n")
	if err := toml.NewEncoder(&sb).Encode(c); err != nil {
		return err
	}
	path := c.Paths.ConfigFile
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(sb.String()), 0o644); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// ParseSize parses "512MiB", "20GB", "1073741824" or "10%". It returns
// either a byte count or a percentage (of the disk), never both.
func ParseSize(s string) (bytes int64, percent float64, err error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v <= 0 || v > 100 {
			return 0, 0, fmt.Errorf("size %q: a percentage must be in (0, 100]", s)
		}
		return 0, v, nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
	}
	mult := 1.0
	for _, u := range units {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || v*mult > 1<<62 {
		return 0, 0, fmt.Errorf("size %q: want a number with an optional unit (KiB, MiB, GiB, TiB, KB, MB, GB, TB) or a percentage", s)
	}
	return int64(v * mult), 0, nil
}
