package tracking

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
	"github.com/mlfs/mlfs/tracking/parse"
	"github.com/mlfs/mlfs/tracking/series"
	"github.com/mlfs/mlfs/worktree"
)

// kind is what a tracked file holds.
type kind uint8

const (
	kindMetricLines kind = iota + 1 // metrics/<key>
	kindJSONL                       // metrics.jsonl
	kindCSV                         // metrics.csv
	kindParam                       // params/<key>
	kindTag                         // tags/<key>
	kindParamsJSON                  // params.json
	kindParamsYAML                  // params.yaml
)

// Limits on the values of params and tags (MLflow's).
const (
	maxParam      = 6000
	maxTag        = 8000
	maxParamsFile = 16 << 20
)

// classify tells whether path, relative to the run folder, is a file the
// tracker parses, and its metric, param or tag key. A bad key is an error
// to report.
func classify(path string) (kind, string, error) {
	switch path {
	case "metrics.jsonl":
		return kindJSONL, "", nil
	case "metrics.csv":
		return kindCSV, "", nil
	case "params.json":
		return kindParamsJSON, "", nil
	case "params.yaml", "params.yml":
		return kindParamsYAML, "", nil
	}
	dir, key, ok := strings.Cut(path, "/")
	if !ok {
		return 0, "", nil
	}
	var k kind
	switch dir {
	case "metrics":
		k = kindMetricLines
	case "params":
		k = kindParam
	case "tags":
		k = kindTag
	default:
		return 0, "", nil
	}
	if err := parse.CheckKey(key); err != nil {
		return 0, "", err
	}
	return k, key, nil
}

// source is one tracked file of a run.
type source struct {
	path string
	kind kind
	key  string
	ino  uint64

	parser *parse.Parser // metric files
	fed    int64         // bytes of the file given to the parser
	// metrics holds the summary and point count of each metric of the
	// file; bufs the buffers of those in use since the run became active.
	metrics map[string]*summary
	bufs    map[string]*seriesBuf
	values  map[string]string // params or tags

	reset    bool // parse again from the start
	dirty    bool // state to commit
	unsynced bool
}

// sourceState is a source as stored.
type sourceState struct {
	Ino     uint64            `json:"ino"`
	Kind    kind              `json:"kind"`
	Key     string            `json:"key,omitempty"`
	Parser  []byte            `json:"parser,omitempty"`
	Metrics map[string]Metric `json:"metrics,omitempty"`
	Values  map[string]string `json:"values,omitempty"`
}

func (s *source) state() []byte {
	st := sourceState{Ino: s.ino, Kind: s.kind, Key: s.key, Values: s.values}
	if s.parser != nil {
		st.Parser = s.parser.State()
	}
	if len(s.metrics) > 0 {
		st.Metrics = make(map[string]Metric, len(s.metrics))
		for k, m := range s.metrics {
			st.Metrics[k] = m.Metric
		}
	}
	b, _ := json.Marshal(st)
	return b
}

func decodeSource(path string, b []byte) (*source, error) {
	var st sourceState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("tracked file %s: %w", path, err)
	}
	s := &source{path: path, kind: st.Kind, key: st.Key, ino: st.Ino, values: st.Values, metrics: map[string]*summary{}, bufs: map[string]*seriesBuf{}}
	for k, m := range st.Metrics {
		s.metrics[k] = &summary{Metric: m, hasLast: m.Count > 0}
	}
	if s.isMetrics() {
		if len(st.Parser) == 0 {
			s.parser = s.newParser()
		} else {
			p, err := parse.Restore(st.Parser)
			if err != nil {
				return nil, fmt.Errorf("tracked file %s: %w", path, err)
			}
			s.parser = p
			s.fed = p.Consumed()
		}
	}
	return s, nil
}

func newSource(path string, k kind, key string, ino uint64) *source {
	s := &source{path: path, kind: k, key: key, ino: ino, metrics: map[string]*summary{}, bufs: map[string]*seriesBuf{}, dirty: true}
	if s.isMetrics() {
		s.parser = s.newParser()
	}
	return s
}

func (s *source) isMetrics() bool {
	return s.kind == kindMetricLines || s.kind == kindJSONL || s.kind == kindCSV
}

func (s *source) newParser() *parse.Parser {
	switch s.kind {
	case kindJSONL:
		return parse.New(parse.JSONL, "")
	case kindCSV:
		return parse.New(parse.CSV, "")
	}
	return parse.New(parse.MetricLines, s.key)
}

// readAll reads a small file whole, at most max+1 bytes.
func (r *Run) readAll(ctx context.Context, ino uint64, max int) ([]byte, error) {
	h, err := r.tree.Open(ctx, ino, false, false)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	c, err := h.Content()
	if err != nil {
		return nil, err
	}
	rd, err := r.reader(ctx, h, c)
	if err != nil {
		return nil, err
	}
	size := min(c.Size, int64(max)+1)
	buf := make([]byte, size)
	n, err := rd.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

// readerAt reads a file's bytes; at the end it returns fewer, and no
// error, as worktree.Handle's ReadAt does.
type readerAt interface {
	ReadAt(p []byte, off int64) (int, error)
}

// reader reads the file of handle h, whose bytes are where c says: in
// the local data file (a file this machine writes) or in the store (the
// files of an imported run).
func (r *Run) reader(ctx context.Context, h *worktree.Handle, c worktree.Content) (readerAt, error) {
	if c.Local {
		return h, nil
	}
	if r.t.opt.Objects == nil {
		return nil, fmt.Errorf("%w: file is in the store, and the tracker has no store", syscall.EIO)
	}
	return openStored(ctx, r.t.opt.Objects, c.ID)
}

// stored reads a file object's bytes from the store, chunk by chunk,
// keeping the last chunk read: the parsers read forward.
type stored struct {
	ctx    context.Context
	objs   cas.Getter
	file   *object.File
	starts []int64 // offset of each chunk
	cur    int     // index of data's chunk, -1 for none
	data   []byte
}

func openStored(ctx context.Context, objs cas.Getter, id cas.ID) (*stored, error) {
	raw, err := objs.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("file object %s: %w", id.Short(), err)
	}
	f, err := object.DecodeFile(raw)
	if err != nil {
		return nil, fmt.Errorf("file object %s: %w", id.Short(), err)
	}
	s := &stored{ctx: ctx, objs: objs, file: f, starts: make([]int64, len(f.Chunks)), cur: -1}
	var off int64
	for i, c := range f.Chunks {
		s.starts[i] = off
		off += int64(c.Size)
	}
	return s, nil
}

func (s *stored) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) && off < s.file.Size {
		// The chunk holding off: the last one starting at or before it.
		i := sort.Search(len(s.starts), func(i int) bool { return s.starts[i] > off }) - 1
		if i != s.cur {
			c := s.file.Chunks[i]
			b, err := s.objs.Get(s.ctx, c.ID)
			if err != nil {
				return n, fmt.Errorf("chunk %s: %w", c.ID.Short(), err)
			}
			if len(b) != int(c.Size) {
				return n, fmt.Errorf("chunk %s: %d bytes, want %d: %w", c.ID.Short(), len(b), c.Size, cas.ErrCorrupt)
			}
			s.cur, s.data = i, b
		}
		k := copy(p[n:], s.data[off-s.starts[i]:])
		n += k
		off += int64(k)
	}
	return n, nil
}

// readBufs are the buffers ingest reads metric files into: runs are
// parsed by the ingest loop and, at once, by callers that want them up to
// date (Show, SetStatus) and by imports.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// ingest brings the source up to date with its file, reporting points to
// the run. It reads only the bytes not parsed yet.
func (r *Run) ingest(ctx context.Context, s *source, final bool) {
	if s.reset {
		r.resetSource(s)
	}
	switch s.kind {
	case kindParam, kindTag:
		limit := maxParam
		if s.kind == kindTag {
			limit = maxTag
		}
		r.clearErrors(s.path)
		// Read a little past the limit: white space around the value
		// does not count.
		const slack = 64
		data, err := r.readAll(ctx, s.ino, limit+slack)
		if err != nil {
			r.log.Warn("read a tracked file", "run", r.id, "file", s.path, "err", err)
			return
		}
		v, err := parse.Value(data, limit)
		s.values = map[string]string{}
		if len(data) > limit+slack {
			err = fmt.Errorf("value larger than %d bytes", limit)
		}
		if err != nil {
			r.addError(s.path, 0, err.Error())
		} else {
			s.values[s.key] = v
		}
		s.dirty = true
		return
	case kindParamsJSON, kindParamsYAML:
		if r.tree.Writing(s.ino) && !final {
			return // parsed once its writer closes it
		}
		r.clearErrors(s.path)
		data, err := r.readAll(ctx, s.ino, maxParamsFile)
		if err != nil {
			r.log.Warn("read a tracked file", "run", r.id, "file", s.path, "err", err)
			return
		}
		if len(data) > maxParamsFile {
			r.addError(s.path, 0, "file larger than 16 MiB; not parsed")
			s.values = nil
			s.dirty = true
			return
		}
		var vals map[string]string
		var problems []error
		if s.kind == kindParamsJSON {
			vals, problems, err = parse.ParamsJSON(data)
		} else {
			vals, problems, err = parse.ParamsYAML(data)
		}
		if err != nil {
			r.addError(s.path, 0, err.Error())
		}
		for _, e := range problems {
			r.addError(s.path, 0, e.Error())
		}
		s.values = vals
		s.dirty = true
		return
	}
	h, err := r.tree.Open(ctx, s.ino, false, false)
	if err != nil {
		r.log.Warn("read a tracked file", "run", r.id, "file", s.path, "err", err)
		return
	}
	defer h.Close()
	c, err := h.Content()
	if err != nil {
		return
	}
	rd, err := r.reader(ctx, h, c)
	if err != nil {
		r.log.Warn("read a tracked file", "run", r.id, "file", s.path, "err", err)
		return
	}
	if c.Size < s.fed {
		// Truncated without our seeing it: parse again.
		r.resetSource(s)
	}
	now := time.Now().UnixMilli()
	if r.remote {
		// The time of each write stayed on the machine that wrote the
		// file: its lines without a time take the time the file last
		// changed there, the same at every import.
		if a, err := r.tree.GetAttr(s.ino); err == nil {
			now = a.MTime / 1e6
		}
	}
	emit := func(p parse.Point) {
		if p.Time == 0 {
			p.Time = now
		}
		m := s.metrics[p.Key]
		if m == nil {
			m = &summary{}
			s.metrics[p.Key] = m
		}
		b := s.bufs[p.Key]
		if b == nil {
			var err error
			if b, err = restoreSeries(r.kv, r.id, s.path, p.Key, m.Count); err != nil {
				r.log.Error("restore a metric; its history restarts here", "run", r.id, "file", s.path, "metric", p.Key, "err", err)
				b = &seriesBuf{count: m.Count, committed: m.Count, ds: series.NewDownsample(series.Target)}
			}
			s.bufs[p.Key] = b
		}
		sp := series.Point{Step: p.Step, Value: p.Value, Time: p.Time}
		m.add(sp)
		b.add(sp)
		r.t.points.Add(1)
	}
	report := func(e parse.Error) { r.addError(s.path, e.Line, e.Reason) }
	bufp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bufp)
	buf := *bufp
	for s.fed < c.Size && ctx.Err() == nil {
		n, err := rd.ReadAt(buf[:min(int64(len(buf)), c.Size-s.fed)], s.fed)
		if n > 0 {
			r.t.bytesRead.Add(int64(n))
			s.parser.Feed(buf[:n], emit, report)
			s.fed += int64(n)
			s.dirty, s.unsynced = true, true
		}
		if err != nil || n == 0 {
			break
		}
	}
	if final && !r.writing(s.ino) {
		s.parser.End(emit, report)
	}
}

// resetSource forgets everything parsed from s, to parse it again.
func (r *Run) resetSource(s *source) {
	s.reset = false
	s.fed = 0
	if s.isMetrics() {
		s.parser = s.newParser()
	}
	s.metrics = map[string]*summary{}
	s.bufs = map[string]*seriesBuf{}
	s.values = nil
	s.dirty = true
	r.clearErrors(s.path)
	r.drops = append(r.drops, s.path)
}
