package faultproxy_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlfs/mlfs/internal/faultproxy"
)

var payload = bytes.Repeat([]byte("abcdefghij"), 1000)

// setup starts an upstream that answers GET with payload and PUT with what
// it was sent, and the proxy in front of it.
func setup(t *testing.T, p faultproxy.Plan) (*faultproxy.Proxy, string, *atomic.Int32, *http.Client) {
	t.Helper()
	var hits atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("X-Upstream", "yes")
		if r.Method == http.MethodPut {
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
			return
		}
		w.Write(payload)
	}))
	t.Cleanup(up.Close)
	u, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	x := faultproxy.New(u, p)
	srv := httptest.NewServer(x)
	t.Cleanup(srv.Close)
	t.Cleanup(x.Close) // before srv.Close, which waits for stalled handlers
	// A new connection per request, so that the transport never retries a
	// request on its own after a reset.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	return x, srv.URL, &hits, client
}

func get(c *http.Client, u string) ([]byte, *http.Response, error) {
	resp, err := c.Get(u)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp, err
}

func TestPassThrough(t *testing.T) {
	x, u, hits, c := setup(t, faultproxy.Plan{})
	b, resp, err := get(c, u+"/some/key?x=1")
	if err != nil || !bytes.Equal(b, payload) || resp.Header.Get("X-Upstream") != "yes" {
		t.Fatalf("get: %v, %d bytes", err, len(b))
	}
	req, _ := http.NewRequest(http.MethodPut, u+"/k", strings.NewReader("put body"))
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "put body" {
		t.Fatalf("put answered %q", got)
	}
	if hits.Load() != 2 || x.Stats().Requests != 2 {
		t.Fatalf("%d upstream hits, stats %+v", hits.Load(), x.Stats())
	}
}

func TestEachFault(t *testing.T) {
	only := func(f faultproxy.Fault) faultproxy.Plan {
		return faultproxy.Plan{Rule: func(*http.Request, int) faultproxy.Fault { return f }, StallFor: time.Hour}
	}

	t.Run("error", func(t *testing.T) {
		x, u, hits, c := setup(t, only(faultproxy.Error))
		b, resp, err := get(c, u+"/k")
		if err != nil || resp.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(b, []byte("<Code>SlowDown</Code>")) {
			t.Fatalf("get: %v, %s", err, b)
		}
		if hits.Load() != 0 || x.Stats().Errors != 1 {
			t.Fatalf("%d upstream hits, stats %+v", hits.Load(), x.Stats())
		}
	})

	t.Run("reset", func(t *testing.T) {
		x, u, hits, c := setup(t, only(faultproxy.Reset))
		if _, _, err := get(c, u+"/k"); err == nil {
			t.Fatal("get through a reset succeeded")
		}
		if hits.Load() != 1 || x.Stats().Resets != 1 {
			t.Fatalf("the request must reach the server before the reset: %d hits, stats %+v", hits.Load(), x.Stats())
		}
	})

	t.Run("stall", func(t *testing.T) {
		x, u, _, c := setup(t, only(faultproxy.Stall))
		c.Timeout = 50 * time.Millisecond
		start := time.Now()
		if _, _, err := get(c, u+"/k"); err == nil {
			t.Fatal("get through a stall succeeded")
		}
		if time.Since(start) > 2*time.Second || x.Stats().Stalls != 1 {
			t.Fatalf("after %v, stats %+v", time.Since(start), x.Stats())
		}
	})

	t.Run("short stall", func(t *testing.T) {
		p := only(faultproxy.Stall)
		p.StallFor = 30 * time.Millisecond
		_, u, _, c := setup(t, p)
		start := time.Now()
		if b, _, err := get(c, u+"/k"); err != nil || !bytes.Equal(b, payload) || time.Since(start) < 30*time.Millisecond {
			t.Fatalf("get after a short stall: %v, %d bytes, %v", err, len(b), time.Since(start))
		}
	})

	t.Run("cut", func(t *testing.T) {
		x, u, hits, c := setup(t, only(faultproxy.Cut))
		req, _ := http.NewRequest(http.MethodPut, u+"/k", bytes.NewReader(payload))
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("put through a cut succeeded: %s", resp.Status)
		}
		if _, _, err := get(c, u+"/k"); err == nil {
			t.Fatal("get through a cut succeeded")
		}
		if hits.Load() != 0 || x.Stats().Cuts != 2 {
			t.Fatalf("a cut request must never reach the server: %d hits, stats %+v", hits.Load(), x.Stats())
		}
	})

	t.Run("truncate", func(t *testing.T) {
		x, u, _, c := setup(t, only(faultproxy.Truncate))
		b, resp, err := get(c, u+"/k")
		if !errors.Is(err, io.ErrUnexpectedEOF) || len(b) != len(payload)/2 || resp.ContentLength != int64(len(payload)) {
			t.Fatalf("get: %v, %d bytes", err, len(b))
		}
		if x.Stats().Truncations != 1 {
			t.Fatalf("stats %+v", x.Stats())
		}
	})
}

// Faults come at the planned rates, in the same order for the same seed,
// and not at all while disabled.
func TestProbabilities(t *testing.T) {
	plan := faultproxy.Plan{Seed: 3, Error: 0.2, Reset: 0.1, Truncate: 0.1, Stall: 0.1, StallFor: time.Millisecond}
	run := func() ([]bool, faultproxy.Stats) {
		x, u, _, c := setup(t, plan)
		var failed []bool
		for range 300 {
			b, resp, err := get(c, u+"/k")
			failed = append(failed, err != nil || resp.StatusCode != 200 || !bytes.Equal(b, payload))
		}
		return failed, x.Stats()
	}
	a, st := run()
	b, _ := run()
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave different faults")
	}
	within := func(n int64, p float64) bool { return float64(n) > 300*p*0.5 && float64(n) < 300*p*1.6 }
	if !within(st.Errors, 0.2) || !within(st.Resets, 0.1) || !within(st.Truncations, 0.1) || !within(st.Stalls, 0.1) {
		t.Fatalf("stats %+v for rates %+v", st, plan)
	}
	if n := int64(len(slices.DeleteFunc(a, func(f bool) bool { return !f }))); n != st.Errors+st.Resets+st.Truncations {
		t.Fatalf("%d requests failed, %d faults that fail one injected", n, st.Errors+st.Resets+st.Truncations)
	}

	x, u, _, c := setup(t, faultproxy.Plan{Error: 1})
	x.SetEnabled(false)
	if _, resp, err := get(c, u+"/k"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("get while disabled: %v", err)
	}
	x.SetEnabled(true)
	if _, resp, err := get(c, u+"/k"); err != nil || resp.StatusCode != 503 {
		t.Fatalf("get after enabling: %v", err)
	}
	x.SetPlan(faultproxy.Plan{Rule: func(_ *http.Request, n int) faultproxy.Fault {
		if n == 2 {
			return faultproxy.Error
		}
		return faultproxy.None
	}})
	for i := 1; i <= 3; i++ {
		if _, resp, err := get(c, u+"/k"); err != nil || (resp.StatusCode == 503) != (i == 2) {
			t.Fatalf("request %d under a rule: %v, %v", i, err, resp.Status)
		}
	}
}
