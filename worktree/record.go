package worktree

import (
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
	Type   object.EntryType
	Perm   uint32
	MTime  int64
	Size   int64 // clean files; local files take theirs from the data file
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
	return r, nil
}

// meta is the tree's own record: its base version and next inode number.
type meta struct {
	Base cas.ID // version the tree started from or was last snapshotted as
	Next uint64
}

func (m *meta) encode() []byte {
	b := append([]byte{recordVersion}, m.Base[:]...)
	return binary.AppendUvarint(b, m.Next)
}

func decodeMeta(b []byte) (*meta, error) {
	if len(b) < 1+cas.IDSize || b[0] != recordVersion {
		return nil, fmt.Errorf("%w: meta", ErrMalformed)
	}
	m := &meta{Base: cas.ID(b[1 : 1+cas.IDSize])}
	next, n := binary.Uvarint(b[1+cas.IDSize:])
	if n <= 0 || 1+cas.IDSize+n != len(b) || next < 2 {
		return nil, fmt.Errorf("%w: meta", ErrMalformed)
	}
	m.Next = next
	return m, nil
}
