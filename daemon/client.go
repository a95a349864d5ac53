package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/repo"
	"github.com/mlfs/mlfs/tracking"
)

// ErrNoDaemon means no daemon listens on the socket: the file is missing
// or connecting is refused (a daemon that died). The caller opens the
// store itself then.
var ErrNoDaemon = errors.New("no mlfs daemon is running")

// Error is an error the daemon reported. Error() is the daemon's message,
// the same text the local call gives, and errors.Is matches the sentinels
// of its kind (see Is), so callers handle it as they would the local one.
type Error struct {
	Kind    ErrorKind
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is matches the sentinels of e's kind: not found matches
// repo.ErrNoVersion, cas.ErrNotFound and fs.ErrNotExist; exists matches
// cas.ErrExists and fs.ErrExist; denied fs.ErrPermission; no space
// syscall.ENOSPC; canceled context.Canceled.
func (e *Error) Is(target error) bool {
	switch e.Kind {
	case KindNotFound:
		return target == repo.ErrNoVersion || target == cas.ErrNotFound || target == fs.ErrNotExist || target == tracking.ErrNoRun
	case KindBusy:
		return target == tracking.ErrBusy
	case KindExists:
		return target == cas.ErrExists || target == fs.ErrExist
	case KindDenied:
		return target == fs.ErrPermission
	case KindNoSpace:
		return target == syscall.ENOSPC
	case KindCanceled:
		return target == context.Canceled
	}
	return false
}

// Client talks to a daemon. Its methods are those of repo.Repo that the
// commands use, with the same arguments, results and error texts; the
// contexts cancel the daemon's operation too. Paths may be relative: they
// are resolved against this process's working folder before sending.
// A Client is safe for concurrent use.
type Client struct {
	socket string
	hc     *http.Client
	info   wireInfo
}

// Dial connects to the daemon at socketPath and checks that it speaks
// this API. It returns ErrNoDaemon when nothing listens there, and other
// errors when a daemon is there but cannot be used (it refuses this user,
// it does not answer).
func Dial(socketPath string) (*Client, error) {
	if len(socketPath) > maxSocketPath {
		return nil, ErrNoDaemon // no daemon can listen there
	}
	var d net.Dialer
	c := &Client{socket: socketPath, hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socketPath)
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.call(ctx, "GET", "/v1/ping", nil, nil, &c.info)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		c.Close()
		return nil, ErrNoDaemon
	case errors.Is(err, syscall.EACCES):
		c.Close()
		return nil, fmt.Errorf("daemon socket %s: %w: a daemon of another user serves there; run mlfs as that user, or set XDG_DATA_HOME to your own folder", socketPath, err)
	case err != nil:
		c.Close()
		var e *Error
		if errors.As(err, &e) {
			return nil, err
		}
		return nil, fmt.Errorf("daemon at %s does not answer: %w (stop it, or remove the socket if it is a leftover)", socketPath, err)
	case c.info.API != apiVersion:
		c.Close()
		return nil, fmt.Errorf("daemon at %s speaks API version %d, this mlfs version %d; restart the daemon with this mlfs", socketPath, c.info.API, apiVersion)
	}
	return c, nil
}

// Close releases the client's idle connections. The daemon and its store
// stay open.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// Socket is the path the client talks to.
func (c *Client) Socket() string { return c.socket }

// PID is the daemon's process id.
func (c *Client) PID() int { return c.info.PID }

// UID is the user id the daemon runs as.
func (c *Client) UID() int { return c.info.UID }

// Store is the folder of the store the daemon serves.
func (c *Client) Store() string { return c.info.Store }

// Add is repo.Repo.Add through the daemon: opts.Progress and opts.Warn
// are called from the streamed events, in this goroutine.
func (c *Client) Add(ctx context.Context, ref repo.Ref, path string, opts repo.AddOptions) (*repo.AddResult, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("add %s: %w", path, err)
	}
	var out wireAddResult
	err = c.call(ctx, "POST", "/v1/add", wireAddRequest{Ref: ref.String(), Path: abs, Message: opts.Message},
		func(ev wireEvent) {
			switch {
			case ev.Progress != nil && opts.Progress != nil:
				opts.Progress(ev.Progress.Bytes, ev.Progress.Files)
			case ev.Warning != nil && opts.Warn != nil:
				opts.Warn(ev.Warning.Path, ev.Warning.Reason)
			}
		}, &out)
	if err != nil {
		return nil, err
	}
	v, err := versionFromWire(out.Version)
	if err != nil {
		return nil, err
	}
	return &repo.AddResult{VersionInfo: v, NewBytes: out.NewBytes, NewChunks: out.NewChunks,
		Reused: out.Reused, Skipped: out.Skipped}, nil
}

// Versions is repo.Repo.Versions through the daemon.
func (c *Client) Versions(ctx context.Context, dataset string) ([]repo.VersionInfo, error) {
	var out []wireVersion
	if err := c.call(ctx, "GET", "/v1/versions?"+url.Values{"dataset": {dataset}}.Encode(), nil, nil, &out); err != nil {
		return nil, err
	}
	var vs []repo.VersionInfo
	for _, w := range out {
		v, err := versionFromWire(w)
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, nil
}

// Resolve is repo.Repo.Resolve through the daemon.
func (c *Client) Resolve(ctx context.Context, ref repo.Ref) (repo.VersionInfo, error) {
	var out wireVersion
	if err := c.call(ctx, "GET", "/v1/resolve?"+url.Values{"ref": {ref.String()}}.Encode(), nil, nil, &out); err != nil {
		return repo.VersionInfo{}, err
	}
	return versionFromWire(out)
}

// Export is repo.Repo.Export through the daemon; opts.Progress is called
// from the streamed events, in this goroutine. On error the VersionInfo
// is zero (the local call may return the resolved version).
func (c *Client) Export(ctx context.Context, ref repo.Ref, dir string, opts repo.ExportOptions) (repo.VersionInfo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return repo.VersionInfo{}, fmt.Errorf("export %s: %w", ref, err)
	}
	var out wireVersion
	err = c.call(ctx, "POST", "/v1/export", wireExportRequest{Ref: ref.String(), Dir: abs}, func(ev wireEvent) {
		if ev.Progress != nil && opts.Progress != nil {
			opts.Progress(ev.Progress.Bytes, ev.Progress.Files)
		}
	}, &out)
	if err != nil {
		return repo.VersionInfo{}, err
	}
	return versionFromWire(out)
}

// Diff is repo.Repo.Diff through the daemon.
func (c *Client) Diff(ctx context.Context, a, b repo.Ref) ([]repo.Change, error) {
	var out []wireChange
	q := url.Values{"a": {a.String()}, "b": {b.String()}}
	if err := c.call(ctx, "GET", "/v1/diff?"+q.Encode(), nil, nil, &out); err != nil {
		return nil, err
	}
	var changes []repo.Change
	for _, w := range out {
		ch, err := changeFromWire(w)
		if err != nil {
			return nil, err
		}
		changes = append(changes, ch)
	}
	return changes, nil
}

// Fsck is repo.Repo.Fsck through the daemon; report is called for each
// problem as it arrives, in this goroutine. Problem.Err carries the
// daemon's message only.
func (c *Client) Fsck(ctx context.Context, report func(repo.Problem)) (repo.FsckStats, error) {
	var out wireFsckStats
	var perr error
	err := c.call(ctx, "GET", "/v1/fsck", nil, func(ev wireEvent) {
		if ev.Problem == nil || perr != nil {
			return
		}
		id, err := parseID(ev.Problem.ID)
		if err != nil {
			perr = err
			return
		}
		if report != nil {
			report(repo.Problem{ID: id, What: ev.Problem.What, Where: ev.Problem.Where, Err: errors.New(ev.Problem.Error)})
		}
	}, &out)
	if err == nil {
		err = perr
	}
	return repo.FsckStats{Versions: out.Versions, Runs: out.Runs, Trees: out.Trees, Files: out.Files,
		Chunks: out.Chunks, Bytes: out.Bytes, Problems: out.Problems}, err
}

// GC is repo.Repo.GC through the daemon.
func (c *Client) GC(ctx context.Context, dryRun bool) (repo.GCStats, error) {
	var out wireGCStats
	err := c.call(ctx, "POST", "/v1/gc", wireGCRequest{DryRun: dryRun}, nil, &out)
	return repo.GCStats{Reachable: out.Reachable, Removed: out.Removed, RemovedBytes: out.RemovedBytes,
		PacksDeleted: out.PacksDeleted, PacksRewritten: out.PacksRewritten, BytesFreed: out.BytesFreed, Temps: out.Temps}, err
}

// RemoveVersion deletes a version's name, as repo.Repo.RemoveVersion.
func (c *Client) RemoveVersion(ctx context.Context, ref repo.Ref) error {
	return c.call(ctx, "POST", "/v1/version/rm", wireRefRequest{Ref: ref.String()}, nil, &struct{}{})
}

// Checkout resets a working tree, as Repo.Checkout.
func (c *Client) Checkout(ctx context.Context, ref repo.Ref, force bool) (repo.VersionInfo, error) {
	var out wireVersion
	if err := c.call(ctx, "POST", "/v1/checkout", wireCheckoutRequest{Ref: ref.String(), Force: force}, nil, &out); err != nil {
		return repo.VersionInfo{}, err
	}
	return versionFromWire(out)
}

// call sends one request and decodes the reply into result: a plain JSON
// reply, or a stream whose events go to onEvent before its result.
func (c *Client) call(ctx context.Context, method, route string, body any, onEvent func(wireEvent), result any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://mlfs"+route, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.lost(ctx, err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/x-ndjson" {
		return decodePlain(resp, result)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var ev wireEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("daemon reply: %w", err)
		}
		switch {
		case ev.Error != nil:
			return &Error{Kind: ev.Error.Kind, Message: ev.Error.Message}
		case ev.Result != nil:
			if err := json.Unmarshal(ev.Result, result); err != nil {
				return fmt.Errorf("daemon reply: %w", err)
			}
			return nil
		case onEvent != nil:
			onEvent(ev)
		}
	}
	err = sc.Err()
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return c.lost(ctx, err)
}

// lost explains a request that got no answer.
func (c *Client) lost(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("daemon at %s: %w", c.socket, err)
}

func decodePlain(resp *http.Response, result any) error {
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("daemon reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error *wireError `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == nil {
			return fmt.Errorf("daemon reply: %s: %.200q", resp.Status, b)
		}
		return &Error{Kind: e.Error.Kind, Message: e.Error.Message}
	}
	if err := json.Unmarshal(b, result); err != nil {
		return fmt.Errorf("daemon reply: %w", err)
	}
	return nil
}

func parseID(s string) (cas.ID, error) {
	if s == "" {
		return cas.ID{}, nil
	}
	id, err := cas.ParseID(s)
	if err != nil {
		return id, fmt.Errorf("daemon reply: %w", err)
	}
	return id, nil
}

func versionFromWire(w wireVersion) (repo.VersionInfo, error) {
	ref, err := repo.ParseRef(w.Ref)
	if err != nil {
		return repo.VersionInfo{}, fmt.Errorf("daemon reply: %w", err)
	}
	v := repo.VersionInfo{Ref: ref, Version: &object.Version{Dataset: w.Dataset, Time: w.Time,
		Host: w.Host, User: w.User, Message: w.Message, Files: w.Files, Bytes: w.Bytes}}
	for _, f := range []struct {
		dst *cas.ID
		s   string
	}{{&v.ID, w.ID}, {&v.Tree, w.Tree}, {&v.Parent, w.Parent}} {
		if *f.dst, err = parseID(f.s); err != nil {
			return repo.VersionInfo{}, err
		}
	}
	return v, nil
}

func changeFromWire(w wireChange) (repo.Change, error) {
	c := repo.Change{Path: w.Path, OldSize: w.OldSize, NewSize: w.NewSize}
	switch w.Kind {
	case string(rune(repo.Added)), string(rune(repo.Removed)), string(rune(repo.Modified)):
		c.Kind = repo.ChangeKind(w.Kind[0])
	default:
		return c, fmt.Errorf("daemon reply: change kind %q", w.Kind)
	}
	for _, t := range []object.EntryType{object.TypeFile, object.TypeDir, object.TypeSymlink} {
		if t.String() == w.Type {
			c.Type = t
			return c, nil
		}
	}
	return c, fmt.Errorf("daemon reply: entry type %q", w.Type)
}

// Push is Repo.Push through the daemon.
func (c *Client) Push(ctx context.Context, refs []repo.Ref, progress func(bytes, files int64)) (SyncResult, error) {
	return c.sync(ctx, "/v1/push", refs, progress)
}

// Pull is Repo.Pull through the daemon.
func (c *Client) Pull(ctx context.Context, refs []repo.Ref, progress func(bytes, files int64)) (SyncResult, error) {
	return c.sync(ctx, "/v1/pull", refs, progress)
}

func (c *Client) sync(ctx context.Context, route string, refs []repo.Ref, progress func(bytes, files int64)) (SyncResult, error) {
	in := wireSyncRequest{Refs: []string{}}
	for _, r := range refs {
		if r.Version == "" {
			in.Refs = append(in.Refs, r.Dataset)
		} else {
			in.Refs = append(in.Refs, r.String())
		}
	}
	var out SyncResult
	err := c.call(ctx, "POST", route, in, func(ev wireEvent) {
		if ev.Progress != nil && progress != nil {
			progress(ev.Progress.Bytes, ev.Progress.Files)
		}
	}, &out)
	return out, err
}
