package tracking

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/index"
	"github.com/mlfs/mlfs/repo"
	"github.com/mlfs/mlfs/tracking/parse"
	"github.com/mlfs/mlfs/worktree"
)

// Options configure a Tracker.
type Options struct {
	KV index.KV
	// DataDir holds the runs' local file bytes, DataDir/<id>.
	DataDir string
	// Repo stores artifacts; Objects reads them back (through the cache).
	Repo    *repo.Repo
	Objects cas.Getter
	// KilledAfter is how long a running run may go without a writer
	// before it is marked killed (default 10 minutes).
	KilledAfter time.Duration
	// Commit is how often the index is brought up to date (default 1 s).
	Commit time.Duration
	// Publish publishes this machine's runs in Repo's store, and Import
	// brings in the runs other machines sharing it published (see the
	// package doc, "Runs across machines"). Both need Repo.
	Publish, Import bool
	// ShareEvery is how often both happen (default DefaultShareEvery); a
	// run that ends is published at once, and Close publishes what is left.
	ShareEvery time.Duration
	Log        *slog.Logger
}

// DefaultKilledAfter is Options.KilledAfter's default.
const DefaultKilledAfter = 10 * time.Minute

// Tracker is the runs of this machine while the daemon serves them.
type Tracker struct {
	opt Options
	kv  index.KV
	log *slog.Logger

	mu   sync.Mutex
	runs map[string]*Run
	// unknownRuns are the MLFS_RUN values without a run, warned about once.
	unknownRuns map[string]bool

	pendingMu sync.Mutex
	pending   map[*Run]struct{}
	kick      chan struct{}

	artifacts chan artifactJob

	points    atomic.Int64 // metric points parsed since Open
	bytesRead atomic.Int64 // bytes of metric files read to parse them

	badMu    sync.Mutex
	badCount int
	badReset time.Time

	// OnRemove, if set, is told of a run removed, or replaced by a newer
	// import: the mount forgets what it knows of it.
	OnRemove func(id string)

	// shareMu makes publishes and imports one at a time; importing (under
	// mu) holds the ids being imported, which Create leaves alone.
	shareMu   sync.Mutex
	importing map[string]bool
	shareKick chan struct{}
	shareDone chan struct{}
	onceMu    sync.Mutex
	once      map[string]bool // what was logged once

	stop   context.CancelFunc
	done   chan struct{}
	closed bool
}

type artifactJob struct {
	r   *Run
	ino uint64
}

// Open loads the runs recorded in opt.KV and starts indexing. Runs that had
// work in flight when the last daemon stopped are caught up first.
func Open(ctx context.Context, opt Options) (*Tracker, error) {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.KilledAfter <= 0 {
		opt.KilledAfter = DefaultKilledAfter
	}
	if opt.Commit <= 0 {
		opt.Commit = time.Second
	}
	if opt.ShareEvery <= 0 {
		opt.ShareEvery = DefaultShareEvery
	}
	if opt.Publish || opt.Import {
		if opt.Repo == nil {
			return nil, errNoRepo
		}
	}
	if opt.Objects == nil && opt.Repo != nil {
		opt.Objects = opt.Repo.Store()
	}
	if err := os.MkdirAll(opt.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("runs: %w", err)
	}
	t := &Tracker{opt: opt, kv: opt.KV, log: opt.Log, runs: map[string]*Run{}, unknownRuns: map[string]bool{}, pending: map[*Run]struct{}{},
		kick: make(chan struct{}, 1), artifacts: make(chan artifactJob, 1024), done: make(chan struct{}),
		importing: map[string]bool{}, shareKick: make(chan struct{}, 1), once: map[string]bool{}}
	infos, err := LoadInfos(opt.KV)
	if err != nil {
		return nil, err
	}
	for _, in := range infos {
		t.runs[in.ID] = t.newRun(*in)
	}
	if err := t.loadShared(); err != nil {
		return nil, err
	}
	var active []string
	t.kv.Scan([]byte("tr/a/"), func(k, _ []byte) error { active = append(active, string(k[len("tr/a/"):])); return nil })
	for _, id := range active {
		r := t.runs[id]
		if r == nil {
			t.kv.Delete(activeKey(id))
			continue
		}
		if err := t.openTree(ctx, r); err != nil {
			t.log.Error("open a run folder", "run", id, "err", err)
			continue
		}
		r.process(ctx)
		r.mu.Lock()
		r.touch() // it may have changed after its last publish
		r.mu.Unlock()
		t.wake(r)
	}
	lctx, stop := context.WithCancel(context.Background())
	t.stop = stop
	go t.loop(lctx)
	go t.storer(lctx)
	if opt.Publish || opt.Import {
		t.shareDone = make(chan struct{})
		go t.sharer(lctx)
	}
	return t, nil
}

func (t *Tracker) newRun(in Info) *Run {
	r := &Run{t: t, id: in.ID, kv: t.kv, log: t.log, info: in, gen: 1}
	r.ev.files = map[uint64]*fileEvent{}
	r.ev.pids = map[uint32]struct{}{}
	r.ev.queued = map[uint64]bool{}
	return r
}

func treeName(id string) string { return "run:" + id }

func (t *Tracker) openTree(ctx context.Context, r *Run) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tree != nil {
		return nil
	}
	tr, err := worktree.Open(ctx, t.kv, filepath.Join(t.opt.DataDir, r.id), treeName(r.id), cas.ID{}, cas.ID{}, t.opt.Objects, t.log)
	if err != nil {
		return fmt.Errorf("run %s: %w", r.id, err)
	}
	r.tree = tr
	return nil
}

// ErrNoRun means there is no run of that id.
var ErrNoRun = errors.New("no such run")

// Get returns run id with its folder open.
func (t *Tracker) Get(ctx context.Context, id string) (*Run, error) {
	t.mu.Lock()
	r := t.runs[id]
	t.mu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("run %s: %w", id, ErrNoRun)
	}
	if err := t.openTree(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

// IDs returns the ids of every run, sorted.
func (t *Tracker) IDs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]string, 0, len(t.runs))
	for id := range t.runs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Has reports whether run id exists.
func (t *Tracker) Has(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.runs[id] != nil
}

// Create starts run id for the user uid: EINVAL for a bad id, EEXIST for
// one taken. It is in the index when Create returns.
func (t *Tracker) Create(ctx context.Context, id string, uid uint32) (*Run, error) {
	if err := parse.CheckRunID(id); err != nil {
		return nil, fmt.Errorf("run %q: %w: %w", id, err, syscall.EINVAL)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.runs[id] != nil || t.importing[id] {
		return nil, syscall.EEXIST
	}
	host, _ := os.Hostname()
	now := time.Now().UnixMilli()
	r := t.newRun(Info{ID: id, Experiment: DefaultExperiment, Status: Running, Start: now, LastWrite: now,
		Host: host, User: userName(uid), Params: map[string]string{}, Tags: map[string]string{}, Metrics: map[string]Metric{}, Datasets: []Lineage{}})
	// Files of an earlier run of that id removed without a daemon: gone.
	if err := worktree.Remove(t.kv, treeName(id), filepath.Join(t.opt.DataDir, id)); err != nil {
		return nil, err
	}
	tr, err := worktree.Open(ctx, t.kv, filepath.Join(t.opt.DataDir, id), treeName(id), cas.ID{}, cas.ID{}, t.opt.Objects, t.log)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", id, err)
	}
	for _, d := range runFolders {
		if _, err := tr.Mkdir(ctx, worktree.RootIno, d, 0o755); err != nil {
			return nil, fmt.Errorf("run %s: %w", id, err)
		}
	}
	r.tree = tr
	r.loaded, r.sources, r.byIno, r.dirty = true, map[string]*source{}, map[uint64]*source{}, true
	r.kv.Set(activeKey(id), nil)
	if _, err := r.commit(false); err != nil {
		return nil, err
	}
	if err := t.syncKV(); err != nil {
		t.log.Warn("sync the index", "err", err)
	}
	t.runs[id] = r
	t.log.Info("run started", "run", id, "user", r.info.User)
	return r, nil
}

func userName(uid uint32) string {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return strconv.FormatUint(uint64(uid), 10)
	}
	return u.Username
}

// Infos returns a copy of every run's record.
func (t *Tracker) Infos() []*Info {
	t.mu.Lock()
	runs := make([]*Run, 0, len(t.runs))
	for _, r := range t.runs {
		runs = append(runs, r)
	}
	t.mu.Unlock()
	out := make([]*Info, len(runs))
	for i, r := range runs {
		out[i] = r.Info()
	}
	return out
}

// Sync parses everything written so far and commits it: after Sync, the
// index answers as the files read.
func (t *Tracker) Sync(ctx context.Context) error {
	t.mu.Lock()
	runs := make([]*Run, 0, len(t.runs))
	for _, r := range t.runs {
		runs = append(runs, r)
	}
	t.mu.Unlock()
	var errs []error
	for _, r := range runs {
		if r.loaded {
			r.process(ctx)
		}
		sync, err := r.commit(true)
		errs = append(errs, err)
		t.syncFiles(r, sync)
	}
	return errors.Join(errs...)
}

// ReadBy records that the process of run id read version id of a dataset
// as ref ("dataset@version"). Unknown runs are ignored.
func (t *Tracker) ReadBy(runID, ref string, version cas.ID) {
	t.mu.Lock()
	r := t.runs[runID]
	warn := r == nil && !t.unknownRuns[runID] && len(t.unknownRuns) < 1000
	if warn {
		t.unknownRuns[runID] = true
	}
	t.mu.Unlock()
	if warn {
		t.log.Warn("MLFS_RUN names no run; its reads are not recorded (mkdir the run first)", "run", runID, "version", ref)
	}
	if r == nil {
		return
	}
	if r.remote {
		t.logOnce("read:"+runID, "MLFS_RUN names a run imported from another machine; its reads are not recorded here", "run", runID, "version", ref)
		return
	}
	r.readBy(ref, version.String())
}

// ErrBusy means a run still has files open for writing.
var ErrBusy = errors.New("the run has files open for writing; stop its program first, or use --force")

// Remove deletes run id: its record, points and files (artifacts stay in
// the store until gc).
func (t *Tracker) Remove(ctx context.Context, id string, force bool) error {
	t.mu.Lock()
	r := t.runs[id]
	t.mu.Unlock()
	if r == nil {
		return fmt.Errorf("run %s: %w", id, ErrNoRun)
	}
	r.ev.Lock()
	busy := r.ev.writers > 0
	r.ev.Unlock()
	if busy && !force {
		return fmt.Errorf("run %s: %w", id, ErrBusy)
	}
	// No publish or import of the run is under way while it goes.
	t.shareMu.Lock()
	defer t.shareMu.Unlock()
	r.mu.Lock()
	r.removed = true
	pub := r.pub
	r.mu.Unlock()
	t.mu.Lock()
	delete(t.runs, id)
	t.mu.Unlock()
	if t.OnRemove != nil {
		t.OnRemove(id)
	}
	// The machine that ran it removes it for every machine; an imported
	// run goes from this one only.
	if pub.Ref != "" && t.opt.Repo != nil {
		for _, name := range append(pub.Stale, pub.Ref) {
			if err := t.opt.Repo.Store().DeleteRef(ctx, name); err != nil {
				t.log.Warn("remove a published run from the store", "run", id, "ref", name, "err", err)
			}
		}
	}
	return RemoveRecords(t.kv, t.opt.DataDir, id)
}

// RemoveRecords deletes everything the index holds of run id, and its
// local files under dataDir. Without a daemon, mlfs runs rm calls it.
func RemoveRecords(kv index.KV, dataDir, id string) error {
	b := kv.NewBatch()
	defer func() { b.Cancel() }()
	n := 0
	del := func(k, _ []byte) error {
		n++
		if n%10000 == 0 {
			if err := b.Commit(); err != nil {
				return err
			}
			b = kv.NewBatch()
		}
		return b.Delete(k)
	}
	b.Delete(infoKey(id))
	b.Delete(activeKey(id))
	b.Delete(errorsKey(id))
	b.Delete(pubKey(id))
	// The run's newest version in the store, if it has one, is not
	// imported again (here, from where it was published, nor from where
	// it was imported): only a newer one brings it back.
	if v := sharedVersion(kv, id); v != "" {
		enc, _ := json.Marshal(importRecord{Version: v, Removed: true})
		b.Set(importKey(id), enc)
	}
	for _, p := range [][]byte{sourcePrefix(id), pointsPrefix(id), downsamplePrefix(id)} {
		if err := kv.Scan(p, del); err != nil {
			return fmt.Errorf("remove run %s: %w", id, err)
		}
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("remove run %s: %w", id, err)
	}
	return worktree.Remove(kv, treeName(id), filepath.Join(dataDir, id))
}

// LoadInfos reads every run's record from kv (newest first), for listings
// without a daemon.
func LoadInfos(kv index.KV) ([]*Info, error) {
	var out []*Info
	err := kv.Scan([]byte("tr/r/"), func(k, v []byte) error {
		in, err := decodeInfo(v)
		if err != nil {
			return fmt.Errorf("run %s: record: %w", k[len("tr/r/"):], err)
		}
		out = append(out, in)
		return nil
	})
	newestFirst(out)
	return out, err
}

// LoadErrors reads run id's rejected lines from kv.
func LoadErrors(kv index.KV, id string) ErrorList { return readErrors(kv, id) }

// wake queues r for the ingest loop.
func (t *Tracker) wake(r *Run) {
	t.pendingMu.Lock()
	t.pending[r] = struct{}{}
	t.pendingMu.Unlock()
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// loop parses what was written as it comes and commits every second.
func (t *Tracker) loop(ctx context.Context) {
	defer close(t.done)
	tick := time.NewTicker(t.opt.Commit)
	defer tick.Stop()
	lastKilled := time.Now()
	for {
		select {
		case <-ctx.Done():
			t.drain(context.Background())
			t.commitAll(true)
			return
		case <-t.kick:
			t.drain(ctx)
		case <-tick.C:
			t.drain(ctx)
			t.commitAll(false)
			if time.Since(lastKilled) >= min(5*time.Second, t.opt.KilledAfter/2) {
				lastKilled = time.Now()
				t.checkKilled()
			}
		}
	}
}

func (t *Tracker) drain(ctx context.Context) {
	t.pendingMu.Lock()
	runs := t.pending
	t.pending = map[*Run]struct{}{}
	t.pendingMu.Unlock()
	for r := range runs {
		r.process(ctx)
	}
}

func (t *Tracker) commitAll(withDS bool) {
	t.mu.Lock()
	runs := make([]*Run, 0, len(t.runs))
	for _, r := range t.runs {
		runs = append(runs, r)
	}
	t.mu.Unlock()
	now := time.Now()
	for _, r := range runs {
		r.mu.Lock()
		loaded := r.loaded
		busy := r.dirty || r.errsDirty || len(r.drops) > 0 || r.hasDirtySources()
		// An idle run's downsamples are stored before it leaves memory.
		idle := loaded && now.Sub(r.lastEvent) >= idleAfter
		r.mu.Unlock()
		if !loaded && !busy {
			continue
		}
		if busy || withDS || idle {
			sync, err := r.commit(withDS || idle)
			if err != nil {
				t.log.Error("commit a run", "run", r.id, "err", err)
				continue
			}
			t.syncFiles(r, sync)
		}
		if idle {
			r.unloadIfIdle(now)
		}
	}
}

func (r *Run) hasDirtySources() bool {
	for _, s := range r.sources {
		if s.dirty || s.unsynced {
			return true
		}
		for _, b := range s.bufs {
			if b.count != b.committed {
				return true
			}
		}
	}
	return false
}

// syncFiles makes the bytes of recently written files durable: points are
// durable within a second of their write.
func (t *Tracker) syncFiles(r *Run, inos []uint64) {
	if r.tree == nil {
		return
	}
	for _, ino := range inos {
		if err := r.tree.SyncData(ino); err != nil && !errors.Is(err, syscall.ENOENT) {
			t.log.Warn("sync a run file", "run", r.id, "err", err)
		}
	}
}

func (t *Tracker) syncKV() error {
	if s, ok := t.kv.(interface{ Sync() error }); ok {
		return s.Sync()
	}
	return nil
}

func (t *Tracker) checkKilled() {
	t.mu.Lock()
	runs := make([]*Run, 0, len(t.runs))
	for _, r := range t.runs {
		runs = append(runs, r)
	}
	t.mu.Unlock()
	now := time.Now()
	for _, r := range runs {
		r.killedCheck(now, t.opt.KilledAfter)
	}
}

// logBadLine logs rejected lines, at most 20 a minute.
func (t *Tracker) logBadLine(id string, e RunError) {
	t.badMu.Lock()
	defer t.badMu.Unlock()
	if time.Since(t.badReset) > time.Minute {
		if t.badCount > 20 {
			t.log.Warn("more lines rejected", "count", t.badCount-20)
		}
		t.badReset, t.badCount = time.Now(), 0
	}
	t.badCount++
	if t.badCount <= 20 {
		t.log.Warn("line rejected", "run", id, "file", e.File, "line", e.Line, "reason", e.Reason)
	}
}

// storeArtifact queues file ino of r to be stored in the store.
func (t *Tracker) storeArtifact(r *Run, ino uint64) {
	r.ev.Lock()
	defer r.ev.Unlock()
	if r.ev.queued[ino] {
		return
	}
	select {
	case t.artifacts <- artifactJob{r, ino}:
		r.ev.queued[ino] = true
	default:
		t.log.Warn("artifact queue full; the file stays local until the run's folder changes again", "run", r.id)
	}
}

// storer stores closed artifacts content-addressed, one at a time.
func (t *Tracker) storer(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-t.artifacts:
			t.storeOne(ctx, j)
		}
	}
}

func (t *Tracker) storeOne(ctx context.Context, j artifactJob) {
	defer func() {
		j.r.ev.Lock()
		delete(j.r.ev.queued, j.ino)
		j.r.ev.Unlock()
	}()
	if t.opt.Repo == nil || j.r.tree.Writing(j.ino) {
		return
	}
	w, err := t.opt.Repo.NewWriter(ctx)
	if err != nil {
		t.log.Error("store an artifact", "run", j.r.id, "err", err)
		return
	}
	defer w.Close()
	start := time.Now()
	id, clean, err := j.r.tree.StoreFile(ctx, j.ino, w)
	if err != nil {
		if !errors.Is(err, syscall.ENOENT) {
			t.log.Error("store an artifact; it stays local", "run", j.r.id, "err", err)
		}
		return
	}
	if clean {
		j.r.mu.Lock()
		j.r.touch() // published from now on
		j.r.mu.Unlock()
	}
	path, _ := j.r.tree.Path(j.ino)
	t.log.Info("artifact stored", "run", j.r.id, "file", path, "id", id.Short(), "new bytes", w.NewBytes(), "clean", clean, "took", time.Since(start).Round(time.Millisecond))
}

// Stats describes the tracker's work since it opened.
type Stats struct {
	Runs    int   `json:"runs"`
	Running int   `json:"running"`
	Active  int   `json:"active"` // runs whose parsers are in memory
	Points  int64 `json:"points"` // metric points parsed
	// BytesRead is the bytes of metric files read to parse them: each
	// byte is read once, however the file is appended to.
	BytesRead int64 `json:"bytes_read"`
}

func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	st := Stats{Runs: len(t.runs)}
	runs := make([]*Run, 0, len(t.runs))
	for _, r := range t.runs {
		runs = append(runs, r)
	}
	t.mu.Unlock()
	for _, r := range runs {
		r.mu.Lock()
		if r.loaded {
			st.Active++
		}
		if r.info.Status == Running {
			st.Running++
		}
		r.mu.Unlock()
	}
	st.Points, st.BytesRead = t.points.Load(), t.bytesRead.Load()
	return st
}

// Close stops indexing after a last commit of everything parsed.
func (t *Tracker) Close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	t.stop()
	<-t.done
	if t.shareDone != nil {
		<-t.shareDone
	}
	if t.opt.Publish {
		ctx, cancel := context.WithTimeout(context.Background(), closePublish)
		t.shareMu.Lock()
		if _, err := t.publish(ctx); err != nil {
			t.log.Warn("publish runs before closing", "err", err)
		}
		t.shareMu.Unlock()
		cancel()
	}
	return t.syncKV()
}
