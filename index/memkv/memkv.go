// Package memkv is an in-memory implementation of [index.KV], intended for
// tests and for throwaway indexes. Scans sort the matching keys on every
// call, so it is not meant for large data sets.
package memkv

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/mlfs/mlfs/index"
)

var (
	errClosed     = errors.New("memkv: closed")
	errBatchEnded = errors.New("memkv: batch already committed or cancelled")
)

// KV is an in-memory [index.KV]. The zero value is not usable; call New.
type KV struct {
	mu     sync.RWMutex
	m      map[string][]byte // values are never mutated in place
	closed bool
}

var _ index.KV = (*KV)(nil)

// New returns an empty in-memory KV.
func New() *KV {
	return &KV{m: make(map[string][]byte)}
}

// Get implements [index.KV].
func (kv *KV) Get(key []byte) ([]byte, error) {
	kv.mu.RLock()
	defer kv.mu.RUnlock()
	if kv.closed {
		return nil, errClosed
	}
	v, ok := kv.m[string(key)]
	if !ok {
		return nil, index.ErrNotFound
	}
	return bytes.Clone(v), nil
}

// Set implements [index.KV].
func (kv *KV) Set(key, value []byte) error {
	b := kv.NewBatch()
	if err := b.Set(key, value); err != nil {
		return err
	}
	return b.Commit()
}

// Delete implements [index.KV].
func (kv *KV) Delete(key []byte) error {
	b := kv.NewBatch()
	if err := b.Delete(key); err != nil {
		return err
	}
	return b.Commit()
}

// Scan implements [index.KV]. It snapshots the matching entries under the
// lock and calls fn without holding it, so fn may use the KV.
func (kv *KV) Scan(prefix []byte, fn func(key, value []byte) error) error {
	type entry struct {
		k string
		v []byte
	}
	kv.mu.RLock()
	if kv.closed {
		kv.mu.RUnlock()
		return errClosed
	}
	var snap []entry
	p := string(prefix)
	for k, v := range kv.m {
		if strings.HasPrefix(k, p) {
			snap = append(snap, entry{k, v})
		}
	}
	kv.mu.RUnlock()

	slices.SortFunc(snap, func(a, b entry) int { return strings.Compare(a.k, b.k) })
	// Hand fn reused scratch buffers rather than the stored slices, so that
	// callers which retain or modify them misbehave here as they would with
	// a real engine, instead of silently working.
	var kbuf, vbuf []byte
	for _, e := range snap {
		kbuf = append(kbuf[:0], e.k...)
		vbuf = append(vbuf[:0], e.v...)
		if err := fn(kbuf, vbuf); err != nil {
			return err
		}
	}
	return nil
}

// NewBatch implements [index.KV]. Commit applies the whole batch atomically.
func (kv *KV) NewBatch() index.Batch {
	return &batch{kv: kv}
}

// Close implements [index.KV]. It drops all data.
func (kv *KV) Close() error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.closed = true
	kv.m = nil
	return nil
}

type op struct {
	key   string
	value []byte // private copy, stored as is on Commit
	del   bool
}

type batch struct {
	kv    *KV
	mu    sync.Mutex
	ops   []op
	ended bool
}

func (b *batch) add(o op) error {
	if o.key == "" {
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
	return b.add(op{key: string(key), value: bytes.Clone(value)})
}

func (b *batch) Delete(key []byte) error {
	return b.add(op{key: string(key), del: true})
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

	kv := b.kv
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if kv.closed {
		return errClosed
	}
	for _, o := range ops {
		if o.del {
			delete(kv.m, o.key)
		} else {
			kv.m[o.key] = o.value
		}
	}
	return nil
}

func (b *batch) Cancel() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ended = true
	b.ops = nil
}
