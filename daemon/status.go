package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mlfs/mlfs/cas/cache"
	"github.com/mlfs/mlfs/tracking"
	"github.com/mlfs/mlfs/worktree"
)

// Status is what `mlfs status` shows of a running daemon.
type Status struct {
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Mount   string    `json:"mount"`
	Store   string    `json:"store"`
	Remote  string    `json:"remote,omitempty"`
	// RemoteRequests counts the requests made to the remote since the
	// daemon started, by operation (get, get_range, put, ...).
	RemoteRequests map[string]int64 `json:"remote_requests,omitempty"`
	Cache          cache.Stats      `json:"cache"`
	Runs           tracking.Stats   `json:"runs"`
	Errors         []StatusLine     `json:"errors"` // most recent last
}

// StatusLine is one error, or warning the user must see, that the daemon
// logged.
type StatusLine struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"` // a warning's starts with "WARN "
}

// statusWarnings are the messages of the warnings that the status shows
// with the errors: what went wrong without failing, and that the user
// would not otherwise learn. Other warnings (a retry, a rejected metric
// line) are many and go to the log only.
var statusWarnings = map[string]bool{
	worktree.StaleSnapshot: true,
}

// errorRing is an slog handler that keeps the last errors (and the
// statusWarnings) it sees, on top of passing every record on: why a read
// gave EIO is then one `mlfs status` away, not only in the log.
type errorRing struct {
	slog.Handler
	ring *ring
	pre  string // attributes of WithAttrs, as text
}

type ring struct {
	mu    sync.Mutex
	lines []StatusLine
}

const ringSize = 50

func newErrorRing(h slog.Handler) *errorRing { return &errorRing{Handler: h, ring: &ring{}} }

func (e *errorRing) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError || r.Level >= slog.LevelWarn && statusWarnings[r.Message] {
		var b strings.Builder
		if r.Level < slog.LevelError {
			b.WriteString("WARN ")
		}
		b.WriteString(r.Message)
		b.WriteString(e.pre)
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.Key + "=" + a.Value.String())
			return true
		})
		e.ring.mu.Lock()
		e.ring.lines = append(e.ring.lines, StatusLine{Time: r.Time, Level: r.Level.String(), Message: b.String()})
		if len(e.ring.lines) > ringSize {
			e.ring.lines = e.ring.lines[len(e.ring.lines)-ringSize:]
		}
		e.ring.mu.Unlock()
	}
	return e.Handler.Handle(ctx, r)
}

func (e *errorRing) WithAttrs(as []slog.Attr) slog.Handler {
	pre := e.pre
	for _, a := range as {
		pre += " " + a.Key + "=" + a.Value.String()
	}
	return &errorRing{Handler: e.Handler.WithAttrs(as), ring: e.ring, pre: pre}
}

func (e *errorRing) WithGroup(name string) slog.Handler {
	return &errorRing{Handler: e.Handler.WithGroup(name), ring: e.ring, pre: e.pre}
}

func (e *errorRing) recent() []StatusLine {
	e.ring.mu.Lock()
	defer e.ring.mu.Unlock()
	return append([]StatusLine(nil), e.ring.lines...)
}

func (s *server) status(w http.ResponseWriter, req *http.Request) {
	if s.r.Status == nil {
		writeJSON(w, http.StatusOK, Status{PID: os.Getpid(), Store: s.r.Config.Store})
		return
	}
	writeJSON(w, http.StatusOK, s.r.Status())
}

// Status asks the daemon how it is.
func (s *server) purgeCache(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	err := s.r.PurgeCache()
	s.done(req, "cache purge", start, err)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// PurgeCache empties the daemon's chunk cache.
func (c *Client) PurgeCache(ctx context.Context) error {
	return c.call(ctx, "POST", "/v1/cache/purge", struct{}{}, nil, &struct{}{})
}

func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.call(ctx, "GET", "/v1/status", nil, nil, &st)
	return st, err
}
