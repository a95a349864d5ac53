package worktree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mlfs/mlfs/cas"
	"github.com/mlfs/mlfs/cas/object"
)

// ErrMalformed is wrapped by errors decoding a stored node record.
var ErrMalformed = errors.New("malformed working-tree record")

const recordVersion = 1

const (
	flagLocal  = 1 << iota // file bytes are in the local data file
	flagLoaded             // folder children are nodes (child keys exist)
	flagClean              // origin is the content id of the node as it is
)

// record is a node as stored in the index.
type record struct {
	Type  object.EntryType
	Perm  uint32
	MTime int64
	// Size is a clean file's size. A local file takes its size from the
	// data file; its record keeps the size the tree's counts hold for it
	// (see meta), which the next snapshot brings up to date.
	Size   int64
	Parent uint64
	Name   string
	Target string
	Flags  byte
	Origin cas.ID // valid with flagClean
}

func (r *record) encode() []byte {
	b := []byte{recordVersion, byte(r.Type)}
	b = binary.AppendUvarint(b, uint64(r.Perm))
	b = binary.AppendVarint(b, r.MTime)
	b = binary.AppendVarint(b, r.Size)
	b = binary.AppendUvarint(b, r.Parent)
	b = binary.AppendUvarint(b, uint64(len(r.Name)))
	b = append(b, r.Name...)
	b = binary.AppendUvarint(b, uint64(len(r.Target)))
	b = append(b, r.Target...)
	b = append(b, r.Flags)
	if r.Flags&flagClean != 0 {
		b = append(b, r.Origin[:]...)
	}
	return b
}

func decodeRecord(b []byte) (*record, error) {
	input := b
	fail := func(what string) (*record, error) {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, what)
	}
	if len(b) < 2 || b[0] != recordVersion {
		return fail("unknown version")
	}
	r := &record{Type: object.EntryType(b[1])}
	if r.Type < object.TypeFile || r.Type > object.TypeSymlink {
		return fail("unknown type")
	}
	b = b[2:]
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	sv := func() (int64, bool) {
		v, n := binary.Varint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	str := func(max int) (string, bool) {
		n, ok := uv()
		if !ok || n > uint64(max) || n > uint64(len(b)) {
			return "", false
		}
		s := string(b[:n])
		b = b[n:]
		return s, true
	}
	perm, ok1 := uv()
	mtime, ok2 := sv()
	size, ok3 := sv()
	parent, ok4 := uv()
	name, ok5 := str(object.MaxNameLen)
	target, ok6 := str(object.MaxTargetLen)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || len(b) < 1 {
		return fail("truncated")
	}
	if perm&^0o7777 != 0 || size < 0 {
		return fail("bad mode or size")
	}
	r.Perm, r.MTime, r.Size, r.Parent, r.Name, r.Target = uint32(perm), mtime, size, parent, name, target
	r.Flags = b[0]
	b = b[1:]
	if r.Flags&^(flagLocal|flagLoaded|flagClean) != 0 {
		return fail("unknown flags")
	}
	if r.Flags&flagClean != 0 {
		if len(b) < cas.IDSize {
			return fail("truncated origin")
		}
		r.Origin = cas.ID(b[:cas.IDSize])
		b = b[cas.IDSize:]
	}
	if len(b) != 0 {
		return fail("trailing bytes")
	}
	// Varints have more than one encoding; only the one encode writes is
	// a record, so that a record and its bytes are one thing.
	if !bytes.Equal(r.encode(), input) {
		return fail("not in canonical form")
	}
	return r, nil
}

// meta is the tree's own record: its base version, next inode number and
// the counts the next version records.
type meta struct {
	Base cas.ID // version the tree started from or was last snapshotted as
	Next uint64
	// Files and Bytes count the tree's files and their sizes, a local
	// file at the size its record keeps. Every change that adds or removes
	// a file updates them in its batch, so a snapshot knows the totals
	// without reading the trees it does not walk. Counted is false for a
	// tree whose base's counts could not be read (and for trees from
	// before counts were kept): its next snapshot counts by walking.
	Files, Bytes int64
	Counted      bool
	// Pinned is set by a checkout of a named version: the tree then stays
	// there instead of following the dataset's latest version (see
	// Tree.Follow) until a snapshot or a checkout of latest.
	Pinned bool
}

// A meta of a tree that is not pinned keeps the first format, so that an
// older mlfs still opens it; a pinned one has a flags byte after Next, and
// its counts after that when metaCounted is set.
const (
	metaFlagsVersion = 2
	metaCounted      = 1
	metaPinned       = 2
)

func (m *meta) encode() []byte {
	if m.Pinned {
		b := append([]byte{metaFlagsVersion}, m.Base[:]...)
		b = binary.AppendUvarint(b, m.Next)
		flags := byte(metaPinned)
		if m.Counted {
			flags |= metaCounted
		}
		b = append(b, flags)
		if m.Counted {
			b = binary.AppendVarint(b, m.Files)
			b = binary.AppendVarint(b, m.Bytes)
		}
		return b
	}
	b := append([]byte{recordVersion}, m.Base[:]...)
	b = binary.AppendUvarint(b, m.Next)
	if m.Counted {
		b = binary.AppendVarint(b, m.Files)
		b = binary.AppendVarint(b, m.Bytes)
	}
	return b
}

func decodeMeta(b []byte) (*meta, error) {
	bad := fmt.Errorf("%w: meta", ErrMalformed)
	if len(b) < 1+cas.IDSize || b[0] != recordVersion && b[0] != metaFlagsVersion {
		return nil, bad
	}
	m := &meta{Base: cas.ID(b[1 : 1+cas.IDSize])}
	rest := b[1+cas.IDSize:]
	next, n := binary.Uvarint(rest)
	if n <= 0 || next < 2 {
		return nil, bad
	}
	m.Next, rest = next, rest[n:]
	counted := len(rest) > 0
	if b[0] == metaFlagsVersion {
		if len(rest) < 1 || rest[0]&^(metaCounted|metaPinned) != 0 {
			return nil, bad
		}
		counted, m.Pinned = rest[0]&metaCounted != 0, rest[0]&metaPinned != 0
		rest = rest[1:]
	}
	if counted {
		files, n1 := binary.Varint(rest)
		if n1 <= 0 {
			return nil, bad
		}
		nbytes, n2 := binary.Varint(rest[n1:])
		if n2 <= 0 || n1+n2 != len(rest) {
			return nil, bad
		}
		m.Files, m.Bytes, m.Counted = files, nbytes, true
	} else if len(rest) != 0 {
		return nil, bad
	}
	return m, nil
}
