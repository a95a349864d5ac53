package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlfs/mlfs/daemon"
	"github.com/mlfs/mlfs/tracking"
	"github.com/mlfs/mlfs/tracking/query"
)

// openRuns returns the runs of the running daemon, or of the index when
// no daemon runs.
func (g *globals) openRuns(ctx context.Context) (tracking.View, func() error, error) {
	cfg, err := g.config()
	if err != nil {
		return nil, nil, err
	}
	c, err := daemon.Dial(cfg.Paths.Socket)
	switch {
	case err == nil:
		return c, c.Close, nil
	case !errors.Is(err, daemon.ErrNoDaemon):
		return nil, nil, err
	}
	r, err := daemon.OpenRepo(ctx, cfg, true, g.log)
	if err != nil {
		return nil, nil, err
	}
	if r.Runs == nil {
		r.Close()
		return nil, nil, fmt.Errorf("the index %s is held by another mlfs process", cfg.Paths.IndexDir)
	}
	return r.Runs, r.Close, nil
}

func runsCmd(g *globals) *cobra.Command {
	var filter, sortBy, columns string
	var asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List runs: filter, sort, show, compare, remove",
		Long: `List the runs, newest first.

  --filter takes MLflow's search grammar: clauses joined by "and", each
  FIELD OP VALUE, where FIELD is metrics.KEY (the last value), params.KEY,
  tags.KEY or an attribute (status, experiment, start_time, end_time,
  duration, user, host, dataset, id), and OP one of = != < <= > >= LIKE
  ILIKE IN, NOT IN, IS NULL, IS NOT NULL. Strings are quoted:
  params.model = 'svm'. Times and duration are in milliseconds; a quoted
  date works too: start_time > '2026-12-01'.
  --sort takes "FIELD [asc|desc]", several separated by commas.

The table shows the run's attributes (id, experiment, status, start_time,
duration, dataset), then the fields of the filter and sort and a few params
and metrics. --columns shows exactly the fields it names, in that order:
attributes, metrics.KEY, params.KEY or tags.KEY, separated by commas.`,
		Example: `  mlfs runs --filter "metrics.accuracy > 0.9 and params.model = 'svm'" --sort "metrics.accuracy desc"
  mlfs runs --filter "tags.experiment = 'iris' and status = 'finished'" --columns id,params.C,metrics.accuracy
  mlfs runs show r1
  mlfs runs compare r1 r2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cols, err := parseColumns(columns)
			if err != nil {
				return err
			}
			v, closeFn, err := g.openRuns(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			if asJSON && !cmd.Flags().Changed("limit") {
				limit = 0
			}
			res, err := v.Search(cmd.Context(), tracking.SearchRequest{Filter: filter, Sort: sortBy, Limit: limit})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSONOut(out, res.Runs)
			}
			if res.Total == 0 {
				if filter != "" {
					fmt.Fprintln(cmd.ErrOrStderr(), "no run matches the filter")
				} else {
					fmt.Fprintln(cmd.ErrOrStderr(), "no runs yet (start one with mkdir <mount>/runs/<id>)")
				}
				return nil
			}
			hidden := 0
			if cols == nil {
				var more []query.Field
				more, hidden = defaultColumns(res.Runs, filter, sortBy)
				cols = append(slices.Clone(attributeColumns), more...)
			}
			if err := runsTable(out, res.Runs, cols); err != nil {
				return err
			}
			if hidden > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d more params and metrics not shown (pick them with --columns; mlfs runs show RUN lists all)\n", hidden)
			}
			if len(res.Runs) < res.Total {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d of %d runs shown (--limit 0 shows all)\n", len(res.Runs), res.Total)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&filter, "filter", "", "only runs matching this expression (MLflow search grammar)")
	cmd.Flags().StringVar(&sortBy, "sort", "", `order, e.g. "metrics.accuracy desc" (default: newest first)`)
	cmd.Flags().StringVar(&columns, "columns", "", "show exactly these fields, in this order (comma-separated: id, status, host, ..., metrics.KEY, params.KEY, tags.KEY)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the runs as JSON (all of them unless --limit is given)")
	cmd.Flags().IntVar(&limit, "limit", 100, "show at most this many runs (0: all)")
	cmd.AddCommand(runsShowCmd(g), runsCompareCmd(g), runsRmCmd(g))
	return cmd
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// defaultColumns shows the fields of the filter and sort, then the
// metrics and params the shown runs have (a few of each).
func defaultColumns(runs []*tracking.Info, filter, sortBy string) ([]query.Field, int) {
	var cols []query.Field
	seen := map[query.Field]bool{}
	addCol := func(f query.Field) {
		if !seen[f] && f.Kind != query.Attr {
			seen[f] = true
			cols = append(cols, f)
		}
	}
	if orders, err := query.ParseOrder(sortBy); err == nil {
		for _, o := range orders {
			addCol(o.Field)
		}
	}
	if f, err := query.ParseFilter(filter); err == nil {
		for _, fl := range f.Fields() {
			addCol(fl)
		}
	}
	var metrics, params []string
	ms, ps := map[string]bool{}, map[string]bool{}
	for _, r := range runs {
		for k := range r.Metrics {
			if !ms[k] {
				ms[k] = true
				metrics = append(metrics, k)
			}
		}
		for k := range r.Params {
			if !ps[k] {
				ps[k] = true
				params = append(params, k)
			}
		}
	}
	sort.Strings(metrics)
	sort.Strings(params)
	hidden := max(len(params)-6, 0) + max(len(metrics)-8, 0)
	for i, k := range params {
		if i == 6 {
			break
		}
		addCol(query.Field{Kind: query.Param, Key: k})
	}
	for i, k := range metrics {
		if i == 8 {
			break
		}
		addCol(query.Field{Kind: query.Metric, Key: k})
	}
	return cols, hidden
}

// parseColumns parses --columns: fields separated by commas; nil for "".
func parseColumns(columns string) ([]query.Field, error) {
	if strings.TrimSpace(columns) == "" {
		return nil, nil
	}
	var cols []query.Field
	for _, c := range strings.Split(columns, ",") {
		f, err := query.ParseField(strings.TrimSpace(c))
		if err != nil {
			return nil, fmt.Errorf("--columns: %w", err)
		}
		if f.Kind == query.Attr {
			if err := tracking.CheckAttribute(f.Key); err != nil {
				return nil, fmt.Errorf("--columns: %w", err)
			}
		}
		cols = append(cols, f)
	}
	return cols, nil
}

// attributeColumns are the attributes the table shows first without
// --columns.
var attributeColumns = []query.Field{
	{Kind: query.Attr, Key: "id"}, {Kind: query.Attr, Key: "experiment"}, {Kind: query.Attr, Key: "status"},
	{Kind: query.Attr, Key: "start_time"}, {Kind: query.Attr, Key: "duration"}, {Kind: query.Attr, Key: "dataset"},
}

// runsTable prints runs with the columns cols, in that order.
func runsTable(out io.Writer, runs []*tracking.Info, cols []query.Field) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	head := make([]string, len(cols))
	for i, c := range cols {
		head[i] = header(c)
	}
	fmt.Fprintln(w, strings.Join(head, "\t"))
	now := time.Now().UnixMilli()
	for _, r := range runs {
		row := make([]string, len(cols))
		for i, c := range cols {
			row[i] = tableCell(r, c, now)
		}
		fmt.Fprintln(w, strings.Join(row, "\t"))
	}
	return w.Flush()
}

// header titles the column of f: an attribute by its canonical name (any
// of its aliases gives the same title), another field as written.
func header(f query.Field) string {
	if f.Kind != query.Attr {
		return f.String()
	}
	switch strings.ToLower(f.Key) {
	case "id", "run_id", "run_name", "name":
		return "RUN"
	case "experiment", "experiment_id":
		return "EXPERIMENT"
	case "start_time", "start":
		return "STARTED"
	case "end_time", "end":
		return "ENDED"
	case "user", "user_id":
		return "USER"
	case "dataset", "datasets":
		return "DATASETS"
	}
	return strings.ToUpper(f.Key)
}

// tableCell is r's value of f in the table: the attributes as the
// default columns show them (the duration of a running run so far),
// the other fields as cell does; "-" for none.
func tableCell(r *tracking.Info, f query.Field, now int64) string {
	if v := attrCell(r, f, now); v != "" {
		return v
	}
	return "-"
}

func attrCell(r *tracking.Info, f query.Field, now int64) string {
	if f.Kind == query.Attr {
		switch strings.ToLower(f.Key) {
		case "id", "run_id", "run_name", "name":
			return r.ID
		case "experiment", "experiment_id":
			return r.Experiment
		case "status":
			return r.Status
		case "duration":
			return humanDuration(r.Duration(now))
		case "dataset", "datasets":
			return datasets(r)
		}
	}
	return cell(r, f)
}

func datasets(r *tracking.Info) string {
	if len(r.Datasets) == 0 {
		return "-"
	}
	refs := make([]string, len(r.Datasets))
	for i, d := range r.Datasets {
		refs[i] = d.Ref
	}
	return strings.Join(refs, ",")
}

func cell(r *tracking.Info, f query.Field) string {
	v, ok := r.Lookup(f)
	if !ok {
		return "-"
	}
	if f.Kind == query.Attr && (strings.HasSuffix(f.Key, "time") || f.Key == "start" || f.Key == "end") {
		return time.UnixMilli(int64(v.Num)).Format("2006-01-02 15:04:05")
	}
	if v.IsNum {
		return formatNum(v.Num)
	}
	return printable(v.Str)
}

func formatNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// printable keeps control characters of values out of the terminal.
func printable(s string) string {
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return printableLong(s)
}

// printableLong is printable without the cut to 40 characters.
func printableLong(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func humanDuration(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < time.Second:
		return d.String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func runsShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	var metric string
	var points int
	cmd := &cobra.Command{
		Use:   "show RUN",
		Short: "Show one run: params, tags, metrics, datasets read, artifacts, rejected lines",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, closeFn, err := g.openRuns(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			out := cmd.OutOrStdout()
			if metric != "" {
				if points <= 0 {
					return fmt.Errorf("--points %d: want at least 1", points)
				}
				bs, err := v.History(cmd.Context(), args[0], metric, points)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSONOut(out, bs)
				}
				w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "STEPS\tPOINTS\tMIN\tMAX\tLAST")
				for _, b := range bs {
					steps := strconv.FormatInt(b.FirstStep, 10)
					if b.LastStep != b.FirstStep {
						steps += "-" + strconv.FormatInt(b.LastStep, 10)
					}
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", steps, b.Count, formatNum(float64(b.Min)), formatNum(float64(b.Max)), formatNum(float64(b.Last)))
				}
				return w.Flush()
			}
			d, err := v.Show(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONOut(out, d)
			}
			return showRun(out, d)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	cmd.Flags().StringVar(&metric, "metric", "", "print this metric's history instead, downsampled (min/max per bucket)")
	cmd.Flags().IntVar(&points, "points", 50, "with --metric: at most this many buckets")
	return cmd
}

func showRun(out io.Writer, d *tracking.Detail) error {
	r := d.Info
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "run\t%s\n", r.ID)
	fmt.Fprintf(w, "experiment\t%s\n", r.Experiment)
	fmt.Fprintf(w, "status\t%s\n", r.Status)
	fmt.Fprintf(w, "started\t%s\n", time.UnixMilli(r.Start).Format(time.RFC3339))
	if r.End != 0 {
		fmt.Fprintf(w, "ended\t%s (%s)\n", time.UnixMilli(r.End).Format(time.RFC3339), humanDuration(r.End-r.Start))
	}
	fmt.Fprintf(w, "by\t%s@%s\n", r.User, r.Host)
	w.Flush()
	fmt.Fprintln(out, "\ndatasets read:")
	if len(r.Datasets) == 0 {
		fmt.Fprintln(out, "  (none recorded; set MLFS_RUN=<run> in the training program's environment)")
	}
	for _, ds := range r.Datasets {
		fmt.Fprintf(out, "  %s  (%s)\n", ds.Ref, shortID(ds.ID))
	}
	printMap(out, "params", r.Params)
	printMap(out, "tags", r.Tags)
	fmt.Fprintln(out, "\nmetrics:")
	if len(r.Metrics) == 0 {
		fmt.Fprintln(out, "  (none)")
	} else {
		w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "  METRIC\tLAST\tMIN\tMAX\tPOINTS\tLAST STEP")
		for _, k := range slices.Sorted(maps.Keys(r.Metrics)) {
			m := r.Metrics[k]
			fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%d\t%d\n", printable(k), formatNum(float64(m.Last)), formatNum(float64(m.Min)),
				formatNum(float64(m.Max)), m.Count, m.LastStep)
		}
		w.Flush()
	}
	fmt.Fprintln(out, "\nartifacts:")
	if len(d.Artifacts) == 0 {
		fmt.Fprintln(out, "  (none)")
	}
	for _, a := range d.Artifacts {
		id := "(being written)"
		if a.ID != "" {
			id = shortID(a.ID)
		}
		fmt.Fprintf(out, "  %s  %s  %s\n", printable(a.Path), humanBytes(a.Size), id)
	}
	if r.Errors > 0 {
		fmt.Fprintf(out, "\nrejected lines (%d):\n", r.Errors)
		for _, l := range d.Errors.Lines() {
			fmt.Fprintf(out, "  %s\n", printableLong(l))
		}
	}
	return nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func printMap(out io.Writer, title string, m map[string]string) {
	fmt.Fprintf(out, "\n%s:\n", title)
	if len(m) == 0 {
		fmt.Fprintln(out, "  (none)")
		return
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(w, "  %s\t%s\n", printable(k), printable(m[k]))
	}
	w.Flush()
}

func runsCompareCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "compare RUN RUN...",
		Short: "Compare runs: the params that differ, and every metric side by side",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, closeFn, err := g.openRuns(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			var runs []*tracking.Info
			for _, id := range args {
				d, err := v.Show(cmd.Context(), id)
				if err != nil {
					return err
				}
				runs = append(runs, d.Info)
			}
			return compareTable(cmd.OutOrStdout(), runs, all)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "show the params that are equal too")
	return cmd
}

func compareTable(out io.Writer, runs []*tracking.Info, all bool) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	head := []string{""}
	for _, r := range runs {
		head = append(head, r.ID)
	}
	fmt.Fprintln(w, strings.Join(head, "\t"))
	row := func(name string, val func(*tracking.Info) string) {
		cells := []string{name}
		for _, r := range runs {
			cells = append(cells, val(r))
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	row("status", func(r *tracking.Info) string { return r.Status })
	row("experiment", func(r *tracking.Info) string { return r.Experiment })
	row("datasets", datasets)
	keys := map[string]bool{}
	for _, r := range runs {
		for k := range r.Params {
			keys[k] = true
		}
	}
	same := 0
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		vals := map[string]bool{}
		for _, r := range runs {
			v, ok := r.Params[k]
			if !ok {
				v = "\x00missing"
			}
			vals[v] = true
		}
		if len(vals) == 1 && !all {
			same++
			continue
		}
		row("params."+printable(k), func(r *tracking.Info) string {
			if v, ok := r.Params[k]; ok {
				return printable(v)
			}
			return "-"
		})
	}
	mkeys := map[string]bool{}
	for _, r := range runs {
		for k := range r.Metrics {
			mkeys[k] = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(mkeys)) {
		row("metrics."+printable(k), func(r *tracking.Info) string {
			if m, ok := r.Metrics[k]; ok {
				return formatNum(float64(m.Last))
			}
			return "-"
		})
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if same > 0 {
		fmt.Fprintf(out, "(%d params equal in every run not shown; --all shows them)\n", same)
	}
	return nil
}

func runsRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm RUN...",
		Short: "Remove runs: their records, points and files (artifacts stay in the store until gc)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, closeFn, err := g.openRuns(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			for _, id := range args {
				if err := v.RemoveRun(cmd.Context(), id, force); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed run %s\n", id)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove even while its files are open for writing")
	return cmd
}
