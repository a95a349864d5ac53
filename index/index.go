package index

import "errors"

// ErrNotFound is returned by Get when the key is absent.
var ErrNotFound = errors.New("index: key not found")

// ErrEmptyKey is returned by writes whose key is empty. Empty keys are never
// stored, so Get of an empty key returns ErrNotFound.
var ErrEmptyKey = errors.New("index: empty key")

// KV is an ordered key-value store. See the package documentation for the
// general rules on keys, slice ownership and concurrency.
type KV interface {
	// Get returns a copy of the value stored under key, which the caller
	// may keep and modify. If the key is absent it returns an error
	// matching ErrNotFound under errors.Is.
	Get(key []byte) ([]byte, error)

	// Set stores value under key, replacing any previous value. Set copies
	// key and value; the caller may reuse them once Set returns. It returns
	// ErrEmptyKey if key is empty.
	Set(key, value []byte) error

	// Delete removes key. Deleting an absent key is not an error. It
	// returns ErrEmptyKey if key is empty.
	Delete(key []byte) error

	// Scan calls fn for each key that starts with prefix, in ascending
	// bytewise key order; an empty prefix visits every key.
	//
	// Scan reads a consistent snapshot taken when it starts: writes made
	// while it runs, including by fn, are not observed. fn may call other
	// methods of the KV.
	//
	// The key and value slices passed to fn are valid only during that
	// call and must not be modified; copy them to keep them. If fn returns
	// a non-nil error the scan stops and Scan returns that error unchanged.
	Scan(prefix []byte, fn func(key, value []byte) error) error

	// NewBatch returns an empty write batch. Its writes are buffered in
	// memory and become visible only when Commit is called.
	NewBatch() Batch

	// Close releases the store's resources. Using the KV after Close
	// returns errors. Close must not be called while other calls are in
	// progress.
	Close() error
}

// Batch groups writes so they are applied together, which is much cheaper
// than individual Set and Delete calls for bulk updates.
//
// Writes are applied in the order they were added, so the last write to a
// key wins. Commit is atomic when the batch fits in a single engine
// transaction. Larger batches of any size are accepted: the engine may
// apply them as a series of atomic chunks, in order, so concurrent readers
// (or a crash during Commit) may observe a prefix of the batch. Because
// pending writes are held in memory until Commit, callers writing a lot of
// data should commit every few thousand entries rather than build one huge
// batch.
//
// A Batch is finished by Commit or Cancel; after that, Set, Delete and
// Commit return errors, and Cancel is a no-op, so the usual pattern is:
//
//	b := kv.NewBatch()
//	defer b.Cancel()
//	... b.Set(k, v) ...
//	return b.Commit()
type Batch interface {
	// Set records a write of value under key. It copies key and value.
	// It returns ErrEmptyKey if key is empty.
	Set(key, value []byte) error

	// Delete records the removal of key. It copies key. It returns
	// ErrEmptyKey if key is empty.
	Delete(key []byte) error

	// Commit applies the recorded writes and finishes the batch.
	Commit() error

	// Cancel discards the recorded writes and finishes the batch. It is a
	// no-op on a finished batch.
	Cancel()
}
