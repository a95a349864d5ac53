package daemon

// The store API: the commands of SPEC section 5 that need no mount, served
// as HTTP/JSON over the daemon's Unix socket so that the CLI can use the
// store (and the badger index only one process may open) while the daemon
// holds it.
//
// Routes, all under the version prefix /v1:
//
//	GET  /v1/ping                       → info
//	POST /v1/add      {ref,path,message} → stream: progress, warning ...; result: addResult
//	GET  /v1/versions?dataset=D         → [version]
//	GET  /v1/resolve?ref=D@V            → version
//	POST /v1/export   {ref,dir}          → stream: progress ...; result: version
//	GET  /v1/diff?a=D@A&b=D@B           → [change]
//	GET  /v1/fsck                       → stream: problem ...; result: fsckStats
//	POST /v1/gc       {dry_run}          → gcStats
//	POST /v1/push     {refs}             → stream: progress ...; result: syncResult
//	POST /v1/pull     {refs}             → stream: progress ...; result: syncResult
//	GET  /metrics                        → Prometheus text: the store's requests, bytes, latency
//
// A plain reply is one JSON value with status 200, or {"error":{kind,
// message}} with a status that matches the kind. A stream (content type
// application/x-ndjson) is one JSON object a line, each with one field
// set; the last line holds "result" or "error". Paths are absolute: the
// daemon's working folder means nothing to the caller.
//
// The request's context is the operation's: when the client goes away
// (Ctrl-C), net/http cancels it and the operation stops, leaving what a
// canceled local call leaves.
//
// # Who may call
//
// The socket is 0600, and every connection's peer is checked with
// SO_PEERCRED: only the daemon's own uid and root are served. add and
// export read and write paths in the daemon's name, which may be root's,
// so they are served only to the daemon's own uid: anything else would let
// a caller read or write files it could not itself.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/repo"
	"github.com/mlfs/mlfs/tracking"
)

// apiVersion is the version of the routes and messages; the prefix of
// every route is "/v1".
const apiVersion = 1

// ErrorKind classifies an API error, so that a client can rebuild an error
// that errors.Is matches like the local one (see Error).
type ErrorKind string

const (
	KindNotFound ErrorKind = "not_found" // no such version, object or path
	KindExists   ErrorKind = "exists"    // the version or path exists already
	KindInvalid  ErrorKind = "invalid"   // a malformed request or name
	KindDenied   ErrorKind = "denied"    // the caller may not do this
	KindNoSpace  ErrorKind = "no_space"  // ENOSPC: the CLI adds advice for it
	KindCanceled ErrorKind = "canceled"  // the operation was canceled
	KindBusy     ErrorKind = "busy"      // in use (a run with open files)
	KindOther    ErrorKind = "other"
)

// Serve answers API requests on ln with r until ctx is done, then cancels
// the operations still running, waits up to 10 seconds for them to end,
// and returns nil. It closes ln (for a listener from Listen, that removes
// the socket) but not r, which the caller owns. The error is non-nil only
// when serving failed.
func Serve(ctx context.Context, ln net.Listener, r *Repo, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{ctx: ctx, r: r, log: log, uid: os.Getuid()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ping", s.ping)
	mux.HandleFunc("POST /v1/add", s.add)
	mux.HandleFunc("GET /v1/versions", s.versions)
	mux.HandleFunc("GET /v1/resolve", s.resolve)
	mux.HandleFunc("POST /v1/export", s.export)
	mux.HandleFunc("GET /v1/diff", s.diff)
	mux.HandleFunc("GET /v1/fsck", s.fsck)
	mux.HandleFunc("POST /v1/gc", s.gc)
	mux.HandleFunc("POST /v1/version/rm", s.removeVersion)
	mux.HandleFunc("POST /v1/checkout", s.checkout)
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("POST /v1/cache/purge", s.purgeCache)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.r.Metrics, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /v1/push", s.push)
	mux.HandleFunc("POST /v1/pull", s.pull)
	s.runRoutes(mux)
	// Profiles, for finding where a slow daemon spends its time; the
	// socket admits only its owner.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		s.fail(w, invalid(fmt.Errorf("no route %s %s; this daemon serves API version %d", req.Method, req.URL.Path, apiVersion)))
	})
	srv := &http.Server{
		Handler:           s.guard(mux),
		ConnContext:       withPeer,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	// Every request context derives from ctx, so the operations are
	// canceled already; Shutdown waits for their handlers to return.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		log.Warn("operations did not stop within 10s; closing their connections", "err", err)
		srv.Close()
	}
	<-errc
	return nil
}

type server struct {
	ctx context.Context // Serve's: done means the daemon is stopping
	r   *Repo
	log *slog.Logger
	uid int
}

// peer is the process at the other end of a connection.
type peer struct {
	uid, pid int
	err      error // why uid is unknown
}

type peerKey struct{}

// withPeer records the connection's peer credentials in its context.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	p := peer{uid: -1, pid: -1}
	sc, ok := c.(syscall.Conn)
	if !ok {
		p.err = fmt.Errorf("%T is not a Unix socket", c)
		return context.WithValue(ctx, peerKey{}, p)
	}
	raw, err := sc.SyscallConn()
	if err == nil {
		cerr := raw.Control(func(fd uintptr) {
			var u *unix.Ucred
			if u, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
				p.uid, p.pid = int(u.Uid), int(u.Pid)
			}
		})
		err = errors.Join(err, cerr)
	}
	if err != nil {
		p.err = fmt.Errorf("SO_PEERCRED: %w", err)
	}
	return context.WithValue(ctx, peerKey{}, p)
}

func peerOf(ctx context.Context) peer {
	p, ok := ctx.Value(peerKey{}).(peer)
	if !ok {
		return peer{uid: -1, pid: -1, err: errors.New("no peer credentials")}
	}
	return p
}

// guard serves only the daemon's uid and root.
func (s *server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p := peerOf(req.Context())
		switch {
		case p.err != nil:
			s.log.Warn("refused a caller of unknown uid", "err", p.err)
			s.fail(w, denied(fmt.Errorf("mlfs daemon: cannot tell who is calling (%v); only uid %d and root may use it", p.err, s.uid)))
		case p.uid != s.uid && p.uid != 0:
			s.log.Warn("refused a caller", "uid", p.uid, "pid", p.pid)
			who := fmt.Sprintf("uid %d and root", s.uid)
			if s.uid == 0 {
				who = "root"
			}
			s.fail(w, denied(fmt.Errorf("mlfs daemon: uid %d may not use this daemon; it serves only %s", p.uid, who)))
		default:
			next.ServeHTTP(w, req)
		}
	})
}

// ownPaths refuses add and export to callers other than the daemon's uid:
// the daemon would open the caller's paths with its own rights.
func (s *server) ownPaths(req *http.Request, op string) error {
	if p := peerOf(req.Context()); p.uid != s.uid {
		return denied(fmt.Errorf("%s: the daemon runs as uid %d and opens paths with that uid's rights, so it does this only for uid %d (you are uid %d); run mlfs as that user", op, s.uid, s.uid, p.uid))
	}
	return nil
}

// The messages. Ids are 64 hex digits; times are nanoseconds since the
// Unix epoch.

type wireInfo struct {
	API   int    `json:"api"`
	PID   int    `json:"pid"`
	UID   int    `json:"uid"`
	Store string `json:"store"`
}

type wireError struct {
	Kind    ErrorKind `json:"kind"`
	Message string    `json:"message"`
}

type wireVersion struct {
	Ref     string `json:"ref"` // dataset@version
	ID      string `json:"id"`
	Dataset string `json:"dataset"`
	Tree    string `json:"tree"`
	Parent  string `json:"parent,omitempty"`
	Time    int64  `json:"time"`
	Host    string `json:"host"`
	User    string `json:"user"`
	Message string `json:"message,omitempty"`
	Files   int64  `json:"files"`
	Bytes   int64  `json:"bytes"`
}

type wireAddRequest struct {
	Ref     string `json:"ref"`
	Path    string `json:"path"`
	Message string `json:"message,omitempty"`
}

type wireAddResult struct {
	Version   wireVersion `json:"version"`
	NewBytes  int64       `json:"new_bytes"`
	NewChunks int64       `json:"new_chunks"`
	Reused    int64       `json:"reused"`
	Skipped   int64       `json:"skipped"`
}

type wireExportRequest struct {
	Ref string `json:"ref"`
	Dir string `json:"dir"`
}

type wireChange struct {
	Kind    string `json:"kind"` // A, D or M
	Path    string `json:"path"`
	Type    string `json:"type"` // file, dir or symlink
	OldSize int64  `json:"old_size"`
	NewSize int64  `json:"new_size"`
}

type wireProblem struct {
	ID    string `json:"id"`
	What  string `json:"what"`
	Where string `json:"where"`
	Error string `json:"error"`
}

type wireFsckStats struct {
	Versions int64 `json:"versions"`
	Runs     int64 `json:"runs"`
	Trees    int64 `json:"trees"`
	Files    int64 `json:"files"`
	Chunks   int64 `json:"chunks"`
	Bytes    int64 `json:"bytes"`
	Problems int64 `json:"problems"`
}

type wireGCRequest struct {
	DryRun bool `json:"dry_run"`
}

type wireGCStats struct {
	Reachable      int64 `json:"reachable"`
	Removed        int64 `json:"removed"`
	RemovedBytes   int64 `json:"removed_bytes"`
	PacksDeleted   int   `json:"packs_deleted"`
	PacksRewritten int   `json:"packs_rewritten"`
	BytesFreed     int64 `json:"bytes_freed"`
	Temps          int   `json:"temps"`
}

type wireProgress struct {
	Bytes int64 `json:"bytes"`
	Files int64 `json:"files"`
}

type wireWarning struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// wireEvent is one line of a stream; exactly one field is set.
type wireEvent struct {
	Progress *wireProgress   `json:"progress,omitempty"`
	Warning  *wireWarning    `json:"warning,omitempty"`
	Problem  *wireProblem    `json:"problem,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    *wireError      `json:"error,omitempty"`
}

func versionToWire(v repo.VersionInfo) wireVersion {
	w := wireVersion{Ref: v.Ref.String(), ID: v.ID.String()}
	if v.Version != nil {
		w.Dataset, w.Tree, w.Time = v.Dataset, v.Tree.String(), v.Time
		w.Host, w.User, w.Message, w.Files, w.Bytes = v.Host, v.User, v.Message, v.Files, v.Bytes
		if !v.Parent.IsZero() {
			w.Parent = v.Parent.String()
		}
	}
	return w
}

func changeToWire(c repo.Change) wireChange {
	return wireChange{Kind: string(rune(c.Kind)), Path: c.Path, Type: c.Type.String(), OldSize: c.OldSize, NewSize: c.NewSize}
}

func problemToWire(p repo.Problem) wireProblem {
	w := wireProblem{ID: p.ID.String(), What: p.What, Where: p.Where}
	if p.Err != nil {
		w.Error = p.Err.Error()
	}
	return w
}

// Errors.

// classed is an error the server has classified itself.
type classed struct {
	kind ErrorKind
	err  error
}

func (e classed) Error() string { return e.err.Error() }
func (e classed) Unwrap() error { return e.err }

func invalid(err error) error { return classed{KindInvalid, err} }
func denied(err error) error  { return classed{KindDenied, err} }

// kindOf classifies err by the sentinels it wraps.
func kindOf(err error) ErrorKind {
	var c classed
	switch {
	case errors.As(err, &c):
		return c.kind
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return KindCanceled
	case errors.Is(err, syscall.ENOSPC):
		return KindNoSpace
	case errors.Is(err, fs.ErrPermission):
		return KindDenied
	case errors.Is(err, cas.ErrExists), errors.Is(err, fs.ErrExist):
		return KindExists
	case errors.Is(err, repo.ErrNoVersion), errors.Is(err, cas.ErrNotFound), errors.Is(err, fs.ErrNotExist),
		errors.Is(err, tracking.ErrNoRun):
		return KindNotFound
	case errors.Is(err, tracking.ErrBusy):
		return KindBusy
	}
	return KindOther
}

func statusOf(k ErrorKind) int {
	switch k {
	case KindNotFound:
		return http.StatusNotFound
	case KindExists:
		return http.StatusConflict
	case KindInvalid:
		return http.StatusBadRequest
	case KindDenied:
		return http.StatusForbidden
	case KindNoSpace:
		return http.StatusInsufficientStorage
	case KindCanceled:
		return 499 // as nginx: the client closed the request
	case KindBusy:
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// wireErr turns err into its message, saying so when it was the daemon
// stopping, not the caller, that ended the operation.
func (s *server) wireErr(err error) *wireError {
	if s.ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = fmt.Errorf("the mlfs daemon stopped during the operation; nothing was named, so it left no partial version; run the command again")
	}
	return &wireError{Kind: kindOf(err), Message: err.Error()}
}

func (s *server) fail(w http.ResponseWriter, err error) {
	we := s.wireErr(err)
	writeJSON(w, statusOf(we.Kind), struct {
		Error *wireError `json:"error"`
	}{we})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// readBody decodes the request's JSON body into v, strictly. It reads the
// body to its end, which is also what lets net/http notice a client that
// goes away (and cancel the request's context).
func readBody(w http.ResponseWriter, req *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
	if err != nil {
		return invalid(fmt.Errorf("read request: %w", err))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid(fmt.Errorf("decode request: %w", err))
	}
	return nil
}

func parseRef(s string) (repo.Ref, error) {
	ref, err := repo.ParseRef(s)
	if err != nil {
		return ref, invalid(err)
	}
	return ref, nil
}

func absPath(what, p string) error {
	if !filepath.IsAbs(p) {
		return invalid(fmt.Errorf("%s %q is not absolute; the daemon's working folder is not yours", what, p))
	}
	return nil
}

// stream writes the lines of a streamed reply. Its methods may be called
// from several goroutines.
type stream struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	enc     *json.Encoder
	dead    bool // the client is gone; drop the rest
	last    time.Time
	pending *wireProgress
}

func newStream(w http.ResponseWriter) *stream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	return &stream{w: w, rc: http.NewResponseController(w), enc: json.NewEncoder(w)}
}

// progressEvery bounds the progress lines to a few a second: the callback
// runs once per file, which could be many thousands a second.
const progressEvery = 100 * time.Millisecond

func (st *stream) send(ev wireEvent) {
	if st.dead {
		return
	}
	if err := st.enc.Encode(ev); err != nil {
		st.dead = true
		return
	}
	if err := st.rc.Flush(); err != nil {
		st.dead = true
	}
}

func (st *stream) progress(bytes, files int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.pending = &wireProgress{bytes, files}
	if time.Since(st.last) >= progressEvery {
		st.last = time.Now()
		st.send(wireEvent{Progress: st.pending})
		st.pending = nil
	}
}

func (st *stream) event(ev wireEvent) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.send(ev)
}

// end sends the last progress, if it was held back, and then the result
// or the error.
func (st *stream) end(s *server, result any, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.pending != nil {
		st.send(wireEvent{Progress: st.pending})
		st.pending = nil
	}
	if err != nil {
		st.send(wireEvent{Error: s.wireErr(err)})
		return
	}
	b, merr := json.Marshal(result)
	if merr != nil {
		st.send(wireEvent{Error: s.wireErr(merr)})
		return
	}
	st.send(wireEvent{Result: b})
}

// done logs one finished operation.
func (s *server) done(req *http.Request, op string, start time.Time, err error, args ...any) {
	p := peerOf(req.Context())
	args = append(args, "uid", p.uid, "pid", p.pid, "took", time.Since(start).Round(time.Millisecond))
	if err != nil {
		s.log.Info(op+" failed", append(args, "err", err)...)
		return
	}
	s.log.Info(op, args...)
}

// Handlers.

func (s *server) ping(w http.ResponseWriter, req *http.Request) {
	writeJSON(w, http.StatusOK, wireInfo{API: apiVersion, PID: os.Getpid(), UID: s.uid, Store: s.r.Config.Store})
}

func (s *server) add(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	var in wireAddRequest
	err := readBody(w, req, &in)
	var ref repo.Ref
	if err == nil {
		ref, err = parseRef(in.Ref)
	}
	if err == nil {
		if verr := repo.CheckVersionName(ref.Version); verr != nil {
			err = invalid(verr)
		}
	}
	if err == nil {
		err = absPath("path", in.Path)
	}
	if err == nil {
		err = s.ownPaths(req, "add")
	}
	if err != nil {
		s.done(req, "add", start, err, "ref", in.Ref)
		s.fail(w, err)
		return
	}
	st := newStream(w)
	res, err := s.r.Add(req.Context(), ref, in.Path, repo.AddOptions{
		Message:  in.Message,
		Progress: st.progress,
		Warn: func(path, reason string) {
			st.event(wireEvent{Warning: &wireWarning{path, reason}})
		},
	})
	var out *wireAddResult
	if err == nil {
		out = &wireAddResult{Version: versionToWire(res.VersionInfo), NewBytes: res.NewBytes,
			NewChunks: res.NewChunks, Reused: res.Reused, Skipped: res.Skipped}
	}
	s.done(req, "add", start, err, "ref", in.Ref, "path", in.Path)
	st.end(s, out, err)
}

func (s *server) versions(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	ds := req.URL.Query().Get("dataset")
	var vs []repo.VersionInfo
	err := repo.CheckDatasetName(ds)
	if err != nil {
		err = invalid(err)
	} else {
		vs, err = s.r.Versions(req.Context(), ds)
	}
	s.done(req, "versions", start, err, "dataset", ds)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := make([]wireVersion, len(vs))
	for i, v := range vs {
		out[i] = versionToWire(v)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) resolve(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	q := req.URL.Query().Get("ref")
	ref, err := parseRef(q)
	var v repo.VersionInfo
	if err == nil {
		v, err = s.r.Resolve(req.Context(), ref)
	}
	s.done(req, "resolve", start, err, "ref", q)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, versionToWire(v))
}

func (s *server) export(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	var in wireExportRequest
	err := readBody(w, req, &in)
	var ref repo.Ref
	if err == nil {
		ref, err = parseRef(in.Ref)
	}
	if err == nil {
		err = absPath("dir", in.Dir)
	}
	if err == nil {
		err = s.ownPaths(req, "export")
	}
	if err != nil {
		s.done(req, "export", start, err, "ref", in.Ref)
		s.fail(w, err)
		return
	}
	st := newStream(w)
	v, err := s.r.Export(req.Context(), ref, in.Dir, repo.ExportOptions{Progress: st.progress})
	s.done(req, "export", start, err, "ref", in.Ref, "dir", in.Dir)
	st.end(s, versionToWire(v), err)
}

func (s *server) diff(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	q := req.URL.Query()
	a, err := parseRef(q.Get("a"))
	var b repo.Ref
	if err == nil {
		b, err = parseRef(q.Get("b"))
	}
	var changes []repo.Change
	if err == nil {
		changes, err = s.r.Diff(req.Context(), a, b)
	}
	s.done(req, "diff", start, err, "a", q.Get("a"), "b", q.Get("b"))
	if err != nil {
		s.fail(w, err)
		return
	}
	out := make([]wireChange, len(changes))
	for i, c := range changes {
		out[i] = changeToWire(c)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) fsck(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	st := newStream(w)
	stats, err := s.r.Fsck(req.Context(), func(p repo.Problem) {
		wp := problemToWire(p)
		st.event(wireEvent{Problem: &wp})
	})
	s.done(req, "fsck", start, err, "problems", stats.Problems)
	st.end(s, wireFsckStats{Versions: stats.Versions, Runs: stats.Runs, Trees: stats.Trees, Files: stats.Files,
		Chunks: stats.Chunks, Bytes: stats.Bytes, Problems: stats.Problems}, err)
}

func (s *server) gc(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	var in wireGCRequest
	err := readBody(w, req, &in)
	var st repo.GCStats
	if err == nil {
		st, err = s.r.GC(req.Context(), in.DryRun)
	}
	s.done(req, "gc", start, err, "dry_run", in.DryRun, "removed", st.Removed)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wireGCStats{Reachable: st.Reachable, Removed: st.Removed, RemovedBytes: st.RemovedBytes,
		PacksDeleted: st.PacksDeleted, PacksRewritten: st.PacksRewritten, BytesFreed: st.BytesFreed, Temps: st.Temps})
}

type wireRefRequest struct {
	Ref string `json:"ref"`
}

func (s *server) removeVersion(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	var in wireRefRequest
	err := readBody(w, req, &in)
	var ref repo.Ref
	if err == nil {
		ref, err = parseRef(in.Ref)
	}
	if err == nil {
		err = s.r.RemoveVersion(req.Context(), ref)
	}
	s.done(req, "version rm", start, err, "ref", in.Ref)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

type wireCheckoutRequest struct {
	Ref   string `json:"ref"`
	Force bool   `json:"force"`
}

func (s *server) checkout(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	var in wireCheckoutRequest
	err := readBody(w, req, &in)
	var ref repo.Ref
	var v repo.VersionInfo
	if err == nil {
		ref, err = parseRef(in.Ref)
	}
	if err == nil {
		v, err = s.r.Checkout(req.Context(), ref, in.Force)
	}
	s.done(req, "checkout", start, err, "ref", in.Ref, "force", in.Force)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, versionToWire(v))
}

type wireSyncRequest struct {
	Refs []string `json:"refs"` // DATASET or DATASET@VERSION; none for all
}

func parseSyncRefs(in []string) ([]repo.Ref, error) {
	var refs []repo.Ref
	for _, s := range in {
		ref, err := ParseSyncRef(s)
		if err != nil {
			return nil, invalid(err)
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

// ParseSyncRef parses the DATASET or DATASET@VERSION of push and pull; a
// bare dataset has an empty Version.
func ParseSyncRef(s string) (repo.Ref, error) {
	if strings.Contains(s, "@") {
		return repo.ParseRef(s)
	}
	if err := repo.CheckDatasetName(s); err != nil {
		return repo.Ref{}, err
	}
	return repo.Ref{Dataset: s}, nil
}

func (s *server) push(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	var in wireSyncRequest
	if err := readBody(w, req, &in); err != nil {
		s.fail(w, err)
		return
	}
	refs, err := parseSyncRefs(in.Refs)
	if err != nil {
		s.fail(w, err)
		return
	}
	st := newStream(w)
	res, err := s.r.Push(req.Context(), refs, st.progress)
	s.done(req, "push", start, err, "packs", res.Packs, "bytes", res.Bytes, "refs", res.Refs, "runs", res.Runs)
	st.end(s, res, err)
}

func (s *server) pull(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	var in wireSyncRequest
	if err := readBody(w, req, &in); err != nil {
		s.fail(w, err)
		return
	}
	refs, err := parseSyncRefs(in.Refs)
	if err != nil {
		s.fail(w, err)
		return
	}
	st := newStream(w)
	res, err := s.r.Pull(req.Context(), refs, st.progress)
	s.done(req, "pull", start, err, "refs", res.Refs, "runs", res.Runs, "fetched", res.Fetched)
	st.end(s, res, err)
}
