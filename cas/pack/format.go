package pack

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mlfs/mlfs/cas"
)

// Pack format, version 2:
//
//	blob bytes, back to back
//	index:   count × (blob id [32], offset uint32 LE, length uint32 LE),
//	         in the order the blobs were written
//	trailer: count uint32 LE, BLAKE3 of the index [32], magic "MLFSPAK2"
//
// A pack is named by the BLAKE3 of its trailer (see Name). The trailer
// holds the hash of the index, and the index the id, offset and length of
// every blob, which tile the data area exactly: the name commits to every
// byte of the pack, as a Merkle tree does, without hashing the 16 MiB of
// blob bytes a second time (each blob was hashed for its own id, and is
// verified against it whenever it is read). So a pack's name is not the
// hash of its bytes, and packs are read from the backend by ranges only
// (GetRange, which does not verify), never by a whole-object Get. Whoever
// fetches only the tail checks it against the name, then the index against
// the trailer.
const (
	// magic names the format: version 2 packs are named by the hash of
	// their trailer; version 1 packs (written before) by the hash of all
	// their bytes, and are still read.
	magic       = "MLFSPAK2"
	magicV1     = "MLFSPAK1"
	entrySize   = cas.IDSize + 8
	trailerSize = 4 + cas.IDSize + 8 // count, index hash, magic
	// maxEntries bounds what a trailer may claim before anything is read.
	maxEntries = 1 << 24
)

// ErrMalformed is wrapped by every error decoding a pack.
var ErrMalformed = errors.New("malformed pack")

// Entry is one blob in a pack.
type Entry struct {
	ID     cas.ID
	Offset uint32
	Length uint32
}

// appendIndex appends the index and trailer for entries to b.
func appendIndex(b []byte, entries []Entry) []byte {
	start := len(b)
	for _, e := range entries {
		b = append(b, e.ID[:]...)
		b = binary.LittleEndian.AppendUint32(b, e.Offset)
		b = binary.LittleEndian.AppendUint32(b, e.Length)
	}
	sum := cas.Sum(b[start:])
	b = binary.LittleEndian.AppendUint32(b, uint32(len(entries)))
	b = append(b, sum[:]...)
	return append(b, magic...)
}

// ParseTrailer reads the trailer (the last trailerSize bytes of a pack of
// packSize bytes) and returns the entry count and the index's hash.
func ParseTrailer(t []byte, packSize int64) (int, cas.ID, error) {
	if len(t) != trailerSize || string(t[4+cas.IDSize:]) != magic && string(t[4+cas.IDSize:]) != magicV1 {
		return 0, cas.ID{}, fmt.Errorf("%w: no pack trailer", ErrMalformed)
	}
	n := binary.LittleEndian.Uint32(t)
	if n > maxEntries || int64(n)*entrySize+trailerSize > packSize {
		return 0, cas.ID{}, fmt.Errorf("%w: trailer claims %d blobs in %d bytes", ErrMalformed, n, packSize)
	}
	return int(n), cas.ID(t[4 : 4+cas.IDSize]), nil
}

// ParseIndex decodes the index of a pack of packSize bytes and checks it:
// its hash, and that every blob lies inside the data area without overlap.
func ParseIndex(idx []byte, sum cas.ID, packSize int64) ([]Entry, error) {
	if len(idx)%entrySize != 0 {
		return nil, fmt.Errorf("%w: index of %d bytes", ErrMalformed, len(idx))
	}
	if cas.Sum(idx) != sum {
		return nil, fmt.Errorf("%w: index does not match its hash", ErrMalformed)
	}
	dataEnd := packSize - int64(len(idx)) - trailerSize
	entries := make([]Entry, len(idx)/entrySize)
	var next int64
	for i := range entries {
		b := idx[i*entrySize:]
		e := Entry{ID: cas.ID(b[:cas.IDSize]), Offset: binary.LittleEndian.Uint32(b[32:]), Length: binary.LittleEndian.Uint32(b[36:])}
		if int64(e.Offset) != next || int64(e.Offset)+int64(e.Length) > dataEnd {
			return nil, fmt.Errorf("%w: blob %d at %d+%d does not follow %d within %d", ErrMalformed, i, e.Offset, e.Length, next, dataEnd)
		}
		next = int64(e.Offset) + int64(e.Length)
		entries[i] = e
	}
	if next != dataEnd {
		return nil, fmt.Errorf("%w: %d bytes of data, index covers %d", ErrMalformed, dataEnd, next)
	}
	return entries, nil
}

// namedByTrailer reports whether trailer t belongs to a pack named by its
// hash (version 2); version 1 packs are named by the hash of all of them.
func namedByTrailer(t []byte) bool { return string(t[len(t)-len(magic):]) == magic }

// Name returns the name of a complete pack: the BLAKE3 of its trailer.
func Name(pack []byte) cas.ID {
	return cas.Sum(pack[max(len(pack)-trailerSize, 0):])
}

// Parse decodes a whole pack: its trailer and index, checked as
// ParseTrailer and ParseIndex check them. It reads nothing beyond b.
func Parse(b []byte) ([]Entry, error) {
	size := int64(len(b))
	if size < trailerSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, size)
	}
	n, sum, err := ParseTrailer(b[size-trailerSize:], size)
	if err != nil {
		return nil, err
	}
	end := size - trailerSize
	return ParseIndex(b[end-int64(n)*entrySize:end], sum, size)
}
