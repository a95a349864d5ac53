// Package cas holds the vocabulary of mlfs's content-addressed store: the
// content id, the sentinel errors, and the Store interface that every
// backend (cas/mem, cas/local, and later the clouds) implements.
//
// # Why a narrow interface
//
// Everything above the store — adding a folder as a version, exporting it,
// the FUSE mount, run artifacts — needs only a handful of operations: put an
// immutable object under its id, read it back whole or by range, enumerate
// and delete objects for garbage collection, and name things with refs that
// are created only if absent. Keeping the interface that small is what lets a
// new backend be written in an afternoon and proven by one shared
// conformance suite (cas/castest) instead of by the callers' tests.
//
// # Objects and ids
//
// An object is an immutable byte string; its id is the BLAKE3-256 hash of
// those bytes. Backends store the bytes as given and never interpret them;
// the encodings of the file, tree and version objects live in cas/object and
// the content-defined chunker in cas/chunker.
//
// A whole-object Get verifies the bytes against the id and reports
// ErrCorrupt on mismatch, so no caller can receive wrong bytes through it.
// GetRange cannot verify a part of an object; callers that read ranges verify
// what they assemble (a chunk is always verified whole).
//
// # Refs
//
// A ref is a name such as "iris/v1" that points at an object id. Refs are
// created only if absent (ErrExists otherwise, with exactly one winner among
// concurrent creators), which is what makes a version name atomic and unique.
// A backend makes every object Put before a CreateRef durable before the ref
// itself is visible, so a ref never points at objects that a crash could lose.
package cas
