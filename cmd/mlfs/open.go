package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mlfs/mlfs/cas/local"
	"github.com/mlfs/mlfs/config"
	"github.com/mlfs/mlfs/index"
	"github.com/mlfs/mlfs/index/badgerkv"
	"github.com/mlfs/mlfs/repo"
)

// session is an open repo and what must be closed after it.
type session struct {
	cfg   *config.Config
	repo  *repo.Repo
	close func() error
}

func (g *globals) config() (*config.Config, error) {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return nil, err
	}
	if g.store != "" {
		abs, err := filepath.Abs(g.store)
		if err != nil {
			return nil, err
		}
		cfg.Store = abs
	}
	return cfg, nil
}

// open opens the local store and, if withIndex, the local index. The index
// only makes repeated adds faster; if another mlfs process holds it, mlfs
// goes on without it.
func (g *globals) open(withIndex bool) (*session, error) {
	cfg, err := g.config()
	if err != nil {
		return nil, err
	}
	st, err := local.Open(cfg.Store)
	if err != nil {
		return nil, err
	}
	var idx index.KV
	if withIndex {
		if err := os.MkdirAll(cfg.Paths.DataDir, 0o755); err != nil {
			st.Close()
			return nil, err
		}
		kv, err := badgerkv.Open(cfg.Paths.IndexDir, g.log)
		if err != nil {
			g.log.Debug("going on without the local index", "err", err)
		} else {
			idx = kv
		}
	}
	r := repo.New(st, idx, filepath.Join(cfg.Store, "lock"), g.log)
	return &session{cfg: cfg, repo: r, close: func() error {
		var errs []error
		if idx != nil {
			errs = append(errs, idx.Close())
		}
		errs = append(errs, st.Close())
		return errors.Join(errs...)
	}}, nil
}

// progress returns a progress callback drawing a bar on stderr when it is
// a terminal, and nil (no output) otherwise.
func (g *globals) progress(verb string, total int64) (func(bytes, files int64), func()) {
	if g.quiet || !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil, func() {}
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(verb),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionShowCount(),
	)
	return func(bytes, files int64) { bar.Set64(bytes) }, func() { bar.Finish(); fmt.Fprint(os.Stderr, "") }
}

// humanBytes formats n as KiB/MiB/GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
