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
//	lock                    flock'd while a Cache is open: one user of dir at a time
//	segments/<seq>.seg      objects, appended one after another as records
//	                        (magic, size, id, bytes); never changed after
//	segments/<seq>.idx      the records of a sealed segment, so that opening
//	                        the cache need not read every header
//
// A file per object, the obvious layout, costs a file creation for every
// chunk fetched and an open for every chunk read: on ext4 that was half of
// the daemon's CPU while it read a dataset of small files from a remote,
// and it capped a cold sequential read. Appending to a segment costs one
// write; reading costs one pread on a file that stays open.
//
// # Never wrong, sometimes forgetful
//
// Nothing is fsynced. A record is indexed in memory once it is written
// whole; after a crash, a segment without its index is read record by
// record up to the first that is torn, and the rest of it is forgotten.
// That is fine because every read from disk is verified against the id
// before a byte is returned: a record that fails is dropped, logged, and
// fetched again. The cache may lose entries in a crash; it never serves
// wrong bytes. Objects from the source are verified before they are
// cached, so a bad source cannot poison the cache (they are returned as an
// error wrapping cas.ErrCorrupt and not kept), by the source itself if it
// says so (SourceVerifies: the stores of this module hash every object
// they read, and one pass is enough) or by the cache. Verifying costs one
// BLAKE3 pass per read (about 25 µs for a 64 KiB chunk), a fair price for
// a filesystem that must not return wrong data.
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
// The bound is on the bytes of the segment files, headers and dropped
// records included. Space is freed a segment at a time (a sixteenth of the
// cache, 4 KiB to 256 MiB), oldest first; an object read since it was
// written gets a second chance, copied to the newest segment instead of
// dropped (up to half of the segment, so that an eviction always frees
// space). That is first in, first out with a second chance for what is
// used: close to least recently used for a working set that is read
// again and again, and with no metadata write for a hit. The index (id →
// segment, offset, size, and each segment's list of its records) lives in
// memory, about 140 bytes an object (110 MB for 50 GiB of 64 KiB chunks);
// after a restart, segments are as old as their order on disk says, and
// the second chances start anew.
package cache
