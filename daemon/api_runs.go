package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mlfs/mlfs/tracking"
)

// The runs routes answer what tracking.View asks.
func (s *server) runRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/runs", s.runsSearch)
	mux.HandleFunc("GET /v1/runs/show", s.runsShow)
	mux.HandleFunc("GET /v1/runs/history", s.runsHistory)
	mux.HandleFunc("POST /v1/runs/rm", s.runsRemove)
}

func (s *server) runs() (tracking.View, error) {
	if s.r.Runs == nil {
		return nil, errors.New("this daemon keeps no runs")
	}
	return s.r.Runs, nil
}

func (s *server) runsSearch(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	q := req.URL.Query()
	sr := tracking.SearchRequest{Filter: q.Get("filter"), Sort: q.Get("sort")}
	var err error
	if l := q.Get("limit"); l != "" {
		if sr.Limit, err = strconv.Atoi(l); err != nil {
			err = invalid(fmt.Errorf("limit %q: not a number", l))
		}
	}
	var v tracking.View
	if err == nil {
		v, err = s.runs()
	}
	var out *tracking.SearchResult
	if err == nil {
		if out, err = v.Search(req.Context(), sr); err != nil {
			err = invalid(err)
		}
	}
	s.done(req, "runs", start, err, "filter", sr.Filter, "sort", sr.Sort)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) runsShow(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	id := req.URL.Query().Get("id")
	v, err := s.runs()
	var d *tracking.Detail
	if err == nil {
		d, err = v.Show(req.Context(), id)
	}
	s.done(req, "runs show", start, err, "run", id)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *server) runsHistory(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	q := req.URL.Query()
	id, metric := q.Get("id"), q.Get("metric")
	points, err := strconv.Atoi(q.Get("points"))
	if err != nil {
		err = invalid(fmt.Errorf("points %q: not a number", q.Get("points")))
	}
	var v tracking.View
	var out []tracking.Bucket
	if err == nil {
		v, err = s.runs()
	}
	if err == nil {
		out, err = v.History(req.Context(), id, metric, points)
	}
	s.done(req, "runs history", start, err, "run", id, "metric", metric)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

type wireRunRemove struct {
	ID    string `json:"id"`
	Force bool   `json:"force"`
}

func (s *server) runsRemove(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	var in wireRunRemove
	if err := readBody(w, req, &in); err != nil {
		s.fail(w, invalid(err))
		return
	}
	v, err := s.runs()
	if err == nil {
		err = v.RemoveRun(req.Context(), in.ID, in.Force)
	}
	s.done(req, "runs rm", start, err, "run", in.ID)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

var _ tracking.View = (*Client)(nil)

// Search is tracking.View.Search through the daemon.
func (c *Client) Search(ctx context.Context, req tracking.SearchRequest) (*tracking.SearchResult, error) {
	var out tracking.SearchResult
	q := url.Values{"filter": {req.Filter}, "sort": {req.Sort}, "limit": {strconv.Itoa(req.Limit)}}
	if err := c.call(ctx, "GET", "/v1/runs?"+q.Encode(), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Show is tracking.View.Show through the daemon.
func (c *Client) Show(ctx context.Context, id string) (*tracking.Detail, error) {
	var out tracking.Detail
	if err := c.call(ctx, "GET", "/v1/runs/show?"+url.Values{"id": {id}}.Encode(), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// History is tracking.View.History through the daemon.
func (c *Client) History(ctx context.Context, id, metric string, points int) ([]tracking.Bucket, error) {
	var out []tracking.Bucket
	err := c.call(ctx, "GET", "/v1/runs/history?"+url.Values{"id": {id}, "metric": {metric}, "points": {strconv.Itoa(points)}}.Encode(), nil, nil, &out)
	return out, err
}

// RemoveRun is tracking.View.RemoveRun through the daemon.
func (c *Client) RemoveRun(ctx context.Context, id string, force bool) error {
	return c.call(ctx, "POST", "/v1/runs/rm", wireRunRemove{ID: id, Force: force}, nil, &struct{}{})
}
