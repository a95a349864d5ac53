// Package repo holds the operations on dataset versions that work without
// a mount: add a folder as a version, list versions, export one, diff two,
// verify the store (fsck) and collect garbage (gc).
//
// A Repo is a cas.Store (where objects and version refs live) plus an
// index.KV (local, derived facts that make repeated work cheap). The store
// is the truth: deleting the index loses nothing but speed.
//
// # Versions
//
// A version is the ref "<dataset>/<version>" pointing at a version object,
// which names a root tree. Add writes every chunk, file and tree object
// first and creates the ref last, with the store's create-if-absent, so a
// version exists whole or not at all, and two writers of one name get one
// success and one ErrExists.
//
// Refs outside "<dataset>/<version>" name version objects too: runs are
// published as "runs/<id>/<seq>" (Writer.CommitRef). Datasets and
// Versions list only datasets' refs; gc and fsck walk every ref alike.
//
// # Garbage collection and concurrent writers
//
// gc deletes objects that no ref reaches. An add in progress has written
// objects that no ref reaches yet, so the two exclude each other with a
// lock file in the store: add holds it shared, gc exclusive.
package repo
