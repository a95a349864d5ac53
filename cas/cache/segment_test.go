package cache_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/mem"
)

// An object read again and again survives a stream of others through a
// cache that holds a small part of them: a used object gets a second
// chance when its segment is evicted, and the disk stays within bounds.
func TestSecondChance(t *testing.T) {
	src := newCounting()
	dir := t.TempDir()
	const bound = 1 << 20
	c := open(t, dir, bound, src, nil)
	hot := chunk(0, 4096)
	hotID := put(t, src, hot)
	mustGet(t, c, hotID, hot)
	for i := 1; i <= 2000; i++ { // 8 MiB through a 1 MiB cache
		data := chunk(uint64(i), 4096)
		mustGet(t, c, put(t, src, data), data)
		mustGet(t, c, hotID, hot)
		if n := diskBytes(t, dir); n > bound {
			t.Fatalf("after %d objects, %d bytes on disk, bound %d", i, n, bound)
		}
	}
	if st := c.Stats(); st.Evictions < 1500 {
		t.Errorf("only %d evictions of 2000 objects through a cache of 250: %+v", st.Evictions, st)
	}
	if n := src.gets.Load(); n != 2001 {
		t.Errorf("the source was asked %d times for 2001 objects: the hot one was evicted", n)
	}
}

// record returns a segment record of data as the cache writes it.
func record(data []byte) []byte {
	id := cas.Sum(data)
	h := make([]byte, 8, 8+len(id)+len(data))
	copy(h, "mlc1")
	binary.LittleEndian.PutUint32(h[4:], uint32(len(data)))
	return append(append(h, id[:]...), data...)
}

// FuzzOpenSegment opens a cache over a segment file of any bytes (and an
// index file of any bytes): New must not fail or panic, and a Get returns
// the right bytes, from the segment or, where it is wrong, from the source.
func FuzzOpenSegment(f *testing.F) {
	a, b := []byte("first object"), bytes.Repeat([]byte{7}, 300)
	good := append(record(a), record(b)...)
	f.Add(good, []byte(nil))
	f.Add(good[:len(good)-5], []byte(nil))
	f.Add(append(append([]byte{}, good...), "mlc1\xff\xff\xff\xff"...), []byte(nil))
	f.Add(good, []byte("mlci1\n\x00\x00\x00\x00\x00\x00\x00\x00"))
	idx := []byte("mlci1\n")
	idx = binary.LittleEndian.AppendUint64(idx, uint64(len(good)))
	aid := cas.Sum(a)
	idx = append(idx, aid[:]...)
	idx = binary.LittleEndian.AppendUint64(idx, 40)
	idx = binary.LittleEndian.AppendUint32(idx, uint32(len(a)))
	f.Add(good, idx)
	f.Add([]byte("mlc1"), idx)
	f.Fuzz(func(t *testing.T, seg, index []byte) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "segments"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "segments", "0000000000000001.seg"), seg, 0o600); err != nil {
			t.Fatal(err)
		}
		if index != nil {
			if err := os.WriteFile(filepath.Join(dir, "segments", "0000000000000001.idx"), index, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		m := mem.New()
		ctx := context.Background()
		for _, data := range [][]byte{a, b} {
			if err := m.Put(ctx, cas.Sum(data), data); err != nil {
				t.Fatal(err)
			}
		}
		c := open(t, dir, 1<<20, m, nil)
		for _, data := range [][]byte{a, b} {
			mustGet(t, c, cas.Sum(data), data)
		}
	})
}
