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
// # Bad input
//
// A malformed line never fails the write that brought it: it stays in the
// file, is left out of the index, and is listed in the run's errors file
// with its file, line number and reason, and logged.
package tracking
