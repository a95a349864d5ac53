package cache

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mlfs/mlfs/cas"
)

// A segment file is a run of records, each an object:
//
//	magic "mlc1" | size uint32 LE | id [32]byte | size bytes of the object
//
// appended and never changed. A sealed segment may have an index file
// beside it (<seq>.idx) that lists its records, so that opening the cache
// need not read every header; it is written when the segment is sealed.
const (
	recordMagic  = "mlc1"
	headerSize   = 4 + 4 + 32 // magic, size, id
	segSuffix    = ".seg"
	idxSuffix    = ".idx"
	idxMagic     = "mlci1\n"
	idxEntrySize = len(cas.ID{}) + 8 + 4
)

// Segment sizes: a sixteenth of the cache, so that evicting one frees a
// little of it, within bounds that keep the files few for a large cache
// and not tiny for a small one.
const (
	minSegment = 4 << 10
	maxSegment = 256 << 20
)

func segmentBytes(bound int64) int64 { return min(maxSegment, max(minSegment, bound/16)) }

// Record overhead on disk, for tests.
const recordOverhead = headerSize

// entry is where a cached object lives.
type entry struct {
	seg  uint64 // the segment's seq
	off  int64  // of the object's bytes in the segment
	size int64
	ref  bool   // read since written: kept when its segment is evicted
	gen  uint64 // tells apart two lives of one id
}

// segment is one segment file.
type segment struct {
	seq     uint64
	f       *os.File
	size    int64    // bytes in the file, reserved ones included
	ids     []cas.ID // the records' ids in order, to find its live objects
	offs    []int64  // their offsets (of the bytes)
	sizes   []int64  // and sizes
	refs    int      // reads and writes in flight; the file is closed when 0 and dead
	writing int      // writes in flight: its index waits for them
	sealed  bool     // no more appends: a newer segment took over
	dead    bool     // evicted, purged or closed: closed once refs is 0
	bad     bool     // a write to it failed: no more appends
	index   bool     // its .idx file is written and matches
}

func segName(seq uint64) string { return fmt.Sprintf("%016x", seq) }

// parseSegName returns the seq of a segment file's name.
func parseSegName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(base) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(base, 16, 64)
	return seq, err == nil
}

// encodeHeader returns the header of a record of b as id.
func encodeHeader(id cas.ID, size int) []byte {
	h := make([]byte, headerSize)
	copy(h, recordMagic)
	binary.LittleEndian.PutUint32(h[4:], uint32(size))
	copy(h[8:], id[:])
	return h
}

// writeRecord writes the record of b as id at off in f.
func writeRecord(f *os.File, off int64, id cas.ID, b []byte) error {
	_, err := f.WriteAt(encodeHeader(id, len(b)), off)
	if err == nil {
		_, err = f.WriteAt(b, off+headerSize)
	}
	return err
}

// add lists the record of id, its bytes at off, in s.
func (s *segment) add(id cas.ID, off, size int64) {
	s.ids, s.offs, s.sizes = append(s.ids, id), append(s.offs, off), append(s.sizes, size)
}

// decodeHeader parses a record's header.
func decodeHeader(h []byte) (cas.ID, int64, error) {
	if len(h) < headerSize || string(h[:4]) != recordMagic {
		return cas.ID{}, 0, errors.New("not a record header")
	}
	var id cas.ID
	copy(id[:], h[8:headerSize])
	return id, int64(binary.LittleEndian.Uint32(h[4:])), nil
}

// scanRecords lists the records of a segment file of size bytes, reading
// its headers; it stops at the first that is not whole (a crash may tear
// the tail of a segment, or a failed write leave a hole).
func scanRecords(f *os.File, size int64, fn func(id cas.ID, off, n int64)) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<20)
	h := make([]byte, headerSize)
	for off := int64(0); off+headerSize <= size; {
		if _, err := io.ReadFull(r, h); err != nil {
			return
		}
		id, n, err := decodeHeader(h)
		if err != nil || off+headerSize+n > size {
			return
		}
		fn(id, off+headerSize, n)
		if _, err := r.Discard(int(n)); err != nil {
			return
		}
		off += headerSize + n
	}
}

// writeIndex writes the .idx file of a sealed segment: its size and its
// records. Without fsync: a torn or missing one makes the next open scan
// the segment instead.
func writeIndex(path string, s *segment) error {
	var b bytes.Buffer
	b.WriteString(idxMagic)
	binary.Write(&b, binary.LittleEndian, s.size)
	for i, id := range s.ids {
		b.Write(id[:])
		binary.Write(&b, binary.LittleEndian, s.offs[i])
		binary.Write(&b, binary.LittleEndian, uint32(s.sizes[i]))
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readIndex reads the .idx file of a segment of size bytes; false if it is
// missing, torn or of another size of the segment.
func readIndex(path string, size int64, fn func(id cas.ID, off, n int64)) bool {
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte(idxMagic)) || len(b) < len(idxMagic)+8 {
		return false
	}
	b = b[len(idxMagic):]
	if int64(binary.LittleEndian.Uint64(b)) != size || (len(b)-8)%idxEntrySize != 0 {
		return false
	}
	for b = b[8:]; len(b) > 0; b = b[idxEntrySize:] {
		var id cas.ID
		copy(id[:], b)
		off := int64(binary.LittleEndian.Uint64(b[len(id):]))
		n := int64(binary.LittleEndian.Uint32(b[len(id)+8:]))
		if off < headerSize || off+n > size {
			return false
		}
		fn(id, off, n)
	}
	return true
}

// listSegments returns the seqs of the segment files in dir, oldest first,
// and removes what else is there (temp index files, strays).
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		if seq, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		} else if !strings.HasSuffix(e.Name(), idxSuffix) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}
