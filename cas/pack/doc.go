// Package pack is a cas.Store that bundles objects ("blobs") into pack
// files stored in another cas.Store.
//
// # Why packs
//
// A dataset is mostly small objects: 64 KiB chunks, tiny file objects,
// trees. Stored one object per file or per cloud object, 1 GiB costs some
// 60,000 creates, renames and syncs (or PUTs), which dominates the time of
// an import. Packed, it is 64 appends of 16 MiB. Reads fetch one blob by a
// ranged read of its pack.
//
// # Index
//
// Every pack ends with an index of its blobs (see format.go). The Store
// keeps the index of all packs in memory, loaded from the packs' tails when
// it opens (a few bytes per pack) and extended as it writes new packs.
// Refresh picks up packs written by other processes; a Get that misses
// refreshes by itself, at most once a second.
//
// Reading a tail takes two ranged reads (the trailer says how long the
// index is). On a local disk that is nothing; in a bucket it is two
// requests a pack, and every process that opens the store pays them for
// every pack: 2,000 requests for 16 GiB. So Refresh reads up to Fetches
// tails at once, and with Options.IndexCache it keeps each tail it reads
// or writes in a local file named by the pack's id, and reads from the
// backend only the packs it has no file for. Opening the store again then
// costs one listing. Packs never change, which makes the cache simple: a
// file is right for as long as its pack is listed, and Refresh removes the
// files of packs that are no longer. A file is checked as the backend's
// bytes are (its trailer must hash to the pack's name, its index to the
// trailer), so a damaged one is noticed, removed and read again. Files are
// written to a temporary name and renamed, so processes can share the
// folder; the cache is best effort, and a Store that cannot write it goes
// on without.
//
// # Reading from a slow backend
//
// On a local disk a Get costs one ranged read of its blob's pack, and that
// is all it needs. In a cloud bucket every ranged read is an HTTP request
// of a millisecond or two, however few its bytes: reading a dataset of
// small files one blob at a time would spend nearly all its time waiting.
// Blobs are packed in the order they were written, which is mostly the
// order they are read in, so the Store reads ahead when Options.ReadAhead
// is set:
//
//   - A Get that misses fetches its blob and the blobs after it in the
//     pack, up to ReadAhead bytes, with one request: a window. Blob
//     boundaries come from the index, so a window holds whole blobs.
//   - Windows live in memory, at most ReadAheadCache bytes of them, and the
//     least recently used go first. A Get served from a window copies its
//     blob out and verifies it: a damaged blob fails with cas.ErrCorrupt
//     by itself, and its neighbours are still served.
//   - Gets that miss in a window being fetched wait for that fetch rather
//     than start their own. The fetch is not canceled with the Get that
//     started it (others may wait for it); each Get still returns when its
//     own context ends, and Close stops every fetch.
//   - Once a reader goes on through a window, the Store fetches the next
//     windows of the pack in the background, up to Fetches of them, so
//     the network works while the reader reads. A random reader, which
//     does not go on, costs only its own windows.
//
// Read-ahead stops at the end of a pack: the index does not say which pack
// comes next. Callers that know what they will read, such as the next
// chunks of a file or the files of a directory, can say so with Prefetch,
// which groups blobs by pack, fetches neighbours together and runs up to
// Fetches requests at once.
//
// # Durability
//
// Put appends to an open pack in memory and returns; full packs are
// written in the background, at most Uploads at a time (a Put waits for a
// slot, which bounds memory). Flush writes the open pack and waits for all
// writes; CreateRef and Close flush first, so a ref never names an object
// that is not durable in the backend.
//
// # Removing blobs
//
// Delete only drops a blob from the index. Compact then deletes packs with
// no live blob and rewrites packs that are mostly dead.
package pack
