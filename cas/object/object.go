package object

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"unicode/utf8"

	"github.com/mlfs/mlfs/cas"
)

// FormatVersion is the version byte written in every header.
const FormatVersion = 1

// Kind tells which object an encoding holds.
type Kind byte

const (
	KindFile    Kind = 'F'
	KindTree    Kind = 'T'
	KindVersion Kind = 'V'
)

const magic = "mlfs"

// Limits of the format. The Check methods enforce the name, target and
// string limits for encoders and decoders alike; the decoders enforce the
// chunk and count limits.
const (
	MaxNameLen    = 255
	MaxTargetLen  = 4096
	MaxStringLen  = 64 << 10
	maxDatasetLen = 128
	MaxChunkLen   = 64 << 20
	maxEntryCount = 1 << 24
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed object")

// ChunkRef is one chunk of a file.
type ChunkRef struct {
	ID   cas.ID
	Size uint32
}

// File is the ordered list of a file's chunks.
type File struct {
	Size   int64
	Chunks []ChunkRef
}

// EntryType is the type of a tree entry.
type EntryType byte

const (
	TypeFile    EntryType = 1
	TypeDir     EntryType = 2
	TypeSymlink EntryType = 3
)

func (t EntryType) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	}
	return fmt.Sprintf("type(%d)", byte(t))
}

// Entry is one name in a tree.
type Entry struct {
	Name   string
	Type   EntryType
	Perm   uint32 // Unix permission bits with setuid, setgid, sticky (07777)
	MTime  int64  // nanoseconds since the Unix epoch
	Size   int64  // files only
	ID     cas.ID // file object for files, tree object for dirs
	Target string // symlinks only
}

// Tree is one folder: its entries sorted by name.
type Tree struct {
	Entries []Entry
}

// Version is one snapshot of a dataset.
type Version struct {
	Dataset string
	Tree    cas.ID
	Parent  cas.ID // zero for the first version
	Time    int64  // nanoseconds since the Unix epoch
	Host    string
	User    string
	Message string
	Files   int64 // regular files in the tree
	Bytes   int64 // their total size
}

func header(k Kind) []byte { return append([]byte(magic), byte(k), FormatVersion) }

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Encode returns the canonical encoding of f.
func (f *File) Encode() []byte {
	b := make([]byte, 0, 16+len(f.Chunks)*(cas.IDSize+3))
	b = append(b, header(KindFile)...)
	b = binary.AppendUvarint(b, uint64(f.Size))
	b = binary.AppendUvarint(b, uint64(len(f.Chunks)))
	for _, c := range f.Chunks {
		b = append(b, c.ID[:]...)
		b = binary.AppendUvarint(b, uint64(c.Size))
	}
	return b
}

// Encode returns the canonical encoding of t. Entries must be sorted.
func (t *Tree) Encode() []byte {
	b := append(make([]byte, 0, 64*len(t.Entries)+16), header(KindTree)...)
	b = binary.AppendUvarint(b, uint64(len(t.Entries)))
	for _, e := range t.Entries {
		b = appendString(b, e.Name)
		b = append(b, byte(e.Type))
		b = binary.AppendUvarint(b, uint64(e.Perm))
		b = binary.AppendVarint(b, e.MTime)
		switch e.Type {
		case TypeFile:
			b = binary.AppendUvarint(b, uint64(e.Size))
			b = append(b, e.ID[:]...)
		case TypeDir:
			b = append(b, e.ID[:]...)
		case TypeSymlink:
			b = appendString(b, e.Target)
		}
	}
	return b
}

// Encode returns the canonical encoding of v.
func (v *Version) Encode() []byte {
	b := header(KindVersion)
	b = appendString(b, v.Dataset)
	b = append(b, v.Tree[:]...)
	if v.Parent.IsZero() {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = append(b, v.Parent[:]...)
	}
	b = binary.AppendVarint(b, v.Time)
	b = appendString(b, v.Host)
	b = appendString(b, v.User)
	b = appendString(b, v.Message)
	b = binary.AppendUvarint(b, uint64(v.Files))
	b = binary.AppendUvarint(b, uint64(v.Bytes))
	return b
}

const permMask = 0o7777

// UnixPerm converts the permission bits of m to Unix order (07777).
func UnixPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}

// FileMode returns the entry's permission bits as an fs.FileMode.
func (e *Entry) FileMode() fs.FileMode {
	m := fs.FileMode(e.Perm & 0o777)
	if e.Perm&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if e.Perm&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if e.Perm&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// MaxSize is the largest size or count an object records (the decoders'
// range for every unsigned integer field that becomes an int64).
const MaxSize = 1 << 62

// The rules below are the single source of what a tree may hold: Tree.Check
// applies them before anything is encoded, and DecodeTree applies the same
// Tree.Check to what it decoded, having enforced only the layout itself. So
// every tree that passes Check encodes to bytes that DecodeTree accepts, and
// a writer can never store a tree that readers will reject.

// CheckName reports whether name may appear in a tree.
func CheckName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("name %q is not allowed", name)
	case len(name) > MaxNameLen:
		return fmt.Errorf("name %.40q… is longer than %d bytes", name, MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("name %q is not valid UTF-8", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("name %q contains '/' or NUL", name)
	}
	return nil
}

// CheckTarget reports whether target may be a symlink's target in a tree.
func CheckTarget(target string) error {
	switch {
	case target == "":
		return errors.New("symlink target is empty")
	case len(target) > MaxTargetLen:
		return fmt.Errorf("symlink target %.40q… is longer than %d bytes", target, MaxTargetLen)
	case !utf8.ValidString(target):
		return fmt.Errorf("symlink target %q is not valid UTF-8", target)
	case strings.ContainsRune(target, 0):
		return fmt.Errorf("symlink target %q contains NUL", target)
	}
	return nil
}

// Check validates one entry: its name and the fields its type encodes.
// Fields a type does not encode (a file's Target, a symlink's ID) are
// ignored, as the encoding drops them.
func (e *Entry) Check() error {
	if err := CheckName(e.Name); err != nil {
		return err
	}
	if e.Perm&^permMask != 0 {
		return fmt.Errorf("entry %q: mode %o has bits beyond permissions", e.Name, e.Perm)
	}
	switch e.Type {
	case TypeFile:
		if e.Size < 0 || e.Size > MaxSize {
			return fmt.Errorf("entry %q: size %d out of range", e.Name, e.Size)
		}
	case TypeDir:
	case TypeSymlink:
		if err := CheckTarget(e.Target); err != nil {
			return fmt.Errorf("entry %q: %w", e.Name, err)
		}
	default:
		return fmt.Errorf("entry %q: unknown type %d", e.Name, e.Type)
	}
	return nil
}

// Check validates t as the decoder does: every entry, and their order.
func (t *Tree) Check() error {
	for i := range t.Entries {
		e := &t.Entries[i]
		if err := e.Check(); err != nil {
			return err
		}
		if i > 0 && t.Entries[i-1].Name >= e.Name {
			return fmt.Errorf("entry %q is not after %q", e.Name, t.Entries[i-1].Name)
		}
	}
	return nil
}

// Check validates v as the decoder does: strings within their limits and
// valid UTF-8, counts within range.
func (v *Version) Check() error {
	for _, f := range []struct {
		what string
		s    string
		max  int
	}{{"dataset", v.Dataset, maxDatasetLen}, {"host", v.Host, MaxStringLen}, {"user", v.User, MaxStringLen}, {"message", v.Message, MaxStringLen}} {
		if len(f.s) > f.max {
			return fmt.Errorf("version %s is longer than %d bytes", f.what, f.max)
		}
		if !utf8.ValidString(f.s) {
			return fmt.Errorf("version %s %q is not valid UTF-8", f.what, f.s)
		}
	}
	if v.Files < 0 || v.Files > MaxSize || v.Bytes < 0 || v.Bytes > MaxSize {
		return fmt.Errorf("version counts %d files, %d bytes: out of range", v.Files, v.Bytes)
	}
	return nil
}

// decoder reads fields and remembers the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int63(what string) int64 {
	v := d.uvarint(what)
	if v > MaxSize {
		d.fail("%s %d out of range", what, v)
	}
	return int64(v)
}

func (d *decoder) bytes(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail("%s truncated", what)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1(what string) byte {
	if b := d.bytes(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) id(what string) (id cas.ID) {
	copy(id[:], d.bytes(cas.IDSize, what))
	return id
}

// string reads a length-prefixed string. It checks only that the input
// holds it; what a valid string is, the Check methods say.
func (d *decoder) string(what string) string {
	n := d.uvarint(what + " length")
	if n > uint64(len(d.b)) {
		d.fail("%s truncated", what)
		return ""
	}
	return string(d.bytes(int(n), what))
}

func (d *decoder) header(k Kind) {
	h := d.bytes(len(magic)+2, "header")
	if d.err != nil {
		return
	}
	if string(h[:len(magic)]) != magic {
		d.fail("no mlfs header")
		return
	}
	if Kind(h[len(magic)]) != k {
		d.fail("kind %q, want %q", h[len(magic)], byte(k))
		return
	}
	if h[len(magic)+1] != FormatVersion {
		d.fail("format version %d is not supported (want %d); upgrade mlfs", h[len(magic)+1], FormatVersion)
	}
}

// count reads an element count and checks that the rest of the input can
// hold that many elements of at least min bytes, before anything is
// allocated for them.
func (d *decoder) count(min int, what string) int {
	n := d.uvarint(what)
	if d.err == nil && (n > maxEntryCount || n*uint64(min) > uint64(len(d.b))) {
		d.fail("%s %d does not fit the object", what, n)
		return 0
	}
	return int(n)
}

// finish checks for trailing bytes and that re-encoding gives the input.
func (d *decoder) finish(input, reencoded []byte) error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	if !bytes.Equal(input, reencoded) {
		return fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	return nil
}

// DecodeFile decodes a file object.
func DecodeFile(b []byte) (*File, error) {
	d := &decoder{b: b}
	d.header(KindFile)
	f := &File{Size: d.int63("size")}
	n := d.count(cas.IDSize+1, "chunk count")
	if d.err == nil {
		f.Chunks = make([]ChunkRef, 0, n)
	}
	var sum int64
	for i := 0; i < n && d.err == nil; i++ {
		c := ChunkRef{ID: d.id("chunk id")}
		size := d.uvarint("chunk size")
		if d.err == nil && (size == 0 || size > MaxChunkLen) {
			d.fail("chunk %d has size %d", i, size)
		}
		c.Size = uint32(size)
		sum += int64(size)
		f.Chunks = append(f.Chunks, c)
	}
	if d.err == nil && sum != f.Size {
		d.fail("chunks add up to %d bytes, file says %d", sum, f.Size)
	}
	if d.err != nil {
		return nil, d.err
	}
	return f, d.finish(b, f.Encode())
}

// DecodeTree decodes a tree object.
func DecodeTree(b []byte) (*Tree, error) {
	d := &decoder{b: b}
	d.header(KindTree)
	n := d.count(5, "entry count")
	t := &Tree{}
	if d.err == nil {
		t.Entries = make([]Entry, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		e := Entry{Name: d.string("name")}
		e.Type = EntryType(d.byte1("type"))
		perm := d.uvarint("perm")
		if perm > uint64(permMask) {
			d.fail("entry %q: mode %o", e.Name, perm)
		}
		e.Perm = uint32(perm)
		e.MTime = d.varint("mtime")
		switch e.Type {
		case TypeFile:
			e.Size = d.int63("size")
			e.ID = d.id("file id")
		case TypeDir:
			e.ID = d.id("tree id")
		case TypeSymlink:
			e.Target = d.string("symlink target")
		default:
			d.fail("entry %q: unknown type %d", e.Name, e.Type)
		}
		t.Entries = append(t.Entries, e)
	}
	if d.err != nil {
		return nil, d.err
	}
	if err := t.Check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return t, d.finish(b, t.Encode())
}

// DecodeVersion decodes a version object.
func DecodeVersion(b []byte) (*Version, error) {
	d := &decoder{b: b}
	d.header(KindVersion)
	v := &Version{Dataset: d.string("dataset")}
	v.Tree = d.id("tree id")
	switch d.byte1("parent flag") {
	case 0:
	case 1:
		v.Parent = d.id("parent id")
		if d.err == nil && v.Parent.IsZero() {
			d.fail("zero parent id")
		}
	default:
		d.fail("bad parent flag")
	}
	v.Time = d.varint("time")
	v.Host = d.string("host")
	v.User = d.string("user")
	v.Message = d.string("message")
	v.Files = d.int63("file count")
	v.Bytes = d.int63("byte count")
	if d.err != nil {
		return nil, d.err
	}
	if err := v.Check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return v, d.finish(b, v.Encode())
}

// KindOf returns the kind of an encoded object, or false if b does not
// start with an object header (it is then a chunk or not an object).
func KindOf(b []byte) (Kind, bool) {
	if len(b) < len(magic)+2 || string(b[:len(magic)]) != magic {
		return 0, false
	}
	switch k := Kind(b[len(magic)]); k {
	case KindFile, KindTree, KindVersion:
		return k, true
	}
	return 0, false
}
