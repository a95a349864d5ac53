// Package fs is the mlfs namespace as a FUSE filesystem (SPEC section 2):
//
//	<mount>/
//	  <dataset>@<version>/   a version: read-only, immutable
//	  <dataset>@latest       symlink to the newest version
//	  <dataset>@<id-prefix>  a version by 8+ hex digits of its id (not listed)
//	  runs/                  run folders
//
// # Reads
//
// A version's files are never fetched whole. Opening a file loads its file
// object (the list of its chunks and their sizes); a read finds the chunks
// that its byte range touches and fetches just those through the chunk
// source (the daemon passes the local disk cache), which verifies every
// chunk against its id before returning it: a chunk that cannot be fetched
// or does not verify fails the read with EIO, and the reason is logged; no
// wrong byte is ever returned. Each open file keeps the last few chunks it
// read in memory, since the kernel's reads (128 KiB) are not aligned to
// chunks. When reads of a handle are sequential, the handle fetches the
// next chunks ahead in the background, in parallel, so a streaming reader
// rarely waits for the store; random reads fetch only what they touch.
//
// # Kernel caching
//
// Versions never change, so their nodes answer with long entry and
// attribute timeouts and open files with FOPEN_KEEP_CACHE: a second read of
// a file is served by the kernel's page cache without a request to the
// daemon. The root lists versions that other processes may create at any
// time, so its own entries use short timeouts. Listing and stat of a
// version read only tree objects: each entry's size, mode and time are in
// its parent's tree, so no file object or chunk is fetched for ls or find.
//
// # Inode numbers
//
// A node's inode number is a hash of its parent's number and its name, so
// a path keeps its number across lookups and two different paths (even of
// identical content) never share one, which tools such as tar and rsync
// would take for hard links.
//
// # Deadlocks
//
// A process that both serves and reads a mount must not hold a lock across
// a call into the kernel for the same mount; nodes here never call back
// into the mount, and tests keep GOMAXPROCS above 1 and wait for the mount
// before using it.
package fs
