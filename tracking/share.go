package tracking

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/index"
	"github.com/mlfs/mlfs/repo"
	"github.com/mlfs/mlfs/tracking/parse"
	"github.com/mlfs/mlfs/worktree"
)

// Runs are shared through the store as refs "runs/<id>/<seq>" naming a
// version object (Dataset "runs") of the run folder's tree; the package
// doc, "Runs across machines", tells the whole story.

// DefaultShareEvery is Options.ShareEvery's default: with a remote whose
// refs other machines see within about a second, a run's change reaches
// them within 5 s.
const DefaultShareEvery = 2 * time.Second

// closePublish bounds Close's last publish, so that a store that went
// away does not hold the daemon's exit.
const closePublish = time.Minute

const (
	runsDataset = "runs" // the Dataset of a published run's version
	refsPrefix  = "runs/"
	// messageFormat is runMessage's; an importer skips the runs of a
	// newer one (their machine runs a newer mlfs).
	messageFormat = 1
)

// runRef names publish seq of run id. Run ids use the characters of a
// ref segment, but may be longer (256 bytes, a segment 128): such a run
// is not published, which CheckRefName on the name tells.
func runRef(id string, seq int64) string { return fmt.Sprintf("%s%s/%010d", refsPrefix, id, seq) }

// parseRunRef splits a name made by runRef.
func parseRunRef(name string) (id string, seq int64, ok bool) {
	rest, ok := strings.CutPrefix(name, refsPrefix)
	id, num, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || parse.CheckRunID(id) != nil || num == "" || strings.Trim(num, "0123456789") != "" {
		return "", 0, false
	}
	seq, err := strconv.ParseInt(num, 10, 64)
	return id, seq, err == nil
}

// runMessage is the message of a published run's version: what the run's
// files do not carry. Params, tags and metrics are in the files, and the
// importer parses them as this machine does.
type runMessage struct {
	Format    int       `json:"format"`
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	Start     int64     `json:"start_time"`
	End       int64     `json:"end_time,omitempty"`
	LastWrite int64     `json:"last_write,omitempty"`
	Host      string    `json:"host,omitempty"`
	User      string    `json:"user,omitempty"`
	Datasets  []Lineage `json:"datasets"`
}

// encodeMessage returns in's message and how many of its dataset reads
// did not fit in a version's message (object.MaxStringLen).
func encodeMessage(in *Info) (string, int) {
	m := runMessage{Format: messageFormat, ID: in.ID, Status: in.Status, Start: in.Start, End: in.End, LastWrite: in.LastWrite,
		Host: in.Host, User: in.User, Datasets: in.Datasets}
	if m.Datasets == nil {
		m.Datasets = []Lineage{}
	}
	b, _ := json.Marshal(m)
	if len(b) <= object.MaxStringLen {
		return string(b), 0
	}
	m.Datasets = []Lineage{}
	b, _ = json.Marshal(m)
	room, keep := object.MaxStringLen-len(b), 0
	for _, d := range in.Datasets {
		e, _ := json.Marshal(d)
		if room -= len(e) + 1; room < 0 { // and a comma
			break
		}
		keep++
	}
	m.Datasets = in.Datasets[:keep]
	b, _ = json.Marshal(m)
	return string(b), len(in.Datasets) - keep
}

func decodeMessage(s string) (*runMessage, error) {
	var m runMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("run message: %w", err)
	}
	if m.Format > messageFormat {
		return nil, fmt.Errorf("run message format %d is newer than this mlfs knows (%d); upgrade mlfs", m.Format, messageFormat)
	}
	// The message comes from another machine: check what the index and
	// the CLI will show of it.
	if err := parse.CheckRunID(m.ID); err != nil {
		return nil, fmt.Errorf("run message: run id %q: %w", m.ID, err)
	}
	switch m.Status {
	case Running, Finished, Failed, Killed:
	default:
		return nil, fmt.Errorf("run message: status %q is not one of running, finished, failed, killed", m.Status)
	}
	if len(m.Host) > 255 || len(m.User) > 255 || !utf8.ValidString(m.Host+m.User) {
		return nil, fmt.Errorf("run message: host or user is not a short UTF-8 name")
	}
	for _, d := range m.Datasets {
		if _, err := repo.ParseRef(d.Ref); err != nil {
			return nil, fmt.Errorf("run message: dataset read: %w", err)
		}
		if _, err := cas.ParseID(d.ID); err != nil {
			return nil, fmt.Errorf("run message: dataset read %s: %w", d.Ref, err)
		}
	}
	return &m, nil
}

// pubRecord is what the index keeps of a local run's last publish
// (tr/o/<id>): what it published, to tell a change, and the ref to
// delete once the next one exists.
type pubRecord struct {
	Ref     string `json:"ref"`
	Seq     int64  `json:"seq"`
	Version string `json:"version"`
	Tree    string `json:"tree"`
	Message string `json:"message"`
	// Stale are older refs of the run whose removal failed, tried again
	// at the next publish.
	Stale []string `json:"stale,omitempty"`
}

// importRecord is what the index keeps of an imported run (tr/i/<id>).
// Its presence makes the run remote. Version is empty while an import is
// under way (a crash makes the next cycle import it again). Removed marks
// a run removed here: its Version is not imported again, a newer one is.
type importRecord struct {
	Ref     string `json:"ref"`
	Version string `json:"version"`
	Removed bool   `json:"removed,omitempty"`
}

func pubKey(id string) []byte    { return []byte("tr/o/" + id) }
func importKey(id string) []byte { return []byte("tr/i/" + id) }

func readRecord(kv index.KV, key []byte, v any) bool {
	raw, err := kv.Get(key)
	return err == nil && json.Unmarshal(raw, v) == nil
}

func writeRecord(kv index.KV, key []byte, v any) error {
	enc, _ := json.Marshal(v)
	return kv.Set(key, enc)
}

// sharedVersion is the id of run id's newest version in the store that
// this machine published or imported, "" if none.
func sharedVersion(kv index.KV, id string) string {
	var pub pubRecord
	if readRecord(kv, pubKey(id), &pub) {
		return pub.Version
	}
	var imp importRecord
	if readRecord(kv, importKey(id), &imp) {
		return imp.Version
	}
	return ""
}

// loadShared reads the publish and import records of the runs loaded by
// Open. A published run is not published again until it changes.
func (t *Tracker) loadShared() error {
	err := t.kv.Scan([]byte("tr/o/"), func(k, v []byte) error {
		r := t.runs[string(k[len("tr/o/"):])]
		if r != nil && json.Unmarshal(v, &r.pub) == nil {
			r.pubGen = r.gen
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("runs: %w", err)
	}
	err = t.kv.Scan([]byte("tr/i/"), func(k, v []byte) error {
		r := t.runs[string(k[len("tr/i/"):])]
		var rec importRecord
		if r != nil && json.Unmarshal(v, &rec) == nil && !rec.Removed {
			r.remote, r.origin = true, rec
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("runs: %w", err)
	}
	return nil
}

// logOnce logs msg the first time key is seen.
func (t *Tracker) logOnce(key, msg string, args ...any) {
	t.onceMu.Lock()
	seen := t.once[key]
	if !seen && len(t.once) < 10000 {
		t.once[key] = true
	}
	t.onceMu.Unlock()
	if !seen {
		t.log.Warn(msg, args...)
	}
}

// Shared counts what Share did.
type Shared struct {
	Published int `json:"published"`
	Imported  int `json:"imported"`
}

// Share does at once what the tracker does every ShareEvery: with
// Options.Publish it publishes the runs changed since their last publish,
// with Options.Import it imports the runs that other machines published
// and this one has not seen yet. The runs it could not publish or import
// are tried again next time; the error tells about them.
func (t *Tracker) Share(ctx context.Context) (Shared, error) {
	t.shareMu.Lock()
	defer t.shareMu.Unlock()
	var n Shared
	var errs []error
	var err error
	if t.opt.Publish {
		n.Published, err = t.publish(ctx)
		errs = append(errs, err)
	}
	if t.opt.Import {
		n.Imported, err = t.importAll(ctx)
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// Publish publishes now the local runs changed since their last publish,
// and Import imports now the runs other machines published that this one
// has not seen yet (mlfs push and pull); both work whatever Options say,
// which decide only the periodic work. Each returns how many runs it did.
func (t *Tracker) Publish(ctx context.Context) (int, error) {
	if t.opt.Repo == nil {
		return 0, errNoRepo
	}
	t.shareMu.Lock()
	defer t.shareMu.Unlock()
	return t.publish(ctx)
}

func (t *Tracker) Import(ctx context.Context) (int, error) {
	if t.opt.Repo == nil {
		return 0, errNoRepo
	}
	t.shareMu.Lock()
	defer t.shareMu.Unlock()
	return t.importAll(ctx)
}

var errNoRepo = errors.New("runs: publishing and importing runs need a repository")

// shareSoon wakes the sharer now.
func (t *Tracker) shareSoon() {
	select {
	case t.shareKick <- struct{}{}:
	default:
	}
}

// sharer shares every ShareEvery, and when woken.
func (t *Tracker) sharer(ctx context.Context) {
	defer close(t.shareDone)
	tick := time.NewTicker(t.opt.ShareEvery)
	defer tick.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-t.shareKick:
		}
		_, err := t.Share(ctx)
		if ctx.Err() != nil {
			return
		}
		// A store that is away fails every cycle alike: say it once.
		if msg := fmt.Sprint(err); err != nil && msg != last {
			t.log.Warn("share runs through the store; trying again", "err", err)
			last = msg
		} else if err == nil {
			last = ""
		}
	}
}

// runList returns the runs, sorted by id.
func (t *Tracker) runList() []*Run {
	ids := t.IDs()
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Run, 0, len(ids))
	for _, id := range ids {
		if r := t.runs[id]; r != nil {
			out = append(out, r)
		}
	}
	return out
}

// publish publishes every local run changed since its last publish.
// t.shareMu is held.
func (t *Tracker) publish(ctx context.Context) (int, error) {
	n := 0
	var errs []error
	for _, r := range t.runList() {
		// What was written before the call is in it, also when the
		// ingest loop has not got to it yet.
		r.ev.Lock()
		events := len(r.ev.files) > 0 || r.ev.rescan
		r.ev.Unlock()
		if events {
			r.process(ctx)
		}
		r.mu.Lock()
		pending := !r.remote && !r.removed && !r.noPublish && r.gen != r.pubGen
		r.mu.Unlock()
		if !pending {
			continue
		}
		done, err := t.publishRun(ctx, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("publish run %s: %w", r.id, err))
		}
		if done {
			n++
		}
		if ctx.Err() != nil {
			break
		}
	}
	return n, errors.Join(errs...)
}

// artifactWait bounds how long the publish of an ended run waits for its
// artifacts to be stored; what is not stored by then goes in the next
// publish.
const artifactWait = 2 * time.Minute

// waitArtifacts waits until no artifact of r is queued to be stored, or
// for at most d.
func (t *Tracker) waitArtifacts(ctx context.Context, r *Run, d time.Duration) {
	deadline := time.Now().Add(d)
	for {
		r.ev.Lock()
		n := len(r.ev.queued)
		r.ev.Unlock()
		if n == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// errNotOurs means the store holds a run of the same id from elsewhere.
var errNotOurs = errors.New("another machine published a run of this id")

// publishRun publishes r if it differs from its last publish, and tells
// whether it did.
func (t *Tracker) publishRun(ctx context.Context, r *Run) (bool, error) {
	if cas.CheckRefName(runRef(r.id, 1)) != nil {
		t.stopPublishing(r, "run id too long to publish (a ref segment holds 128 bytes); the run stays on this machine")
		return false, nil
	}
	if err := t.openTree(ctx, r); err != nil {
		return false, err
	}
	r.mu.Lock()
	ended := r.info.Status != Running
	r.mu.Unlock()
	if ended {
		// A run that ended is published with its artifacts: wait for the
		// ones closed before the end to be stored, so that another machine
		// never sees a finished run without its model.
		t.waitArtifacts(ctx, r, artifactWait)
	}
	r.mu.Lock()
	gen, prev, in := r.gen, r.pub, r.info.clone()
	r.mu.Unlock()
	msg, cut := encodeMessage(in)
	if cut > 0 {
		t.logOnce("lineage:"+r.id, "a run read more dataset versions than a published run can list; the last ones are left out", "run", r.id, "left out", cut)
	}
	w, err := t.opt.Repo.NewWriter(ctx)
	if err != nil {
		return false, err
	}
	defer w.Close()
	// Artifacts go in once stored (as the tracker does when they are
	// closed): chunking a large one here too would read it twice, and
	// hold the folder's lock meanwhile.
	tree, err := r.tree.StoreTree(ctx, w, func(path string) bool { return strings.HasPrefix(path, "artifacts/") })
	if err != nil {
		return false, err
	}
	if tree.String() == prev.Tree && msg == prev.Message {
		r.published(gen, prev)
		return false, nil
	}
	var parent cas.ID
	if prev.Version != "" {
		parent, _ = cas.ParseID(prev.Version)
	}
	seq, old := prev.Seq+1, prev.Stale
	if prev.Ref != "" {
		old = append(old, prev.Ref)
	} else if seq, old, err = t.claim(ctx, in, seq); err != nil {
		// Refs of this id are an earlier publish whose record was lost
		// (adopted), or another machine's run.
		return false, t.publishConflict(r, err)
	}
	var name string
	var vid cas.ID
	for try := 0; ; try++ {
		name = runRef(r.id, seq)
		vid, err = w.CommitRef(name, runsDataset, tree, parent, msg)
		if !errors.Is(err, cas.ErrExists) || try == 3 {
			break
		}
		var more []string
		if seq, more, err = t.claim(ctx, in, seq+1); err != nil {
			return false, t.publishConflict(r, err)
		}
		old = append(old, more...)
	}
	if err != nil {
		return false, err
	}
	// The new ref exists before the old ones go, so that a listing always
	// finds the run.
	rec := pubRecord{Ref: name, Seq: seq, Version: vid.String(), Tree: tree.String(), Message: msg}
	for _, o := range old {
		if o == name {
			continue
		}
		if err := t.opt.Repo.Store().DeleteRef(ctx, o); err != nil {
			rec.Stale = append(rec.Stale, o)
		}
	}
	if err := writeRecord(t.kv, pubKey(r.id), rec); err != nil {
		return true, err
	}
	r.published(gen, rec)
	return true, nil
}

// published records the publish of r as of change gen.
func (r *Run) published(gen uint64, rec pubRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pub, r.pubGen = rec, gen
}

func (t *Tracker) stopPublishing(r *Run, why string, args ...any) {
	r.mu.Lock()
	r.noPublish = true
	r.mu.Unlock()
	t.logOnce("publish:"+r.id, why, append([]any{"run", r.id}, args...)...)
}

func (t *Tracker) publishConflict(r *Run, err error) error {
	if errors.Is(err, errNotOurs) {
		t.stopPublishing(r, "the store holds another machine's run of this id; this run stays on this machine (start it under a new id to share it)", "err", err)
		return nil
	}
	return err
}

// claim finds the seq to publish run in as (at least from), reading the
// refs of its id: the newest must be this run's (same host and start),
// else the id is another machine's run (errNotOurs). It returns too the
// refs of the run found, to delete once the new one exists.
func (t *Tracker) claim(ctx context.Context, in *Info, from int64) (int64, []string, error) {
	type found struct {
		name string
		seq  int64
		id   cas.ID
	}
	var refs []found
	err := t.opt.Repo.Store().ListRefs(ctx, refsPrefix+in.ID+"/", func(name string, id cas.ID) error {
		if rid, seq, ok := parseRunRef(name); ok && rid == in.ID {
			refs = append(refs, found{name, seq, id})
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	seq := from
	var ours []string
	for i := len(refs) - 1; i >= 0; i-- {
		f := refs[i]
		m, err := t.message(ctx, f.id)
		if err != nil {
			return 0, nil, fmt.Errorf("ref %s: %w", f.name, err)
		}
		mine := m.ID == in.ID && m.Host == in.Host && m.Start == in.Start
		if !mine && len(ours) == 0 {
			return 0, nil, fmt.Errorf("%w: %s (host %s)", errNotOurs, f.name, m.Host)
		}
		if mine {
			ours = append(ours, f.name)
		}
		seq = max(seq, f.seq+1)
	}
	return seq, ours, nil
}

// message reads the message of published version id.
func (t *Tracker) message(ctx context.Context, id cas.ID) (*runMessage, error) {
	v, err := t.version(ctx, id)
	if err != nil {
		return nil, err
	}
	return decodeMessage(v.Message)
}

func (t *Tracker) version(ctx context.Context, id cas.ID) (*object.Version, error) {
	raw, err := t.opt.Objects.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("version %s: %w", id.Short(), err)
	}
	v, err := object.DecodeVersion(raw)
	if err != nil {
		return nil, fmt.Errorf("version %s: %w", id.Short(), err)
	}
	if v.Dataset != runsDataset {
		return nil, fmt.Errorf("version %s holds %q, not a run", id.Short(), v.Dataset)
	}
	return v, nil
}

// remoteRef is the newest ref of a run in the store.
type remoteRef struct {
	name string
	seq  int64
	id   cas.ID
}

// importAll imports every run whose newest ref this machine has not
// imported, and that is not one of its own. t.shareMu is held.
func (t *Tracker) importAll(ctx context.Context) (int, error) {
	newest := map[string]remoteRef{}
	var ids []string
	err := t.opt.Repo.Store().ListRefs(ctx, refsPrefix, func(name string, id cas.ID) error {
		rid, seq, ok := parseRunRef(name)
		if !ok {
			return nil
		}
		cur, seen := newest[rid]
		if !seen {
			ids = append(ids, rid)
		}
		if !seen || seq > cur.seq {
			newest[rid] = remoteRef{name, seq, id}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("list published runs: %w", err)
	}
	n := 0
	var errs []error
	for _, id := range ids {
		done, err := t.importRun(ctx, id, newest[id])
		if err != nil {
			errs = append(errs, fmt.Errorf("import run %s from %s: %w", id, newest[id].name, err))
		}
		if done {
			n++
		}
		if ctx.Err() != nil {
			break
		}
	}
	return n, errors.Join(errs...)
}

// importRun brings run id to its version ref, unless it has it already or
// is this machine's own, and tells whether it did.
func (t *Tracker) importRun(ctx context.Context, id string, ref remoteRef) (bool, error) {
	t.mu.Lock()
	r := t.runs[id]
	if r != nil && !r.remote {
		t.mu.Unlock()
		r.mu.Lock()
		ours := r.pub.Ref != "" && r.pub.Seq >= ref.seq
		r.mu.Unlock()
		if !ours {
			t.logOnce("local:"+id, "a run of this id exists here and another machine published one; the local run is kept, the other is not imported", "run", id, "ref", ref.name)
		}
		return false, nil
	}
	t.importing[id] = true
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.importing, id)
		t.mu.Unlock()
	}()
	var had importRecord
	if r != nil {
		r.mu.Lock()
		had = r.origin
		r.mu.Unlock()
	} else if !readRecord(t.kv, importKey(id), &had) || !had.Removed {
		had = importRecord{}
	}
	if had.Version == ref.id.String() {
		return false, nil
	}

	v, err := t.version(ctx, ref.id)
	if err != nil {
		return false, err
	}
	m, err := decodeMessage(v.Message)
	if err != nil {
		return false, err
	}
	if m.ID != id {
		return false, fmt.Errorf("its message names run %q", m.ID)
	}
	// From here on the run is remote, also after a crash, which leaves
	// the import to be done again (Version is empty).
	rec := importRecord{Ref: ref.name}
	if err := writeRecord(t.kv, importKey(id), rec); err != nil {
		return false, err
	}
	var tree *worktree.Tree
	if r == nil {
		dir := filepath.Join(t.opt.DataDir, id)
		if err := worktree.Remove(t.kv, treeName(id), dir); err != nil {
			return false, err
		}
		if tree, err = worktree.Open(ctx, t.kv, dir, treeName(id), ref.id, v.Tree, t.opt.Objects, t.log); err != nil {
			return false, err
		}
	} else {
		if err := t.openTree(ctx, r); err != nil {
			return false, err
		}
		tree = r.tree
		if err := tree.Checkout(ctx, ref.id, v.Tree, true); err != nil {
			return false, err
		}
	}
	// Every folder is read once now, so that listing the run (also
	// without a daemon, from the index alone) needs no store.
	if err := tree.Walk(ctx, worktree.RootIno, func(string, worktree.Attr) error { return nil }); err != nil {
		return false, err
	}

	// Indexed again from scratch, from its files, on the side: the run's
	// record answers listings meanwhile.
	in := Info{ID: id, Experiment: DefaultExperiment, Status: m.Status, Start: m.Start, End: m.End, LastWrite: m.LastWrite,
		Host: m.Host, User: m.User, Params: map[string]string{}, Tags: map[string]string{}, Metrics: map[string]Metric{}, Datasets: m.Datasets}
	if in.Datasets == nil {
		in.Datasets = []Lineage{}
	}
	nr := t.newRun(in)
	nr.tree, nr.remote = tree, true
	nr.mu.Lock()
	nr.loaded, nr.sources, nr.byIno = true, map[string]*source{}, map[uint64]*source{}
	nr.rescan(ctx)
	nr.recompute()
	nr.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return false, err
	}
	target := nr
	if r != nil {
		r.mu.Lock()
		r.info, r.sources, r.byIno, r.errs = nr.info, nr.sources, nr.byIno, nr.errs
		r.drops, r.gone = nil, nil
		r.loaded = true
		r.mu.Unlock()
		target = r
	}
	target.mu.Lock()
	target.wipe, target.dirty, target.errsDirty = true, true, true
	target.mu.Unlock()
	if _, err := target.commit(true); err != nil {
		return false, err
	}
	rec.Version = ref.id.String()
	if err := writeRecord(t.kv, importKey(id), rec); err != nil {
		return false, err
	}
	target.mu.Lock()
	target.origin = rec
	target.unload() // all in the index; nothing writes it here
	target.mu.Unlock()
	if err := t.syncKV(); err != nil {
		t.log.Warn("sync the index", "err", err)
	}
	if r == nil {
		t.mu.Lock()
		t.runs[id] = nr
		t.mu.Unlock()
	} else if t.OnRemove != nil {
		t.OnRemove(id) // its files were replaced: the mount forgets the old ones
	}
	t.log.Info("run imported", "run", id, "ref", ref.name, "status", in.Status, "host", in.Host)
	return true, nil
}
