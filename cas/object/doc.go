// Package object defines the encodings of the structured objects in the
// store: a file (its ordered chunk list), a tree (one folder's sorted
// entries) and a version (a dataset snapshot). Chunks are raw bytes and need
// no encoding.
//
// # Format, version 1
//
// Every object starts with a 6-byte header: the magic "mlfs", one kind byte
// ('F' file, 'T' tree, 'V' version) and the format version (1). Integers are
// unsigned LEB128 varints (encoding/binary Uvarint) except times, which are
// zig-zag varints (binary.Varint) of nanoseconds since the Unix epoch.
// Strings are a uvarint length and that many bytes of valid UTF-8. Ids are
// 32 raw bytes.
//
//	file:    header, size, count, count × (chunk id, chunk length)
//	tree:    header, count, count × entry, entries in strictly ascending
//	         byte order of name
//	entry:   name, type (1 file, 2 dir, 3 symlink), perm (mode & 07777),
//	         mtime, then for a file: size, file id; for a dir: tree id;
//	         for a symlink: target
//	version: header, dataset, tree id, has-parent (0 or 1), [parent id],
//	         time, host, user, message, files, bytes
//
// The encoding is canonical: one value has exactly one encoding, so equal
// content gives equal ids. Decoders check every field and reject anything
// else — trailing bytes, unsorted or duplicate names, names with '/' or NUL,
// counts that cannot fit the input — by decoding and re-encoding and
// comparing, besides the field checks. A decoder never panics and never
// allocates more than its input justifies.
package object
