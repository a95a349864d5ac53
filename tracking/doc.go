// Package tracking keeps experiment runs: what training programs write
// into /mnt/ml/runs/<id>/ with plain file operations, parsed and indexed
// as it is written, so runs can be listed, filtered and compared while
// they train.
//
// # Files are the truth; the index follows them
//
// A run's folder is a working tree (package worktree, named "run:<id>"):
// every byte a program writes is kept exactly as written, so reading any
// file gives it back. The filesystem tells the tracker what changed
// (which file, which bytes, which process); the tracker reads the new
// bytes back from the file and hands them to the parsers of package
// parse. Reading back instead of parsing the write itself is what makes
// the hard cases plain: a line split across two writes, several processes
// appending to one file, a file truncated and rewritten (parsed again from
// its start), a rename over a file (a new file). Writers never wait for
// parsing: a write costs a map update and a wake-up.
//
// # What is kept
//
// For each run the index holds one record (Info: status, times, host,
// user, params, tags, a summary of every metric, the dataset versions it
// read) and, per metric and file, the points in blocks of
// series.BlockSize and a bounded min/max downsample for plots (package
// series). Listing and searching read only the records, held in memory by
// the daemon.
//
// # Durability
//
// Points are durable when their bytes are: a write is in the kernel's page
// cache when it returns (a killed daemon loses nothing), close and fsync
// make it durable on disk, and the tracker fsyncs every file written to
// within the last second. The index is committed every second together
// with each parser's position in its file, so after any crash the tracker
// resumes parsing where its last commit stopped, and the index again
// matches the files.
//
// # Runs across machines
//
// Machines sharing a store (a remote) see each other's runs. With
// Options.Publish the tracker publishes every run of this machine that
// changed, every ShareEvery (2 s), at once when the run ends, and at
// Close. The run folder becomes a tree: its files as they are, metrics in
// every format included, artifacts once stored (by the ids they have; one
// still being written waits). A version object names it (Dataset "runs",
// Parent the run's previous publish) whose message is a small JSON of
// what the files do not carry: id, status, times, host, user and lineage.
// The ref "runs/<id>/<seq>" names that. Refs are created only if absent,
// so a taken seq means another writer: the tracker reads the refs of the
// id and carries on after the newest if it is this run's (same host and
// start: a publish whose record was lost), and otherwise stops publishing
// the run, which stays on this machine, as do runs whose id is longer
// than a ref segment (128 bytes). The previous ref goes once the new one
// exists, so a run has one ref, and gc collects what only older publishes
// held. An unchanged file costs a stat: the repository's file cache knows
// it, and the store has its chunks.
//
// With Options.Import the tracker lists the refs under runs/ as often,
// and for each run whose newest ref it has not imported, and that is not
// a run of this machine (a local run always wins), checks its tree out
// into the run folder (as a dataset's working tree: lazily, nothing is
// copied) and indexes the run from scratch from its files, with this
// machine's parsers, so it lists, filters and plots as it does where it
// runs. Status, times, host, user and lineage come from the message;
// lines without a time take the time their file last changed where it
// was written. An imported run is read-only and never published from
// here; removed here, it comes back only with a newer publish. Removing a
// published run on its own machine deletes its ref, for every machine.
// Share, Publish and Import do the same work at once (mlfs push, pull).
//
// # Bad input
//
// A malformed line never fails the write that brought it: it stays in the
// file, is left out of the index, and is listed in the run's errors file
// with its file, line number and reason, and logged.
package tracking
