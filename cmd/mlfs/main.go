// Command mlfs versions datasets and tracks runs through a filesystem.
// See the README for a tour and SPEC.md for the contract.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries an exit code without a further message.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	// A soft heap limit keeps big imports within a small, steady footprint:
	// the Go collector works harder instead of growing. GOMEMLIMIT wins.
	// The daemon holds every run's record and the state of active runs, so
	// it gets more room before the collector works hard.
	if os.Getenv("GOMEMLIMIT") == "" {
		limit := int64(160 << 20)
		if len(os.Args) > 1 && os.Args[1] == "daemon" {
			limit = 1 << 30
		}
		debug.SetMemoryLimit(limit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	var ee exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	fmt.Fprintf(os.Stderr, "mlfs: %v\n", explain(err))
	os.Exit(1)
}

// explain adds the fix to errors whose cause a user can act on.
func explain(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.ENOSPC):
		msg += "\n(the disk is full: free some space, or move the store with `mlfs init --store DIR`; nothing was named, so the failed add left no version)"
	case errors.Is(err, context.Canceled):
		msg = "interrupted; nothing was named, so no partial version exists (run `mlfs gc` to drop the unnamed objects)"
	}
	return msg
}

// version is the module version and the commit mlfs was built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
		if s.Key == "vcs.modified" && s.Value == "true" {
			v += "+changes"
		}
	}
	return v + " " + bi.GoVersion
}

type globals struct {
	store   string
	verbose bool
	quiet   bool
	log     *slog.Logger
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "mlfs",
		Short:         "Versioned datasets and run tracking through a filesystem",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelWarn
			if g.verbose {
				level = slog.LevelDebug
			}
			g.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
		},
	}
	root.PersistentFlags().StringVar(&g.store, "store", "", "local store folder (overrides config and $MLFS_STORE)")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log debug detail to stderr")
	root.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "no progress bars")
	root.AddCommand(initCmd(g), addCmd(g), versionsCmd(g), exportCmd(g), diffCmd(g), fsckCmd(g), gcCmd(g),
		daemonCmd(g), mountCmd(g), umountCmd(g), versionCmd(g), checkoutCmd(g), statusCmd(g), runsCmd(g), cacheCmd(g),
		remoteCmd(g), pushCmd(g), pullCmd(g))
	return root
}
