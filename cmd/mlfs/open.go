package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mlfs/mlfs/config"
	"github.com/mlfs/mlfs/daemon"
)

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

// open opens the repository; withIndex for commands that profit from the
// local index (add).
func (g *globals) open(ctx context.Context, withIndex bool) (*daemon.Repo, error) {
	cfg, err := g.config()
	if err != nil {
		return nil, err
	}
	return daemon.OpenRepo(ctx, cfg, withIndex, g.log)
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
