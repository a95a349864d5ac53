package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlfs/mlfs/config"
	"github.com/mlfs/mlfs/daemon"
	"github.com/mlfs/mlfs/repo"
)

func daemonCmd(g *globals) *cobra.Command {
	var mount string
	var debug, allowOther bool
	cmd := &cobra.Command{
		Use:   "daemon [--mount DIR]",
		Short: "Serve the mount and the CLI socket in the foreground (for systemd and CI)",
		Long: `Mounts the mlfs filesystem (default: the configured mount point, /mnt/ml)
and serves it until SIGTERM or SIGINT, or until it is unmounted; then it
unmounts, writes everything pending to the store and exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			level := slog.LevelInfo
			if g.verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			return daemon.Run(cmd.Context(), cfg, daemon.Options{Mount: mount, Debug: debug, AllowOther: allowOther, Log: log})
		},
	}
	cmd.Flags().StringVar(&mount, "mount", "", "mount point (default: config mount, /mnt/ml)")
	cmd.Flags().BoolVar(&debug, "fuse-debug", false, "log every FUSE request")
	cmd.Flags().BoolVar(&allowOther, "allow-other", false, "let other users use the mount (non-root: needs user_allow_other in /etc/fuse.conf)")
	return cmd
}

func mountCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "mount [DIR]",
		Short: "Start the daemon in the background; return once DIR is mounted",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, dir, err := g.mountpoint(args)
			if err != nil {
				return err
			}
			if ok, _ := daemon.IsMounted(dir); ok {
				// A daemon that died leaves its mount behind, answering
				// ENOTCONN; the new daemon replaces it.
				if !daemon.Stale(dir) {
					return fmt.Errorf("mount %s: already mounted (mlfs umount %s first)", dir, dir)
				}
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(cfg.Paths.DataDir, 0o755); err != nil {
				return err
			}
			logPath := filepath.Join(cfg.Paths.DataDir, "daemon.log")
			logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				return fmt.Errorf("daemon log: %w", err)
			}
			defer logf.Close()
			start, _ := logf.Seek(0, 2)
			dargs := []string{"daemon", "--mount", dir}
			if g.store != "" {
				dargs = append([]string{"--store", g.store}, dargs...)
			}
			if g.verbose {
				dargs = append([]string{"-v"}, dargs...)
			}
			d := exec.Command(self, dargs...)
			d.Stdout, d.Stderr = logf, logf
			d.Dir = "/" // the daemon must not keep the caller's folder busy
			d.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := d.Start(); err != nil {
				return fmt.Errorf("start the daemon: %w", err)
			}
			exited := make(chan error, 1)
			go func() { exited <- d.Wait() }()
			deadline := time.After(timeout)
			for {
				// Ready when our daemon answers on the socket (it mounts
				// first) and the mount point answers, not a stale mount.
				if c, err := daemon.Dial(cfg.Paths.Socket); err == nil {
					ours := c.PID() == d.Process.Pid
					c.Close()
					if _, err := os.Stat(dir); ours && err == nil {
						fmt.Fprintf(cmd.OutOrStdout(), "mounted %s (daemon pid %d, log %s)\n", dir, d.Process.Pid, logPath)
						return nil
					}
				}
				select {
				case err := <-exited:
					return fmt.Errorf("mount %s: the daemon exited (%v):\n%s", dir, err, logTail(logPath, start))
				case <-deadline:
					d.Process.Signal(syscall.SIGTERM)
					return fmt.Errorf("mount %s: not mounted after %s; see %s:\n%s", dir, timeout, logPath, logTail(logPath, start))
				case <-cmd.Context().Done():
					d.Process.Signal(syscall.SIGTERM)
					return cmd.Context().Err()
				case <-time.After(20 * time.Millisecond):
				}
			}
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the mount")
	return cmd
}

// logTail returns what the daemon wrote to its log since offset start.
func logTail(path string, start int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	f.Seek(start, 0)
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, "  "+sc.Text())
	}
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

func umountCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "umount [DIR]",
		Short: "Unmount DIR and wait until its daemon has written everything and exited",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, dir, err := g.mountpoint(args)
			if err != nil {
				return err
			}
			if ok, _ := daemon.IsMounted(dir); !ok {
				return fmt.Errorf("umount %s: no mlfs filesystem is mounted there", dir)
			}
			pid := 0
			if c, err := daemon.Dial(cfg.Paths.Socket); err == nil {
				pid = c.PID()
				c.Close()
			}
			// Best effort: without the note, the daemon logs the unmount
			// as one from outside, which is all that is lost.
			noted := daemon.NoteUnmount(cfg, dir) == nil
			if err := unmount(dir); err != nil {
				if noted {
					daemon.ForgetUnmount(cfg)
				}
				return err
			}
			if pid == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "unmounted %s\n", dir)
				return nil
			}
			// The daemon flushes and exits once it sees the unmount.
			for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
				if exited(pid) {
					fmt.Fprintf(cmd.OutOrStdout(), "unmounted %s\n", dir)
					return nil
				}
			}
			return fmt.Errorf("umount %s: unmounted, but the daemon (pid %d) has not exited after %s", dir, pid, timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "how long to wait for the daemon to finish")
	return cmd
}

// exited reports whether process pid is gone, or has exited and waits to
// be reaped (a zombie: its parent, often PID 1, reaps it when it will).
func exited(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] == 'Z' || b[i+2] == 'X'
	}
	return false
}

func unmount(dir string) error {
	var err error
	if os.Geteuid() == 0 {
		err = syscall.Unmount(dir, 0)
	} else {
		var out []byte
		if out, err = exec.Command("fusermount3", "-u", dir).CombinedOutput(); err != nil {
			err = fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
		}
	}
	if errors.Is(err, syscall.EBUSY) || err != nil && strings.Contains(err.Error(), "busy") {
		return fmt.Errorf("umount %s: busy: a process has a file or folder open in it (see lsof %s)", dir, dir)
	}
	if err != nil {
		return fmt.Errorf("umount %s: %w", dir, err)
	}
	return nil
}

func versionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Manage versions",
	}
	rm := &cobra.Command{
		Use:   "rm DATASET@VERSION",
		Short: "Remove a version's name; mlfs gc then drops what no other version uses",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := repo.ParseRef(args[0])
			if err != nil {
				return err
			}
			s, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.RemoveVersion(cmd.Context(), ref); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s; run mlfs gc to free its data\n", ref)
			return nil
		},
	}
	cmd.AddCommand(rm)
	return cmd
}

func checkoutCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "checkout DATASET@VERSION",
		Short: "Reset a dataset's working tree to a version (copies nothing)",
		Long: `Resets the working tree of DATASET (the writable folder of the mount) to
VERSION, which becomes the parent of the next snapshot. It refuses to drop
changes that are in no version unless --force is given.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := repo.ParseRef(args[0])
			if err != nil {
				return err
			}
			s, err := g.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer s.Close()
			v, err := s.Checkout(cmd.Context(), ref, force)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "working tree of %s is now %s (%s)\n", ref.Dataset, v.Ref, v.ID.Short())
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "drop changes that are in no version")
	return cmd
}

func statusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the daemon, its mount, store, cache use and recent errors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			c, err := daemon.Dial(cfg.Paths.Socket)
			if errors.Is(err, daemon.ErrNoDaemon) {
				fmt.Fprintf(out, "daemon  not running (start it with mlfs mount DIR)\nstore   %s\n", cfg.Store)
				return nil
			}
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "daemon  pid %d, up %s\n", st.PID, time.Since(st.Started).Round(time.Second))
			fmt.Fprintf(out, "mount   %s\nstore   %s\n", st.Mount, st.Store)
			if st.Remote != "" {
				fmt.Fprintf(out, "remote  %s; %s\n", st.Remote, requestCounts(st.RemoteRequests))
			}
			cs := st.Cache
			fmt.Fprintf(out, "cache   %s of %s in %d chunks; %d hits, %d misses, %s fetched, %d evicted, %d found damaged and fetched again\n",
				humanBytes(cs.DiskBytes), humanBytes(cs.MaxBytes), cs.Count, cs.Hits, cs.Misses, humanBytes(cs.FetchedBytes), cs.Evictions, cs.Dropped)
			rs := st.Runs
			fmt.Fprintf(out, "runs    %d (%d running, %d with parsers in memory); %d metric points parsed from %s since the daemon started\n",
				rs.Runs, rs.Running, rs.Active, rs.Points, humanBytes(rs.BytesRead))
			if len(st.Errors) == 0 {
				fmt.Fprintln(out, "errors  none")
				return nil
			}
			fmt.Fprintf(out, "errors  %d recent (newest last):\n", len(st.Errors))
			for _, e := range st.Errors {
				fmt.Fprintf(out, "  %s  %s\n", e.Time.Format(time.DateTime), e.Message)
			}
			return nil
		},
	}
}

// mountpoint returns the config and the mount point: the argument, else
// the configured one, made absolute.
func (g *globals) mountpoint(args []string) (*config.Config, string, error) {
	cfg, err := g.config()
	if err != nil {
		return nil, "", err
	}
	dir := cfg.Mount
	if len(args) == 1 {
		dir = args[0]
	}
	dir, err = filepath.Abs(dir)
	return cfg, dir, err
}

func cacheCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cache", Short: "Manage the local chunk cache"}
	cmd.AddCommand(&cobra.Command{
		Use:   "purge",
		Short: "Empty the local chunk cache: the next reads fetch from the store, verified",
		Long: `Empty the local chunk cache: the next reads fetch from the store, verified.
The kernel may still hold pages of files already read through the mount;
mlfs umount drops those.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			c, err := daemon.Dial(cfg.Paths.Socket)
			switch {
			case err == nil:
				defer c.Close()
				err = c.PurgeCache(cmd.Context())
			case errors.Is(err, daemon.ErrNoDaemon):
				var r *daemon.Repo
				if r, err = daemon.OpenRepo(cmd.Context(), cfg, false, g.log); err == nil {
					err = r.PurgeCache()
					if cerr := r.Close(); err == nil {
						err = cerr
					}
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "chunk cache emptied")
			return nil
		},
	})
	return cmd
}

// requestCounts shows counts by operation: "12 requests (get_range 10,
// list 2)".
func requestCounts(m map[string]int64) string {
	var total int64
	var parts []string
	for _, op := range slices.Sorted(maps.Keys(m)) {
		if m[op] > 0 {
			total += m[op]
			parts = append(parts, fmt.Sprintf("%s %d", op, m[op]))
		}
	}
	if total == 0 {
		return "no requests since the daemon started"
	}
	return fmt.Sprintf("%d requests since the daemon started (%s)", total, strings.Join(parts, ", "))
}
