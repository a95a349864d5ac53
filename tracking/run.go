package tracking

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/index"
	"github.com/mlfs/mlfs/worktree"
)

// Reserved names at the top of a run folder, made by the filesystem.
var Reserved = []string{"status", "meta.json", "summary.json", "errors"}

// Folders every run has from the start.
var runFolders = []string{"artifacts", "metrics", "params", "tags"}

// A run lists at most maxErrors rejected lines, at most maxFileErrors of
// one file; beyond that it counts them, per file.
const (
	maxErrors     = 1000
	maxFileErrors = 100
)

// errorLog is a run's rejected lines: those listed, and how many each file
// had in all.
type errorLog struct {
	Listed []RunError       `json:"listed"`
	Counts map[string]int64 `json:"counts"`
}

func (l *errorLog) total() int64 {
	var n int64
	for _, c := range l.Counts {
		n += c
	}
	return n
}

// Lines returns the errors file's content: every listed line, then a line
// per file for those not listed.
func (l *errorLog) Lines() []string {
	var out []string
	shown := map[string]int64{}
	for _, e := range l.Listed {
		out = append(out, e.String())
		shown[e.File]++
	}
	for _, f := range slices.Sorted(maps.Keys(l.Counts)) {
		if n := l.Counts[f] - shown[f]; n > 0 {
			out = append(out, fmt.Sprintf("%s: %d more rejected lines, not listed", f, n))
		}
	}
	return out
}

// RunError is a rejected line.
type RunError struct {
	File   string `json:"file"`
	Line   int64  `json:"line,omitempty"`
	Reason string `json:"reason"`
	Time   int64  `json:"time"`
}

func (e RunError) String() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Reason)
}

// Run is one run folder while the daemon serves it.
type Run struct {
	t   *Tracker
	id  string
	kv  index.KV
	log *slog.Logger

	// ev is what the filesystem reported since the last ingest. Writers
	// take only this lock, never mu.
	ev struct {
		sync.Mutex
		files     map[uint64]*fileEvent
		rescan    bool
		lastWrite int64
		pids      map[uint32]struct{}
		writers   int
		queued    map[uint64]bool // artifacts waiting to be stored
	}

	mu        sync.Mutex
	tree      *worktree.Tree
	info      Info
	loaded    bool               // sources read from the index
	sources   map[string]*source // by path
	byIno     map[uint64]*source
	errs      errorLog
	drops     []string // paths whose stored points go at the next commit
	gone      []string // paths no longer tracked: their state goes too
	dirty     bool     // info or errors to commit
	errsDirty bool
	lastDS    time.Time
	lastEvent time.Time // of the last process
	removed   bool
	wipe      bool // the next commit first drops all the index held of the run

	// remote marks a run imported from another machine: read-only here and
	// never published. It is set before the run is shared and never
	// changes; origin is the ref it was imported from.
	remote bool
	origin importRecord
	// gen counts the changes a publish may carry, pubGen is gen as of the
	// last publish (pub), and noPublish stops publishing a run that cannot
	// be (said once in the log).
	gen, pubGen uint64
	pub         pubRecord
	noPublish   bool
}

type fileEvent struct {
	minOff int64 // lowest offset overwritten
	trunc  bool
	closed bool // a handle that wrote was closed
}

func (r *Run) ID() string { return r.id }

// Imported reports whether the run was imported from another machine
// sharing the store: its folder is read-only here.
func (r *Run) Imported() bool { return r.remote }

// ErrImported is returned for a change to a run imported from another
// machine: only the machine that runs it changes it.
var ErrImported = errors.New("the run was imported from another machine; change it there")

// touch records a change for the next publish. r.mu must be held.
func (r *Run) touch() { r.gen++ }

// writing reports whether file ino may still grow by a write in progress:
// a handle open for writing here or, for an imported run still running,
// the program writing it on its own machine (its unterminated last line
// may be half a line, and waits for the next import).
func (r *Run) writing(ino uint64) bool {
	return r.tree.Writing(ino) || r.remote && r.info.Status == Running
}

// Tree returns the run folder's files.
func (r *Run) Tree() *worktree.Tree { return r.tree }

// Wrote tells the tracker that process pid wrote n bytes at off into
// file ino of the run, which held size bytes before: a write below that
// changed bytes already there, and the file is parsed again.
func (r *Run) Wrote(ino uint64, off int64, n int, size int64, pid uint32) {
	now := time.Now().UnixMilli()
	r.ev.Lock()
	e := r.event(ino)
	if off < size {
		e.minOff = min(e.minOff, off)
	}
	r.ev.lastWrite = now
	if pid != 0 && len(r.ev.pids) < 64 {
		r.ev.pids[pid] = struct{}{}
	}
	r.ev.Unlock()
	r.t.wake(r)
}

// Truncated tells that file ino's size was set (or it was opened with
// O_TRUNC).
func (r *Run) Truncated(ino uint64) {
	r.ev.Lock()
	r.event(ino).trunc = true
	r.ev.lastWrite = time.Now().UnixMilli()
	r.ev.Unlock()
	r.t.wake(r)
}

// Opened and Closed count the handles open for writing; Closed with wrote
// also makes the tracker parse an unterminated last line and store an
// artifact.
func (r *Run) Opened(ino uint64) {
	r.ev.Lock()
	r.ev.writers++
	r.ev.Unlock()
}

func (r *Run) Closed(ino uint64, wrote bool) {
	r.ev.Lock()
	r.ev.writers--
	if wrote {
		r.event(ino).closed = true
	}
	r.ev.Unlock()
	if wrote {
		r.t.wake(r)
	}
}

// Changed tells that names in the run folder changed (create, rename,
// unlink, mkdir, rmdir).
func (r *Run) Changed() {
	r.ev.Lock()
	r.ev.rescan = true
	r.ev.Unlock()
	r.t.wake(r)
}

func (r *Run) event(ino uint64) *fileEvent {
	e := r.ev.files[ino]
	if e == nil {
		e = &fileEvent{minOff: math.MaxInt64}
		r.ev.files[ino] = e
	}
	return e
}

// process applies the reported events: the ingest loop's work for r.
func (r *Run) process(ctx context.Context) {
	r.ev.Lock()
	files, rescan := r.ev.files, r.ev.rescan
	lastWrite := r.ev.lastWrite
	r.ev.files, r.ev.rescan = map[uint64]*fileEvent{}, false
	r.ev.Unlock()

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removed || r.remote {
		return // an imported run is indexed by its import
	}
	if len(files) > 0 || rescan || lastWrite > r.info.LastWrite {
		r.touch()
	}
	r.lastEvent = time.Now()
	r.load(ctx)
	if lastWrite > r.info.LastWrite {
		r.info.LastWrite = lastWrite
		r.dirty = true
		if r.info.Status == Killed {
			// Its writer was only slow.
			r.info.Status, r.info.End = Running, 0
		}
	}
	var store []uint64
	for ino, e := range files {
		s := r.byIno[ino]
		if s == nil {
			if e.closed {
				store = append(store, ino)
			}
			continue
		}
		if e.trunc || e.minOff < s.fed {
			s.reset = true
		}
		r.ingest(ctx, s, e.closed)
	}
	// After the files' events: a file new to the rescan is read whole.
	if rescan {
		r.rescan(ctx)
		r.storeArtifacts(ctx)
	}
	r.recompute()
	for _, ino := range store {
		if p, err := r.tree.Path(ino); err == nil && strings.HasPrefix(p, "artifacts/") {
			r.t.storeArtifact(r, ino)
		}
	}
}

// load reads the run's tracked files' state from the index, once.
func (r *Run) load(ctx context.Context) {
	if r.loaded {
		return
	}
	r.loaded = true
	r.sources, r.byIno = map[string]*source{}, map[uint64]*source{}
	prefix := sourcePrefix(r.id)
	err := r.kv.Scan(prefix, func(k, v []byte) error {
		path := string(k[len(prefix):])
		s, err := decodeSource(path, v)
		if err != nil {
			r.log.Error("tracked file state; parsing it again", "run", r.id, "err", err)
			return nil
		}
		r.sources[path] = s
		r.byIno[s.ino] = s
		return nil
	})
	if err != nil {
		r.log.Error("load a run's tracked files", "run", r.id, "err", err)
	}
	r.errs = readErrors(r.kv, r.id)
	r.kv.Set(activeKey(r.id), nil)
	// Files may have grown after the last commit (a daemon killed in
	// between): catch up with every one.
	r.rescan(ctx)
	for _, s := range r.sources {
		r.ingest(ctx, s, false)
	}
	r.recompute()
	r.storeArtifacts(ctx)
}

// storeArtifacts queues every file under artifacts/ whose bytes are not
// in the store yet and that nothing writes: files moved in from elsewhere,
// and those a stopped daemon did not store.
func (r *Run) storeArtifacts(ctx context.Context) {
	a, err := r.tree.Lookup(ctx, worktree.RootIno, "artifacts")
	if err != nil || a.Type != object.TypeDir {
		return
	}
	r.tree.Walk(ctx, a.Ino, func(path string, at worktree.Attr) error {
		if at.Type == object.TypeFile && at.ID.IsZero() && !r.tree.Writing(at.Ino) {
			r.t.storeArtifact(r, at.Ino)
		}
		return nil
	})
}

// rescan finds the tracked files by walking the run folder (artifacts
// aside) and starts, restarts or drops sources to match.
func (r *Run) rescan(ctx context.Context) {
	want := map[string]uint64{}
	bad := map[string]string{}
	err := r.tree.Walk(ctx, worktree.RootIno, func(path string, a worktree.Attr) error {
		if a.Type == object.TypeDir {
			if path == "artifacts" {
				return worktree.SkipDir
			}
			return nil
		}
		if a.Type != object.TypeFile {
			return nil
		}
		k, _, err := classify(path)
		if err != nil {
			bad[path] = err.Error()
		} else if k != 0 {
			want[path] = a.Ino
		}
		return nil
	})
	if err != nil {
		r.log.Error("walk a run folder", "run", r.id, "err", err)
		return
	}
	for path, s := range r.sources {
		ino, ok := want[path]
		switch {
		case !ok:
			delete(r.sources, path)
			delete(r.byIno, s.ino)
			r.clearErrors(path)
			r.drops = append(r.drops, path)
			r.gone = append(r.gone, path)
			r.dirty = true
		case ino != s.ino:
			delete(r.byIno, s.ino)
			s.ino, s.reset = ino, true
			r.byIno[ino] = s
			r.ingest(ctx, s, true)
		}
	}
	for path, ino := range want {
		if r.sources[path] != nil {
			continue
		}
		k, key, _ := classify(path)
		s := newSource(path, k, key, ino)
		r.sources[path], r.byIno[ino] = s, s
		r.clearErrors(path)
		r.ingest(ctx, s, true)
	}
	for path, why := range bad {
		if !r.hasError(path) {
			r.addError(path, 0, why+"; not indexed")
		}
	}
}

// recompute derives the params, tags and metrics from the sources.
func (r *Run) recompute() {
	if !r.loaded {
		return
	}
	in := &r.info
	params, tags, metrics := map[string]string{}, map[string]string{}, map[string]Metric{}
	paths := make([]string, 0, len(r.sources))
	for p := range r.sources {
		paths = append(paths, p)
	}
	// params.json, params.yaml, then params/<key>: a single file wins.
	sort.Slice(paths, func(i, j int) bool {
		return rank(paths[i]) < rank(paths[j]) || rank(paths[i]) == rank(paths[j]) && paths[i] < paths[j]
	})
	for _, p := range paths {
		s := r.sources[p]
		switch s.kind {
		case kindTag:
			for k, v := range s.values {
				tags[k] = v
			}
		case kindParam, kindParamsJSON, kindParamsYAML:
			for k, v := range s.values {
				params[k] = v
			}
		default:
			for k, m := range s.metrics {
				metrics[k] = merge(metrics[k], m.Metric)
			}
		}
	}
	in.Params, in.Tags, in.Metrics = params, tags, metrics
	in.Experiment = DefaultExperiment
	if e := tags["experiment"]; e != "" {
		in.Experiment = e
	}
	r.dirty = true
}

func rank(path string) int {
	switch {
	case path == "params.json":
		return 0
	case path == "params.yaml" || path == "params.yml":
		return 1
	}
	return 2
}

func (r *Run) addError(file string, line int64, reason string) {
	r.dirty, r.errsDirty = true, true
	e := RunError{File: file, Line: line, Reason: reason, Time: time.Now().UnixMilli()}
	if !r.remote { // an imported run's were logged where it runs
		r.t.logBadLine(r.id, e)
	}
	if r.errs.Counts == nil {
		r.errs.Counts = map[string]int64{}
	}
	if len(r.errs.Listed) < maxErrors && r.errs.Counts[file] < maxFileErrors {
		r.errs.Listed = append(r.errs.Listed, e)
	}
	r.errs.Counts[file]++
	r.info.Errors = r.errs.total()
}

func (r *Run) hasError(file string) bool { return r.errs.Counts[file] > 0 }

// clearErrors drops the errors of a file about to be parsed again.
func (r *Run) clearErrors(file string) {
	if r.errs.Counts[file] == 0 {
		return
	}
	r.errs.Listed = slices.DeleteFunc(r.errs.Listed, func(e RunError) bool { return e.File == file })
	delete(r.errs.Counts, file)
	r.info.Errors = r.errs.total()
	r.dirty, r.errsDirty = true, true
}

// commit writes what changed to the index in one batch and returns the
// files whose new bytes must be synced.
func (r *Run) commit(withDS bool) ([]uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removed {
		return nil, nil
	}
	b := r.kv.NewBatch()
	defer b.Cancel()
	var del [][]byte
	if r.wipe {
		for _, prefix := range [][]byte{sourcePrefix(r.id), pointsPrefix(r.id), downsamplePrefix(r.id)} {
			r.kv.Scan(prefix, func(k, _ []byte) error { del = append(del, append([]byte(nil), k...)); return nil })
		}
	}
	for _, p := range r.drops {
		for _, prefix := range [][]byte{pointsPathPrefix(r.id, p), downsamplePathPrefix(r.id, p)} {
			r.kv.Scan(prefix, func(k, _ []byte) error { del = append(del, append([]byte(nil), k...)); return nil })
		}
	}
	for _, k := range del {
		b.Delete(k)
	}
	for _, p := range r.gone {
		if r.sources[p] == nil {
			b.Delete(sourceKey(r.id, p))
		}
	}
	withDS = withDS || time.Since(r.lastDS) > 30*time.Second
	var sync []uint64
	for _, s := range r.sources {
		for k, buf := range s.bufs {
			buf.commit(b, r.id, s.path, k, withDS)
		}
		if s.dirty {
			b.Set(sourceKey(r.id, s.path), s.state())
		}
		if s.unsynced {
			sync = append(sync, s.ino)
		}
	}
	if r.dirty {
		b.Set(infoKey(r.id), encodeInfo(&r.info))
	}
	if r.errsDirty {
		enc, _ := json.Marshal(r.errs)
		b.Set(errorsKey(r.id), enc)
	}
	if err := b.Commit(); err != nil {
		return nil, fmt.Errorf("run %s: record: %w", r.id, err)
	}
	if withDS {
		r.lastDS = time.Now()
	}
	r.drops, r.gone = nil, nil
	r.dirty, r.errsDirty, r.wipe = false, false, false
	for _, s := range r.sources {
		s.dirty, s.unsynced = false, false
	}
	return sync, nil
}

// idleAfter is how long a run goes without events before its parsers and
// buffers leave memory (the next write brings them back from the index).
const idleAfter = 30 * time.Second

// unloadIfIdle drops an idle run's state from memory once it is all in
// the index, and reports whether it did.
func (r *Run) unloadIfIdle(now time.Time) bool {
	r.ev.Lock()
	busy := r.ev.writers > 0 || len(r.ev.files) > 0 || r.ev.rescan
	r.ev.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if busy || !r.loaded || now.Sub(r.lastEvent) < idleAfter || r.dirty || r.errsDirty || len(r.drops) > 0 || r.hasDirtySources() {
		return false
	}
	for _, s := range r.sources {
		for _, b := range s.bufs {
			if b.dsSaved != b.count {
				return false // its downsample is not stored yet
			}
		}
	}
	r.unload()
	return true
}

// unload drops the run's parsed state from memory; the index has it all.
// r.mu must be held.
func (r *Run) unload() {
	r.loaded, r.sources, r.byIno, r.errs = false, nil, nil, errorLog{}
	r.kv.Delete(activeKey(r.id))
}

// Info returns a copy of the run's record.
func (r *Run) Info() *Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.info.clone()
}

// Errors returns the rejected lines.
func (r *Run) Errors() ErrorList {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.errs
	if !r.loaded {
		l = readErrors(r.kv, r.id)
	}
	return ErrorList{Listed: append([]RunError{}, l.Listed...), Counts: maps.Clone(l.Counts)}
}

// ErrorList is a run's rejected lines: those listed, and the count of all
// of them per file.
type ErrorList = errorLog

// readErrors reads a run's rejected lines; a damaged list reads as none.
func readErrors(kv index.KV, id string) errorLog {
	l := errorLog{Listed: []RunError{}, Counts: map[string]int64{}}
	if raw, err := kv.Get(errorsKey(id)); err == nil {
		json.Unmarshal(raw, &l)
	}
	if l.Listed == nil {
		l.Listed = []RunError{}
	}
	if l.Counts == nil {
		l.Counts = map[string]int64{}
	}
	return l
}

// Status returns the run's status.
func (r *Run) Status() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.info.Status
}

// ErrBadStatus is returned for a write to the status file that is not a
// status a program may set.
var ErrBadStatus = errors.New(`write "finished" or "failed" (or "running") to a run's status`)

// SetStatus ends the run (finished, failed) or restarts it (running).
// The change is in the index when it returns.
func (r *Run) SetStatus(ctx context.Context, status string) error {
	status = strings.ToLower(strings.TrimSpace(status))
	switch status {
	case Finished, Failed, Running:
	default:
		return fmt.Errorf("run %s: %q: %w", r.id, status, ErrBadStatus)
	}
	if r.remote {
		return fmt.Errorf("run %s: %w", r.id, ErrImported)
	}
	// Parse what was written first, so the summary is whole.
	r.process(ctx)
	r.mu.Lock()
	r.info.Status = status
	if status == Running {
		r.info.End = 0
	} else {
		r.info.End = time.Now().UnixMilli()
	}
	r.dirty = true
	r.touch()
	r.mu.Unlock()
	sync, err := r.commit(true)
	if err != nil {
		return err
	}
	r.t.syncFiles(r, sync)
	if status != Running {
		r.t.shareSoon() // an ended run is published at once
	}
	return r.t.syncKV()
}

// readBy records that the run read dataset version ref (id).
func (r *Run) readBy(ref, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.info.Datasets {
		if d.Ref == ref && d.ID == id {
			return
		}
	}
	if len(r.info.Datasets) >= 1000 {
		return
	}
	r.info.Datasets = append(r.info.Datasets, Lineage{Ref: ref, ID: id, Time: time.Now().UnixMilli()})
	r.dirty = true
	r.touch()
}

// killedCheck marks a running run whose writers are gone as killed.
func (r *Run) killedCheck(now time.Time, after time.Duration) bool {
	r.ev.Lock()
	writers := r.ev.writers
	alive := false
	for pid := range r.ev.pids {
		if processAlive(pid) {
			alive = true
		} else {
			delete(r.ev.pids, pid)
		}
	}
	r.ev.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.remote || r.info.Status != Running || writers > 0 || alive {
		return false // an imported run ends on its own machine
	}
	last := max(r.info.LastWrite, r.info.Start)
	for _, d := range r.info.Datasets {
		last = max(last, d.Time) // reading counts as a sign of life
	}
	if now.Sub(time.UnixMilli(last)) < after {
		return false
	}
	r.info.Status, r.info.End = Killed, last
	r.dirty = true
	r.touch()
	r.t.shareSoon()
	r.log.Warn("run marked killed: no writer", "run", r.id, "last write", time.UnixMilli(last).UTC().Format(time.RFC3339))
	return true
}

func processAlive(pid uint32) bool {
	err := syscall.Kill(int(pid), 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
