package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlfs/mlfs/cas/local"
	"github.com/mlfs/mlfs/config"
	"github.com/mlfs/mlfs/daemon"
	"github.com/mlfs/mlfs/repo"
)

func initCmd(g *globals) *cobra.Command {
	var remote string
	cmd := &cobra.Command{
		Use:   "init [--store DIR] [--remote URL]",
		Short: "Write the config file and create the local store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			if remote != "" {
				if err := config.CheckRemote(remote); err != nil {
					return err
				}
				cfg.Remote = remote
			}
			st, err := local.Open(cfg.Store)
			if err != nil {
				return err
			}
			if err := st.Close(); err != nil {
				return err
			}
			if err := cfg.Save(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "store  %s\nconfig %s\n", cfg.Store, cfg.Paths.ConfigFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&remote, "remote", "", "URL of a shared remote store")
	return cmd
}

func addCmd(g *globals) *cobra.Command {
	var message string
	cmd := &cobra.Command{
		Use:   "add DATASET@VERSION PATH",
		Short: "Import a local folder (or file) as a new, immutable version",
		Example: `  mlfs add iris@v1 ./data/iris
  mlfs add iris@v2 ./data/iris -m "drop duplicate rows"`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := repo.ParseRef(args[0])
			if err != nil {
				return err
			}
			if err := repo.CheckVersionName(ref.Version); err != nil {
				return err
			}
			if _, err := os.Stat(args[1]); err != nil {
				return fmt.Errorf("add %s: %w", args[1], err)
			}
			// Absolute, so that a daemon reads what the user means, and
			// the messages read the same with and without one.
			path, err := filepath.Abs(args[1])
			if err != nil {
				return fmt.Errorf("add %s: %w", args[1], err)
			}
			s, err := g.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer s.Close()
			var total int64
			if !g.quiet {
				total = treeSize(args[1])
			}
			progress, done := g.progress("adding "+ref.String(), total)
			res, err := s.Add(cmd.Context(), ref, path, repo.AddOptions{
				Message:  message,
				Progress: progress,
				Warn: func(path, reason string) {
					fmt.Fprintf(os.Stderr, "mlfs: warning: %s: %s\n", path, reason)
				},
			})
			done()
			if err != nil {
				return err
			}
			if err := s.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added %s (%s): %d files, %s; %s new in the store (%d chunks)",
				ref, res.ID.Short(), res.Files, humanBytes(res.Bytes), humanBytes(res.NewBytes), res.NewChunks)
			if res.Reused > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "; %d unchanged files not read again", res.Reused)
			}
			if res.Skipped > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "; %d special files skipped", res.Skipped)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	cmd.Flags().StringVarP(&message, "message", "m", "", "a note stored with the version")
	return cmd
}

// treeSize sums regular file sizes under path, for the progress bar; it
// stays quiet about errors, which Add reports properly.
func treeSize(path string) int64 {
	var n int64
	filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func versionsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "versions DATASET",
		Short: "List the versions of a dataset, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer s.Close()
			vs, err := s.Versions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if len(vs) == 0 {
				return fmt.Errorf("dataset %q has no versions (add one with `mlfs add %s@v1 PATH`)", args[0], args[0])
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "VERSION\tID\tCREATED\tFILES\tSIZE\tBY\tMESSAGE")
			for _, v := range vs {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s@%s\t%s\n", v.Ref, v.ID.Short(),
					time.Unix(0, v.Time).Format("2006-01-02 15:04:05"), v.Files, humanBytes(v.Bytes), v.User, v.Host, v.Message)
			}
			return w.Flush()
		},
	}
}

func exportCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "export DATASET@VERSION DIR",
		Short: "Write a version's files into a new or empty folder",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := repo.ParseRef(args[0])
			if err != nil {
				return err
			}
			dir, err := filepath.Abs(args[1]) // as for add
			if err != nil {
				return fmt.Errorf("export %s: %w", ref, err)
			}
			s, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer s.Close()
			v, err := s.Resolve(cmd.Context(), ref)
			if err != nil {
				return err
			}
			progress, done := g.progress("exporting "+ref.String(), v.Bytes)
			_, err = s.Export(cmd.Context(), ref, dir, repo.ExportOptions{Progress: progress})
			done()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "exported %s (%s) to %s: %d files, %s\n", v.Ref, v.ID.Short(), args[1], v.Files, humanBytes(v.Bytes))
			return nil
		},
	}
}

func diffCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "diff DATASET@A DATASET@B",
		Short: "List files added (A), removed (D) and modified (M) from A to B",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := repo.ParseRef(args[0])
			if err != nil {
				return err
			}
			b, err := repo.ParseRef(args[1])
			if err != nil {
				return err
			}
			s, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer s.Close()
			changes, err := s.Diff(cmd.Context(), a, b)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var added, removed, modified int
			var delta int64
			for _, c := range changes {
				switch c.Kind {
				case repo.Added:
					added++
					fmt.Fprintf(out, "A  %s  (%s)\n", c.Path, humanBytes(c.NewSize))
				case repo.Removed:
					removed++
					fmt.Fprintf(out, "D  %s  (%s)\n", c.Path, humanBytes(c.OldSize))
				case repo.Modified:
					modified++
					fmt.Fprintf(out, "M  %s  (%s -> %s)\n", c.Path, humanBytes(c.OldSize), humanBytes(c.NewSize))
				}
				delta += c.NewSize - c.OldSize
			}
			sign := "+"
			if delta < 0 {
				sign, delta = "-", -delta
			}
			fmt.Fprintf(out, "%d added, %d removed, %d modified (%s%s)\n", added, removed, modified, sign, humanBytes(delta))
			return nil
		},
	}
}

func fsckCmd(g *globals) *cobra.Command {
	var remote bool
	cmd := &cobra.Command{
		Use:   "fsck [--remote]",
		Short: "Verify every object that a version, a working tree or a run's artifacts reach; exit 1 if any is bad",
		Long: `fsck reads back and verifies every object reachable from every version,
working tree and run. Objects this machine has are read from the local
store; with --remote, the remote itself is checked instead: every object
that a name on the remote reaches is fetched from it and verified.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			report := func(p repo.Problem) { fmt.Fprintf(out, "BAD %s\n", p) }
			var st repo.FsckStats
			if remote {
				cfg, err := g.config()
				if err != nil {
					return err
				}
				where, rst, err := daemon.FsckRemote(cmd.Context(), cfg, report, g.log)
				if err != nil {
					return err
				}
				st = rst
				fmt.Fprintf(out, "remote %s\n", where)
			} else {
				// With the index: working trees and run artifacts are checked too.
				s, err := g.open(cmd.Context(), true)
				if err != nil {
					return err
				}
				defer s.Close()
				if st, err = s.Fsck(cmd.Context(), report); err != nil {
					return err
				}
			}
			// Runs are refs to version objects too, but not versions.
			fmt.Fprintf(out, "checked %s, %s, %s, %s, %s (%s): %s\n",
				plural(st.Versions, "version"), plural(st.Runs, "run"), plural(st.Trees, "tree"), plural(st.Files, "file"),
				plural(st.Chunks, "chunk"), humanBytes(st.Bytes), plural(st.Problems, "problem"))
			if st.Problems > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&remote, "remote", false, "check the remote's copy instead of this machine's")
	return cmd
}

func gcCmd(g *globals) *cobra.Command {
	var dry bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove objects that no version reaches",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			if r, ok := s.(*daemon.Repo); ok && r.Index == nil && !daemonServesOther(r) {
				s.Close()
				return fmt.Errorf("gc: the local index %s is held by another mlfs process; gc needs it to keep what working trees use, so try again when that process ends", r.Config.Paths.IndexDir)
			}
			defer s.Close()
			st, err := s.GC(cmd.Context(), dry)
			if err != nil {
				return err
			}
			verb := "removed"
			if dry {
				verb = "would remove"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %d objects (%s); %d reachable objects kept; %d packs deleted, %d rewritten, %s freed; %d leftover temp files removed\n",
				verb, st.Removed, humanBytes(st.RemovedBytes), st.Reachable, st.PacksDeleted, st.PacksRewritten, humanBytes(st.BytesFreed), st.Temps)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&dry, "dry-run", "n", false, "only count what would be removed")
	return cmd
}

// daemonServesOther reports whether the process holding r's index is a
// daemon serving another store than r's: its working trees read that
// store, not this one, so gc of this one need not keep them.
func daemonServesOther(r *daemon.Repo) bool {
	c, err := daemon.Dial(r.Config.Paths.Socket)
	if err != nil {
		return false
	}
	defer c.Close()
	return c.Store() != r.Config.Store
}
