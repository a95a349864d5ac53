// Package worktree is the writable working tree of one dataset: a base
// version plus the local changes made since, kept on this machine until a
// snapshot makes them a version.
//
// # Model
//
// Every file, folder and symlink of the tree is a node with a stable inode
// number. A node whose content is unchanged since the base version (or the
// last snapshot) is clean: it carries the content id of that version's
// object (a file object or a tree), and its bytes are read lazily from the
// store. A changed file has its bytes in a local data file; a folder with a
// changed descendant is dirty, as is every folder above it. Opening a file
// for writing changes nothing: its first write copies it into a data file
// (an open with O_TRUNC that empties it is a change too), so a handle
// closed without writing leaves the tree clean.
//
// Folders are materialized lazily: a clean folder's children become nodes
// only when it is first listed or looked into, from its tree object, so a
// working tree of a million files costs nothing until it is used.
//
// # Snapshots cost what changed
//
// A snapshot walks only dirty folders. Clean children keep their content
// ids, so an unchanged subtree is never read; a changed file is chunked and
// stored (chunks the store already has cost nothing). After the version's
// name is committed, the walked nodes become clean with their new ids;
// a file still open for writing stays changed, and so do the folders
// above it, so that its later writes go into the next snapshot. If it is
// closed with no write since, and nothing else changed, they become clean
// then (the kernel tells of a close only after close(2) returns, so this
// is the common case of a write followed by a snapshot).
//
// # Following the latest version
//
// A tree that is clean follows its dataset's latest version: Set.Follow,
// called by the daemon every few seconds, resets it when a newer version
// appears (made on another machine sharing the remote, say). A tree with
// changes, or a file open for writing, is never moved; a snapshot of a
// tree whose base is not the latest succeeds and logs StaleSnapshot. The
// follower lists the dataset's versions through the store's cache of the
// remote's listing; a snapshot lists the remote afresh, so that it warns
// of a version another machine made a moment before. A
// checkout of a named version pins the tree there (see follow.go).
//
// StoreTree stores a tree the same way without making it a version or
// changing it: a run's folder is published so, as its program appends.
//
// The version records how many files and bytes it holds. The tree keeps
// those totals itself, starting from its base's and updated by every
// change that adds or removes a file, so that a snapshot need not read the
// subtrees it does not walk to count them.
//
// # Durability
//
// Node records live in the index (index.KV); every change is one batch,
// written before the operation returns. File bytes are written to the
// local data file before a write returns, and Sync makes both durable
// across a machine crash. A daemon killed with SIGKILL therefore loses no
// completed operation: the records and data are in the kernel's hands.
//
// Open handles outlive the file: unlinked or replaced, a file stays
// readable through them, with the bytes it had then.
//
// # Locking
//
// One RWMutex per tree: changes to the namespace and snapshots take it
// exclusively; reads and data writes share it, so a snapshot sees no write
// half done.
package worktree
