package fs

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
)

// objects is an in-memory object source that counts Gets by id and, if
// prefetches is set, records what it is asked to Prefetch.
type objects struct {
	mu         sync.Mutex
	m          map[cas.ID][]byte
	gets       map[cas.ID]int
	prefetches *[][]cas.ID
}

func newObjects() *objects {
	return &objects{m: map[cas.ID][]byte{}, gets: map[cas.ID]int{}}
}

func (o *objects) add(b []byte) cas.ID {
	id := cas.Sum(b)
	o.mu.Lock()
	o.m[id] = b
	o.mu.Unlock()
	return id
}

func (o *objects) Get(ctx context.Context, id cas.ID) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, ok := o.m[id]
	if !ok {
		return nil, fmt.Errorf("object %s: %w", id.Short(), cas.ErrNotFound)
	}
	o.gets[id]++
	return bytes.Clone(b), nil
}

func (o *objects) GetRange(ctx context.Context, id cas.ID, off, n int64) ([]byte, error) {
	b, err := o.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	lo, hi, err := cas.ClampRange(id, int64(len(b)), off, n)
	if err != nil {
		return nil, err
	}
	return b[lo:hi], nil
}

func (o *objects) Stat(ctx context.Context, id cas.ID) (int64, error) {
	b, err := o.Get(ctx, id)
	return int64(len(b)), err
}

func (o *objects) getsOf(id cas.ID) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.gets[id]
}

// prefetchingObjects is objects with a Prefetch.
type prefetchingObjects struct{ *objects }

func (o prefetchingObjects) Prefetch(ctx context.Context, ids []cas.ID) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	*o.prefetches = append(*o.prefetches, ids)
	return nil
}

// addFile stores a file of n chunks of size bytes and returns its entry.
func addFile(o *objects, name string, n, size int, seed uint64) object.Entry {
	f := &object.File{}
	for i := range n {
		id := o.add(randomBytes(size, seed*1000+uint64(i)))
		f.Chunks = append(f.Chunks, object.ChunkRef{ID: id, Size: uint32(size)})
		f.Size += int64(size)
	}
	return object.Entry{Name: name, Type: object.TypeFile, Perm: 0o644, Size: f.Size, ID: o.add(f.Encode())}
}

// eventually waits up to 5 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// With Options.Prefetch, a sequential reader has the store prefetch
// further ahead than its own read-ahead, in batches of at least a
// read-ahead's bytes, each chunk once.
func TestReadAheadPrefetchesFar(t *testing.T) {
	var asked [][]cas.ID
	base := newObjects()
	base.prefetches = &asked
	objs := prefetchingObjects{base}
	const chunk, chunks, readAhead = 16 << 10, 200, 64 << 10
	e := addFile(base, "data.bin", chunks, chunk, 1)
	readAll := func(prefetch bool) {
		t.Helper()
		root := New(Options{Objects: objs, ReadAhead: readAhead, Prefetch: prefetch})
		f := &versionFile{sys: root.sys, ent: e}
		if errno := f.load(bg); errno != 0 {
			t.Fatal(errno)
		}
		r := &reader{f: f}
		buf := make([]byte, chunk/2)
		for off := int64(0); off < e.Size; off += int64(len(buf)) {
			n, errno := r.read(bg, buf, off)
			if errno != 0 || n != len(buf) {
				t.Fatalf("read at %d: %d bytes, %v", off, n, errno)
			}
			eventually(t, "a prefetch to end", func() bool {
				r.mu.Lock()
				defer r.mu.Unlock()
				return r.faring == 0
			})
		}
	}
	readAll(false)
	if len(asked) != 0 {
		t.Fatal("the store was asked to prefetch without Options.Prefetch")
	}
	readAll(true)
	base.mu.Lock()
	defer base.mu.Unlock()
	if len(asked) == 0 {
		t.Fatal("the store was never asked to prefetch")
	}
	seen := map[cas.ID]bool{}
	for k, batch := range asked {
		if k < len(asked)-1 && len(batch)*chunk < readAhead {
			t.Errorf("batch %d: %d chunks, less than a read-ahead", k, len(batch))
		}
		for _, id := range batch {
			if seen[id] {
				t.Fatalf("chunk %s asked for twice", id.Short())
			}
			seen[id] = true
		}
	}
	file, _ := object.DecodeFile(base.m[e.ID])
	for i, c := range file.Chunks[chunks/2:] {
		if !seen[c.ID] {
			t.Fatalf("chunk %d was never prefetched", chunks/2+i)
		}
	}
}

// What read-ahead fetched is handed to the reader: each chunk is fetched
// from the store once, and read-ahead goes on when fetchers were busy.
func TestReadAheadHandsOverChunks(t *testing.T) {
	objs := newObjects()
	const chunk, chunks = 16 << 10, 64
	e := addFile(objs, "data.bin", chunks, chunk, 2)
	root := New(Options{Objects: objs, ReadAhead: 8 * chunk, Fetchers: 2})
	f := &versionFile{sys: root.sys, ent: e}
	if errno := f.load(bg); errno != 0 {
		t.Fatal(errno)
	}
	file, _ := object.DecodeFile(objs.m[e.ID])
	r := &reader{f: f}
	buf := make([]byte, chunk)
	var want []byte
	for i := range chunks {
		n, errno := r.read(bg, buf, int64(i*chunk))
		if errno != 0 || n != chunk {
			t.Fatalf("read chunk %d: %d bytes, %v", i, n, errno)
		}
		want = objs.m[file.Chunks[i].ID]
		if !bytes.Equal(buf, want) {
			t.Fatalf("chunk %d: wrong bytes", i)
		}
		if i+1 < chunks {
			next := file.Chunks[i+1].ID
			eventually(t, "the next chunk's read-ahead", func() bool { return i < 1 || root.sys.ahead.has(next) })
		}
	}
	for i, c := range file.Chunks {
		if n := objs.getsOf(c.ID); n != 1 {
			t.Errorf("chunk %d fetched %d times, want once", i, n)
		}
	}
}

// fetched keeps at most max bytes, dropping the oldest, and hands each
// object out once.
func TestFetchedBound(t *testing.T) {
	f := fetched{max: 3000}
	var ids []cas.ID
	for i := range 5 {
		b := bytes.Repeat([]byte{byte(i)}, 1000)
		ids = append(ids, cas.Sum(b))
		f.put(ids[i], b)
	}
	if f.bytes != 3000 || f.has(ids[0]) || f.has(ids[1]) || !f.has(ids[2]) {
		t.Fatalf("holds %d bytes (has the first: %v), want the last 3000", f.bytes, f.has(ids[0]))
	}
	if b, ok := f.take(ids[4]); !ok || len(b) != 1000 {
		t.Fatal("the last object is not held")
	}
	if _, ok := f.take(ids[4]); ok {
		t.Fatal("an object was handed out twice")
	}
	f.put(cas.Sum(make([]byte, 4000)), make([]byte, 4000))
	if f.bytes != 2000 {
		t.Fatalf("an object larger than the bound was kept: %d bytes held", f.bytes)
	}
}

// Files opened in name order have the next files of their folder fetched
// ahead: their file objects and chunks are in memory when they are opened.
func TestFolderReadAhead(t *testing.T) {
	objs := newObjects()
	tree := &object.Tree{}
	for i := range 20 {
		tree.Entries = append(tree.Entries, addFile(objs, fmt.Sprintf("f%02d", i), 1, 4096, uint64(10+i)))
	}
	root := New(Options{Objects: objs, ReadAhead: 10 * 4096})
	d := &versionDir{sys: root.sys, ent: object.Entry{Type: object.TypeDir, ID: objs.add(tree.Encode())}, last: -1}
	if _, errno := d.load(bg); errno != 0 {
		t.Fatal(errno)
	}
	open := func(i int) {
		t.Helper()
		f := &versionFile{sys: root.sys, ent: tree.Entries[i], dir: d, pos: i}
		if _, _, errno := f.Open(bg, 0); errno != 0 {
			t.Fatal(errno)
		}
		r := &reader{f: f}
		if _, errno := r.read(bg, make([]byte, 4096), 0); errno != 0 {
			t.Fatal(errno)
		}
	}
	for i := range 3 {
		open(i)
	}
	// Each file is read ahead by a fetcher of its own, in any order.
	eventually(t, "the read-ahead of f03 to f05", func() bool {
		for i := 3; i <= 5; i++ {
			e := tree.Entries[i]
			file, _ := object.DecodeFile(objs.m[e.ID])
			if !root.sys.ahead.has(e.ID) || !root.sys.ahead.has(file.Chunks[0].ID) {
				return false
			}
		}
		return true
	})
	open(3)
	open(4)
	open(5)
	for i := 3; i <= 5; i++ {
		e := tree.Entries[i]
		file, _ := object.DecodeFile(objs.m[e.ID])
		if objs.getsOf(e.ID) != 1 || objs.getsOf(file.Chunks[0].ID) != 1 {
			t.Errorf("f%02d: file object fetched %d times, chunk %d times; want once each", i, objs.getsOf(e.ID), objs.getsOf(file.Chunks[0].ID))
		}
	}
	if objs.getsOf(tree.Entries[19].ID) != 0 {
		t.Error("read ahead further than ReadAhead bytes of files")
	}
}
