// Package parse reads the files a training program writes into a run
// folder. It does no I/O: callers hand it bytes and get back points,
// params and problems.
//
// Metrics come in three shapes, each read by a Parser:
//
//   - metrics/<key> (MetricLines): one point per line, "<value>",
//     "<step> <value>" or "<step> <value> <unix-seconds>". Fields are
//     separated by spaces or tabs, or by one comma with optional blanks
//     around it. Lines starting with '#' are comments.
//   - metrics.jsonl (JSONL): one JSON object per line, such as
//     {"step": 3, "loss": 0.25}. "step", "epoch" and "timestamp" at the
//     top level are reserved; every other number is a point, and nested
//     objects give keys joined with "/" ("train/loss"). The strings "nan"
//     and "inf" and Python's bare NaN and Infinity are accepted.
//   - metrics.csv (CSV): a header row, then rows, as PyTorch Lightning's
//     and Keras' CSV loggers write them. A row's step is its "step" cell,
//     or else its "epoch" cell; its time is its "timestamp" cell (or "time"
//     when there is no "timestamp" column). Every other column is a
//     metric, and empty cells are skipped. A quoted cell cannot hold a
//     newline, and a file whose header changes must be parsed anew.
//
// In all three, a row without a step gets the previous step + 1 (0 for
// the first); steps are integers. Times are unix seconds, possibly
// fractional, and become unix milliseconds; a point without a time has
// Time 0, and the caller stamps it with the time of the write. Blank
// lines are ignored. A bad line, or a bad value in a line, is reported as
// an Error with its line number and the rest of the file is still read; a
// rejected line does not move the step.
//
// A Parser streams because the files grow while training runs: it is fed
// new bytes as they are written, in pieces of any size, and parses a line
// only once its newline has come (or End says the file is complete). It
// keeps at most MaxLine bytes of an unfinished line, whatever the writer
// does, so a runaway line costs bounded memory; such a line is reported
// and skipped. Consumed and State let the caller persist where it is and
// resume later without reparsing the file.
//
// Params and tags are whole files: params/<key> and tags/<key> (Value),
// params.json (ParamsJSON) and params.yaml (ParamsYAML), whose nested keys
// flatten to "a.b.c". Keys follow MLflow's rules (CheckKey).
package parse
