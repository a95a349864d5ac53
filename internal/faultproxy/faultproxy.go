package faultproxy

import (
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is what the proxy does to one request.
type Fault int

// The faults; see the package doc.
const (
	None Fault = iota
	Error
	Reset
	Stall
	Truncate
	Cut
)

// DefaultStallFor is how long a Stall holds an answer if Plan.StallFor is
// zero.
const DefaultStallFor = time.Minute

// Plan says which requests meet which faults.
type Plan struct {
	// Seed seeds the generator that draws faults.
	Seed uint64
	// The probability of each fault per request; they should sum to at
	// most 1.
	Error, Reset, Stall, Truncate, Cut float64
	// Rule, if set, picks the fault of every request instead of the
	// probabilities; n counts from 1 the requests that arrived under this
	// plan while the proxy was enabled.
	Rule func(r *http.Request, n int) Fault
	// StallFor is how long a Stall holds an answer.
	StallFor time.Duration
	// ErrorResponse writes the answer of an Error; nil means S3SlowDown.
	ErrorResponse func(w http.ResponseWriter, r *http.Request)
}

// Stats count requests and the faults they met.
type Stats struct {
	Requests    int64 // requests received
	Errors      int64
	Resets      int64
	Stalls      int64
	Truncations int64
	Cuts        int64
}

// Proxy is an http.Handler that forwards requests to a target server,
// injecting the faults of its Plan.
type Proxy struct {
	target  *url.URL
	client  *http.Client
	enabled atomic.Bool
	closed  chan struct{}
	close   sync.Once

	mu    sync.Mutex
	plan  Plan
	n     int
	rng   *rand.Rand
	stats Stats
}

// New returns a proxy to the server at target (scheme and host; the
// request's path is kept) that follows p.
func New(target *url.URL, p Plan) *Proxy {
	x := &Proxy{
		target: target,
		client: &http.Client{
			// The answer goes back as it came: not decompressed, not
			// redirected.
			Transport:     &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		closed: make(chan struct{}),
	}
	x.enabled.Store(true)
	x.SetPlan(p)
	return x
}

// SetPlan replaces the plan, restarting its request count and generator.
func (x *Proxy) SetPlan(p Plan) {
	if p.StallFor <= 0 {
		p.StallFor = DefaultStallFor
	}
	if p.ErrorResponse == nil {
		p.ErrorResponse = S3SlowDown
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.plan, x.n = p, 0
	x.rng = rand.New(rand.NewPCG(p.Seed, p.Seed^0x5851f42d4c957f2d))
}

// SetEnabled turns fault injection on or off; off, the proxy forwards
// every request untouched. A new Proxy is on.
func (x *Proxy) SetEnabled(on bool) { x.enabled.Store(on) }

// Stats returns the counts so far.
func (x *Proxy) Stats() Stats {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.stats
}

// Close ends the stalls in progress and releases idle connections to the
// target. Call it before closing the server the proxy runs in, which
// waits for its handlers.
func (x *Proxy) Close() {
	x.close.Do(func() { close(x.closed) })
	x.client.CloseIdleConnections()
}

// choose picks the fault of r and counts it.
func (x *Proxy) choose(r *http.Request) (Fault, Plan) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.stats.Requests++
	p := x.plan
	if !x.enabled.Load() {
		return None, p
	}
	x.n++
	f := None
	if p.Rule != nil {
		f = p.Rule(r, x.n)
	} else {
		v := x.rng.Float64()
		for _, c := range []struct {
			f Fault
			p float64
		}{{Error, p.Error}, {Reset, p.Reset}, {Stall, p.Stall}, {Truncate, p.Truncate}, {Cut, p.Cut}} {
			if v < c.p {
				f = c.f
				break
			}
			v -= c.p
		}
	}
	switch f {
	case Error:
		x.stats.Errors++
	case Reset:
		x.stats.Resets++
	case Stall:
		x.stats.Stalls++
	case Cut:
		x.stats.Cuts++
	}
	return f, p
}

func (x *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, p := x.choose(r)
	if f == Error {
		io.Copy(io.Discard, r.Body) // as a server that read the request and refused it
		p.ErrorResponse(w, r)
		return
	}
	if f == Cut {
		if r.ContentLength > 0 {
			io.CopyN(io.Discard, r.Body, r.ContentLength/2)
		}
		reset(w)
		return
	}
	resp, body, err := x.forward(r)
	if err != nil {
		http.Error(w, "faultproxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	switch f {
	case Reset:
		reset(w)
		return
	case Stall:
		t := time.NewTimer(p.StallFor)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-x.closed:
			return
		}
	}
	h := w.Header()
	for k, v := range resp.Header {
		if !hopByHop[k] {
			h[k] = v
		}
	}
	if f == Truncate && len(body) >= 2 && r.Method != http.MethodHead {
		x.mu.Lock()
		x.stats.Truncations++
		x.mu.Unlock()
		truncate(w, resp.StatusCode, body)
		return
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
}

// hopByHop are the headers that describe a connection, not the message.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Expect": true,
}

// forward sends r to the target and reads the whole answer.
func (x *Proxy) forward(r *http.Request) (*http.Response, []byte, error) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = x.target.Scheme, x.target.Host
	// out.Host stays the client's, which signed requests cover.
	for k := range hopByHop {
		out.Header.Del(k)
	}
	if r.ContentLength == 0 {
		out.Body = nil
	}
	resp, err := x.client.Do(out)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp, body, nil
}

// reset closes the client's connection without an answer, with a TCP RST
// where the connection is TCP.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // the server drops the connection
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// truncate sends the status, a Content-Length for all of body and the
// first half of it, then closes the connection.
func truncate(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body[:len(body)/2])
	rc := http.NewResponseController(w)
	rc.Flush()
	conn, _, err := rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// S3SlowDown answers as S3 does when it throttles: 503 with code SlowDown.
func S3SlowDown(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>faultproxy</RequestId></Error>`)
}

// GCSUnavailable answers as the GCS JSON API does when a backend fails:
// 503 with reason backendError.
func GCSUnavailable(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `{"error":{"code":503,"message":"Backend Error","errors":[{"message":"Backend Error","domain":"global","reason":"backendError"}]}}`)
}
