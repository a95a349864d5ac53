package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mlfs/mlfs/config"
	"github.com/mlfs/mlfs/daemon"
	"github.com/mlfs/mlfs/repo"
)

func remoteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remote",
		Short: "Name the shared stores (S3, GCS, Azure Blob, a folder) that machines publish to",
		Long: `A remote is a bucket (or folder) that several machines share. With one
configured, the daemon publishes every version and run to it and shows the
versions and runs of every other machine on it. Credentials come from each
cloud's own settings (AWS_* variables or profiles, Application Default
Credentials, AZURE_STORAGE_CONNECTION_STRING), never from mlfs's config.`,
	}
	cmd.AddCommand(remoteAddCmd(g), remoteLsCmd(g), remoteRmCmd(g))
	return cmd
}

func remoteAddCmd(g *globals) *cobra.Command {
	var rc config.Remote
	var noDefault, noCheck bool
	cmd := &cobra.Command{
		Use:   "add NAME URL",
		Short: "Add a remote and, unless one is set, make it the one the daemon uses",
		Example: `  mlfs remote add team s3://ml-data/team
  mlfs remote add lab s3://ml-lab --endpoint http://127.0.0.1:7070 --path-style
  mlfs remote add gcs gs://ml-data/team
  mlfs remote add az az://ml-data/team --account mystorageaccount
  mlfs remote add nfs file:///srv/mlfs`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			rc.URL = args[1]
			if err := config.CheckRemoteName(name); err != nil {
				return err
			}
			if err := config.CheckRemote(rc.URL); err != nil {
				return err
			}
			if _, err := rc.RequestTimeout(); err != nil {
				return err
			}
			// The file alone, not the settings in effect: Save writes
			// what cfg holds, and MLFS_* values and defaults do not
			// belong in the file.
			cfg, err := config.LoadFile(os.Getenv)
			if err != nil {
				return err
			}
			if _, ok := cfg.Remotes[name]; ok {
				return fmt.Errorf("remote %s exists already (mlfs remote rm %s first)", name, name)
			}
			if !noCheck {
				if err := daemon.CheckRemote(cmd.Context(), rc); err != nil {
					return fmt.Errorf("remote %s: %w (--no-check adds it anyway)", name, err)
				}
			}
			if cfg.Remotes == nil {
				cfg.Remotes = map[string]config.Remote{}
			}
			cfg.Remotes[name] = rc
			if cfg.Remote == "" && !noDefault {
				cfg.Remote = name
			}
			if err := cfg.Save(); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "added remote %s (%s)\n", name, rc.URL)
			if cfg.Remote == name {
				fmt.Fprintf(out, "the daemon uses %s from its next start (mlfs umount, then mlfs mount)\n", name)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&rc.Endpoint, "endpoint", "", "service URL for S3-compatible stores, emulators or private endpoints")
	f.StringVar(&rc.Region, "region", "", "S3 region (default: the AWS configuration's, else us-east-1)")
	f.BoolVar(&rc.PathStyle, "path-style", false, "address S3 buckets as ENDPOINT/BUCKET (most S3-compatible servers need it)")
	f.StringVar(&rc.Account, "account", "", "Azure storage account (default: $AZURE_STORAGE_ACCOUNT or the connection string's)")
	f.StringVar(&rc.Timeout, "timeout", "", "bound on one request, retried when exceeded (default 30s)")
	f.BoolVar(&noDefault, "no-default", false, "do not make it the daemon's remote")
	f.BoolVar(&noCheck, "no-check", false, "do not check that the remote can be reached")
	return cmd
}

func remoteLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the remotes; * marks the one the daemon uses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			defer tw.Flush()
			if len(cfg.Remotes) == 0 && cfg.Remote == "" {
				fmt.Fprintln(tw, "no remotes (mlfs remote add NAME URL)")
				return nil
			}
			fmt.Fprintln(tw, "\tNAME\tURL\tSETTINGS")
			if _, named := cfg.Remotes[cfg.Remote]; cfg.Remote != "" && !named {
				fmt.Fprintf(tw, "*\t-\t%s\t(from $MLFS_REMOTE or the config's remote)\n", cfg.Remote)
			}
			for _, name := range slices.Sorted(maps.Keys(cfg.Remotes)) {
				rc := cfg.Remotes[name]
				mark := ""
				if name == cfg.Remote {
					mark = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", mark, name, rc.URL, remoteSettings(rc))
			}
			return nil
		},
	}
}

func remoteSettings(rc config.Remote) string {
	s := ""
	add := func(k, v string) {
		if v != "" {
			if s != "" {
				s += " "
			}
			s += k + "=" + v
		}
	}
	add("endpoint", rc.Endpoint)
	add("region", rc.Region)
	if rc.PathStyle {
		add("path_style", "true")
	}
	add("account", rc.Account)
	add("timeout", rc.Timeout)
	return s
}

func remoteRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Forget a remote (its data stays where it is)",
		Long: `Forget a remote; nothing on it is deleted. As with git remote rm, removing
the remote the daemon uses is allowed, and unsets it (the config's remote):
rm says so, the daemon runs without a remote from its next start (a running
one keeps its remote until then), and mlfs remote add sets a new one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			cfg, err := config.LoadFile(os.Getenv) // the file alone, as in remote add
			if err != nil {
				return err
			}
			unset, err := cfg.RemoveRemote(name)
			if errors.Is(err, config.ErrNoSuchRemote) {
				return fmt.Errorf("no remote %s (mlfs remote ls lists them)", name)
			}
			if err != nil {
				return err
			}
			if err := cfg.Save(); err != nil {
				return err
			}
			if unset {
				tellUnset(cmd.OutOrStdout(), cfg, name)
			}
			return nil
		},
	}
}

// tellUnset tells that removing remote name left the daemon without one,
// and how to set another.
func tellUnset(out io.Writer, cfg *config.Config, name string) {
	fmt.Fprintf(out, "removed %s, the remote the daemon uses: no remote is set now\n", name)
	fmt.Fprintln(out, "a running daemon keeps it until it restarts (mlfs umount, then mlfs mount)")
	if others := slices.Sorted(maps.Keys(cfg.Remotes)); len(others) > 0 {
		fmt.Fprintf(out, "to use %s instead, set remote = %q in %s\n", others[0], others[0], cfg.Paths.ConfigFile)
	} else {
		fmt.Fprintln(out, "mlfs remote add NAME URL sets a new one")
	}
	if os.Getenv("MLFS_REMOTE") == name {
		fmt.Fprintf(out, "$MLFS_REMOTE still names %s: unset it, or mlfs cannot load its config\n", name)
	}
}

// syncRefs parses the DATASET[@VERSION] arguments of push and pull.
func syncRefs(args []string) ([]repo.Ref, error) {
	var refs []repo.Ref
	for _, a := range args {
		ref, err := daemon.ParseSyncRef(a)
		if err != nil {
			return nil, err
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

func pushCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "push [DATASET[@VERSION]...]",
		Short: "Publish to the remote every version (and, with a daemon, every run) it lacks",
		Long: `The daemon publishes each version as it is made and each run every few
seconds, so push is needed only for versions made before the remote was
added, and for runs that changed while it was out of reach. With
arguments, only those datasets' versions (or those versions) are
published.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			refs, err := syncRefs(args)
			if err != nil {
				return err
			}
			s, err := g.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer s.Close()
			progress, finish := g.progress("pushing", -1)
			res, err := s.Push(cmd.Context(), refs, progress)
			finish()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "pushed to %s: %s (%s), %s, %s\n", res.Remote, plural(res.Packs, "pack"), humanBytes(res.Bytes),
				plural(res.Refs, "name"), plural(res.Runs, "run"))
			for _, c := range res.Conflicts {
				fmt.Fprintf(out, "CONFLICT %s: the remote has another version of this name; rename yours (mlfs add, or mkdir under a new name) to publish it\n", refDisplay(c))
			}
			if len(res.Conflicts) > 0 {
				return exitError{1}
			}
			return nil
		},
	}
}

func pullCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pull [DATASET[@VERSION]...]",
		Short: "Look at the remote now for versions and runs made on other machines; copy the named versions here",
		Long: `The daemon looks every second or two by itself; pull makes it look now,
and without a daemon records the remote's versions locally. File contents
are fetched when read, except those of the versions named (a dataset
alone names its latest version): pull copies every object they need into
the local store, so they read without the network.`,
		Example: `  mlfs pull                 # the remote's new versions and runs, now
  mlfs pull iris@v3         # and iris@v3's data, for a flight without network`,
		RunE: func(cmd *cobra.Command, args []string) error {
			refs, err := syncRefs(args)
			if err != nil {
				return err
			}
			s, err := g.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			defer s.Close()
			progress, finish := g.progress("pulling", -1)
			res, err := s.Pull(cmd.Context(), refs, progress)
			finish()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "pulled from %s: %s\n", res.Remote, pulled(res))
			if len(refs) > 0 {
				fmt.Fprintf(out, "copied here: %d objects (%s)\n", res.Fetched, humanBytes(res.FetchedBytes))
			}
			return nil
		},
	}
}

// pulled says what a pull found: the versions new here and the runs
// imported (new, or newer than here), or that nothing was new.
func pulled(res daemon.SyncResult) string {
	var parts []string
	if res.Refs > 0 {
		parts = append(parts, plural(res.Refs, "new version"))
	}
	if res.Runs > 0 {
		parts = append(parts, plural(res.Runs, "run")+" imported")
	}
	if res.Removed > 0 {
		parts = append(parts, plural(res.Removed, "name")+" removed (gone from the remote)")
	}
	if len(parts) == 0 {
		return "nothing new"
	}
	return strings.Join(parts, ", ")
}

// plural says n things: "1 version", "0 versions", "2 versions".
func plural[N int | int64](n N, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// refDisplay shows a ref name as the CLI names versions: ds/v1 → ds@v1.
func refDisplay(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			return name[:i] + "@" + name[i+1:]
		}
	}
	return name
}
