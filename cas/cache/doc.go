// Package cache is the bounded local disk cache of verified objects that
// sits between the FUSE mount and a store that may be slow (the local pack
// store now, S3, GCS and Azure later).
//
// # Why
//
// The mount reads a dataset file chunk by chunk, and the same chunks are
// read again and again: by every epoch of a training job, by every file
// that shares them. Fetching each read from a remote store would make every
// epoch as slow as the first. The cache keeps chunks on local disk, bounded
// in bytes, and evicts the least recently used, so a working set that fits
// is fetched once. It is a cas.Getter itself, so it sits in a store stack
// like any other wrapper (daemon assembles the stack).
//
// # Layout
//
//	lock            flock'd while a Cache is open: one user of dir at a time
//	objects/ab/<id> one file per object, named by its 64 hex digit id and
//	                fanned out by the first two digits
//
// # Never wrong, sometimes forgetful
//
// An object is written in place and indexed once it is whole; a rename
// into place would make each object cost two more metadata operations,
// and is not needed, because every read from disk is verified against the
// id before a byte is returned. Nothing is fsynced: after a crash a file
// may be empty or torn, and that is fine: it fails verification when it is
// first read, and is removed, logged and fetched again. The cache may lose
// entries in a crash; it never serves wrong bytes. Objects from the source
// are verified before they are cached, so a bad source cannot poison the
// cache (they are returned as an error wrapping cas.ErrCorrupt and not
// kept), by the source itself if it says so (SourceVerifies: the stores of
// this module hash every object they read, and one pass is enough) or by
// the cache. Verifying costs one BLAKE3 pass per read (about 25 µs for a
// 64 KiB chunk), a fair price for a filesystem that must not return wrong
// data.
//
// # Write-behind
//
// With WriteBehind, a fetched object is returned at once and written to
// disk by background writers, a bounded number of bytes behind; until it
// is written, Gets are served from memory. A reader of a remote then does
// not wait on the local disk as well as on the network.
//
// # One fetch per object
//
// Concurrent Gets of one missing id share one fetch (singleflight), so
// sixteen readers of a cold file cost one request. The shared fetch is not
// cancelled when the Get that started it is: the others still wait for it,
// and its result is cached for the next reader. Each Get still returns when
// its own context ends, and Close cancels every fetch.
//
// # Eviction
//
// The index (id → size, position in the LRU list) lives in memory, about
// 100 bytes an object, in a layout the garbage collector does not scan. An
// insert that would exceed the bound evicts least recently used objects
// first; an object larger than the whole bound is returned but not cached.
// The order survives a restart through file mtimes: New sorts the files by
// mtime, and a hit sets the mtime at most once a minute per object, so hits
// stay free of metadata writes and the order after a restart is right to
// within a minute. New does not read the files (that could be many
// gigabytes); they are verified on first use.
package cache
