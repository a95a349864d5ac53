package cas

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

var (
	// ErrNotFound means the object or ref does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means CreateRef lost: the ref already exists.
	ErrExists = errors.New("already exists")
	// ErrCorrupt means an object's bytes do not hash to its id.
	ErrCorrupt = errors.New("corrupt object")
	// ErrRange means a GetRange offset lies beyond the end of the object.
	ErrRange = errors.New("range beyond end of object")
)

// Getter reads objects.
type Getter interface {
	// Get returns the whole object, verified against id: an error wrapping
	// ErrCorrupt if the stored bytes do not hash to id, ErrNotFound if there
	// is no such object. The caller owns the returned slice.
	Get(ctx context.Context, id ID) ([]byte, error)

	// GetRange returns up to length bytes of the object starting at off.
	// A negative length means to the end. The result is shorter than length
	// only at the end of the object; off equal to the size gives an empty
	// result and off beyond it an error wrapping ErrRange. The bytes are
	// not verified (a part cannot be); callers verify what they assemble.
	GetRange(ctx context.Context, id ID, off, length int64) ([]byte, error)

	// Stat returns the object's size in bytes, or ErrNotFound.
	Stat(ctx context.Context, id ID) (int64, error)
}

// Putter writes objects.
type Putter interface {
	// Put stores data under id, which must be Sum(data); backends do not
	// recompute it. Putting an id that exists is a no-op, also when several
	// callers put the same id at once. The object is readable by this Store
	// when Put returns, and durable no later than the next CreateRef or
	// Close returns. Put does not keep data after it returns.
	Put(ctx context.Context, id ID, data []byte) error
}

// Lister enumerates and removes objects; garbage collection and fsck use it.
type Lister interface {
	// List calls fn once for each object, in no particular order. An error
	// from fn stops the listing and is returned.
	List(ctx context.Context, fn func(id ID, size int64) error) error
	// Delete removes an object. Deleting an absent object is not an error.
	Delete(ctx context.Context, id ID) error
}

// Refs are names that point at objects, created only if absent.
type Refs interface {
	// CreateRef makes name point at id unless name exists, in which case it
	// returns an error wrapping ErrExists. Among concurrent creators of one
	// name exactly one succeeds. Every object Put before CreateRef was called
	// is durable before the ref becomes visible.
	CreateRef(ctx context.Context, name string, id ID) error
	// GetRef returns the id name points at, or ErrNotFound.
	GetRef(ctx context.Context, name string) (ID, error)
	// ListRefs calls fn for every ref whose name starts with prefix, in
	// ascending name order.
	ListRefs(ctx context.Context, prefix string, fn func(name string, id ID) error) error
	// DeleteRef removes a ref; removing an absent ref is not an error.
	DeleteRef(ctx context.Context, name string) error
}

// RefNamer is implemented by stores that can list the names of refs
// without reading each one: a bucket's listing carries names but not
// contents, so ListRefs costs a request per ref where ListRefNames costs
// one per thousand. Refs are create-only, so a caller that remembers the
// ids of names it has seen needs to read only the new names.
type RefNamer interface {
	// ListRefNames calls fn for every ref whose name starts with prefix,
	// in no particular order.
	ListRefNames(ctx context.Context, prefix string, fn func(name string) error) error
}

// ListRefNames lists ref names with s's ListRefNames if it has one, and
// through ListRefs otherwise.
func ListRefNames(ctx context.Context, s Refs, prefix string, fn func(name string) error) error {
	if n, ok := s.(RefNamer); ok {
		return n.ListRefNames(ctx, prefix, fn)
	}
	return s.ListRefs(ctx, prefix, func(name string, _ ID) error { return fn(name) })
}

// Store is a complete backend. Its methods are safe for concurrent use.
type Store interface {
	Getter
	Putter
	Lister
	Refs
	// Close flushes whatever the store buffers and releases it.
	Close() error
}

// ReadRefs calls fn for each of names, in ascending order, with the id that
// read gives for it, and skips names removed meanwhile (read reports
// ErrNotFound): ListRefs of the backends whose listings carry names but not
// ids. It sorts names in place.
func ReadRefs(ctx context.Context, names []string, read func(ctx context.Context, name string) (ID, error), fn func(name string, id ID) error) error {
	sort.Strings(names)
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		id, err := read(ctx, n)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		if err := fn(n, id); err != nil {
			return err
		}
	}
	return nil
}

// CheckRefName validates a ref name: one or more segments separated by "/",
// each starting with a letter or digit followed by letters, digits, '.',
// '_' or '-', at most 128 bytes each.
func CheckRefName(name string) error {
	if name == "" {
		return fmt.Errorf("ref name is empty")
	}
	for _, seg := range strings.Split(name, "/") {
		if err := checkSegment(seg); err != nil {
			return fmt.Errorf("ref name %q: %w", name, err)
		}
	}
	return nil
}

func checkSegment(seg string) error {
	if seg == "" || len(seg) > 128 {
		return fmt.Errorf("segment %q must be 1 to 128 bytes", seg)
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("segment %q must start with a letter or digit", seg)
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("segment %q holds %q; allowed are letters, digits, '.', '_' and '-'", seg, c)
		}
	}
	return nil
}

// ClampRange turns a GetRange request on an object of the given size into
// slice bounds, following GetRange's rules. Backends share it so they agree
// at the edges.
func ClampRange(id ID, size, off, length int64) (lo, hi int64, err error) {
	if off < 0 {
		return 0, 0, fmt.Errorf("object %s: negative offset %d", id, off)
	}
	if off > size {
		return 0, 0, fmt.Errorf("object %s: offset %d, size %d: %w", id, off, size, ErrRange)
	}
	hi = size
	if length >= 0 && off+length < size {
		hi = off + length
	}
	return off, hi, nil
}
