// Package badgerkv implements [index.KV] on top of Badger, an embedded LSM
// key-value store. It is the only package in mlfs that imports Badger.
//
// Open tunes Badger for a small memory footprint rather than throughput: the
// index lives inside a CLI process that must stay well under ~150 MiB RSS
// while it streams large files. Badger reserves keys starting with
// "!badger!"; writes of such keys fail.
package badgerkv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/mlfs/mlfs/index"
)

// ErrInUse is matched (errors.Is) by the error Open returns when another
// process holds the index directory.
var ErrInUse = errors.New("in use by another mlfs process (is the daemon running?)")

var errBatchEnded = errors.New("badgerkv: batch already committed or cancelled")

// KV is an [index.KV] stored in a Badger database.
type KV struct {
	db *badger.DB
}

var _ index.KV = (*KV)(nil)

// Open opens or creates the index in dir. Badger's own log output goes to
// logger (debug and info at slog.LevelDebug, warnings and errors at
// slog.LevelWarn); a nil logger discards it.
//
// Only one process may have an index open at a time; if dir is held by
// another process the returned error matches ErrInUse.
func Open(dir string, logger *slog.Logger) (*KV, error) {
	opts := badger.DefaultOptions(dir).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithMetricsEnabled(false).
		// KV has no read-modify-write transactions, so there is nothing
		// to conflict; skipping detection saves per-transaction memory.
		WithDetectConflicts(false).
		WithLogger(nil)
	if logger != nil {
		opts = opts.WithLogger(slogAdapter{logger.With("component", "badger")})
	}
	db, err := badger.Open(opts)
	if err != nil {
		// Badger flattens the flock error into a string, so match its text.
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			return nil, fmt.Errorf("index %s is %w", dir, ErrInUse)
		}
		return nil, fmt.Errorf("open index %s: %w", dir, err)
	}
	return &KV{db: db}, nil
}

// Get implements [index.KV].
func (kv *KV) Get(key []byte) ([]byte, error) {
	if len(key) == 0 {
		return nil, index.ErrNotFound
	}
	var v []byte
	err := kv.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, index.ErrNotFound
	}
	return v, err
}

// Set implements [index.KV]. Badger copies key and value into its memtable
// before the commit returns, so the caller's slices are not retained.
func (kv *KV) Set(key, value []byte) error {
	if len(key) == 0 {
		return index.ErrEmptyKey
	}
	return kv.db.Update(func(txn *badger.Txn) error { return txn.Set(key, value) })
}

// Delete implements [index.KV].
func (kv *KV) Delete(key []byte) error {
	if len(key) == 0 {
		return index.ErrEmptyKey
	}
	return kv.db.Update(func(txn *badger.Txn) error { return txn.Delete(key) })
}

// Scan implements [index.KV]. It runs in a single read transaction, which
// provides the snapshot.
func (kv *KV) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return kv.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false // values are read in place below
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			key := item.Key()
			if err := item.Value(func(v []byte) error { return fn(key, v) }); err != nil {
				return err
			}
		}
		return nil
	})
}

// NewBatch implements [index.KV]. Writes are buffered until Commit, which
// applies them in as few Badger transactions as the transaction size limit
// allows.
func (kv *KV) NewBatch() index.Batch {
	return &batch{db: kv.db}
}

// Sync makes every committed write durable on disk. Commits reach the
// kernel before they return (a killed process loses none of them); Sync is
// for an fsync of the mount, which must also survive the machine.
func (kv *KV) Sync() error {
	return kv.db.Sync()
}

// Close implements [index.KV].
func (kv *KV) Close() error {
	return kv.db.Close()
}

type op struct {
	key, value []byte // private copies
	del        bool
}

type batch struct {
	db    *badger.DB
	mu    sync.Mutex
	ops   []op
	ended bool
}

func (b *batch) add(o op) error {
	if len(o.key) == 0 {
		return index.ErrEmptyKey
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return errBatchEnded
	}
	b.ops = append(b.ops, o)
	return nil
}

func (b *batch) Set(key, value []byte) error {
	return b.add(op{key: bytes.Clone(key), value: bytes.Clone(value)})
}

func (b *batch) Delete(key []byte) error {
	return b.add(op{key: bytes.Clone(key), del: true})
}

func (b *batch) Commit() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return errBatchEnded
	}
	b.ended = true
	ops := b.ops
	b.ops = nil
	if b.db.IsClosed() {
		return badger.ErrDBClosed
	}

	txn := b.db.NewTransaction(true)
	// txn is replaced when full, so discard whichever is current.
	defer func() { txn.Discard() }()
	n := 0 // writes in txn
	for i := 0; i < len(ops); {
		o := ops[i]
		var err error
		if o.del {
			err = txn.Delete(o.key)
		} else {
			err = txn.Set(o.key, o.value)
		}
		if errors.Is(err, badger.ErrTxnTooBig) && n > 0 {
			// Flush what fits and retry this write in a fresh txn.
			if err := txn.Commit(); err != nil {
				return err
			}
			txn = b.db.NewTransaction(true)
			n = 0
			continue
		}
		if err != nil {
			return fmt.Errorf("index batch: key %q: %w", o.key, err)
		}
		n++
		i++
	}
	return txn.Commit()
}

func (b *batch) Cancel() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ended = true
	b.ops = nil
}

// slogAdapter routes Badger's logger to slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if a.l.Enabled(ctx, level) {
		a.l.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(format, args...)))
	}
}

func (a slogAdapter) Errorf(f string, v ...any)   { a.log(slog.LevelWarn, f, v) }
func (a slogAdapter) Warningf(f string, v ...any) { a.log(slog.LevelWarn, f, v) }
func (a slogAdapter) Infof(f string, v ...any)    { a.log(slog.LevelDebug, f, v) }
func (a slogAdapter) Debugf(f string, v ...any)   { a.log(slog.LevelDebug, f, v) }
