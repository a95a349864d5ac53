// Package index defines KV, the small ordered key-value store that mlfs uses
// for its local metadata index.
//
// The interface exists so that the rest of mlfs never imports a storage
// engine directly (in the spirit of perkeep's pkg/sorted.KeyValue): code that
// needs an index takes an index.KV, the production binary opens one with
// [github.com/mlfs/mlfs/index/badgerkv], and tests use the in-memory
// [github.com/mlfs/mlfs/index/memkv]. Keeping the surface this narrow — point
// reads and writes, ordered prefix scans and write batches — means the engine
// can be tuned, replaced or faked without touching callers, and engine
// specifics (transactions, transaction size limits, value logs, option
// tuning, log routing) stay in one package.
//
// Every implementation must pass the conformance suite in
// [github.com/mlfs/mlfs/index/kvtest].
//
// # Keys and values
//
// Keys are arbitrary non-empty byte strings ordered bytewise
// ([bytes.Compare]); values are arbitrary byte strings, possibly empty.
// Implementations never retain or modify slices passed to them, and slices
// they return from Get belong to the caller. Callers typically build keys as
// a short ASCII table prefix followed by fixed-width or escaped fields, so
// that related rows can be read with a single Scan.
//
// # Concurrency
//
// All methods of KV and Batch are safe for concurrent use by multiple
// goroutines.
package index
