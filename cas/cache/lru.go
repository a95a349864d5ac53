package cache

import "github.com/mlfs/mlfs/cas"

// none marks the absence of a slot in the list links.
const none = -1

// slot is one cached object in the LRU list.
type slot struct {
	id   cas.ID
	size int64
	// touched is when the file's mtime was last set, in Unix nanoseconds.
	touched int64
	// gen tells apart two lives of one slot, so a stale reader cannot
	// drop an entry that was evicted and inserted again meanwhile.
	gen        uint64
	prev, next int32
}

// lru is the in-memory index: id → slot, slots in a doubly linked list from
// most (head) to least (tail) recently used. The links are indices into one
// slice, not pointers, so a cache of a million chunks is one allocation the
// garbage collector never has to scan (about 100 bytes an entry with the
// map).
type lru struct {
	byID       map[cas.ID]int32
	slots      []slot
	free       []int32
	head, tail int32
	bytes      int64
	gen        uint64
}

func newLRU() *lru {
	return &lru{byID: map[cas.ID]int32{}, head: none, tail: none}
}

func (l *lru) len() int { return len(l.byID) }

func (l *lru) lookup(id cas.ID) (int32, bool) {
	i, ok := l.byID[id]
	return i, ok
}

// add puts a new entry at the head; id must not be present.
func (l *lru) add(id cas.ID, size, touched int64) int32 {
	var i int32
	if n := len(l.free); n > 0 {
		i, l.free = l.free[n-1], l.free[:n-1]
	} else {
		i = int32(len(l.slots))
		l.slots = append(l.slots, slot{})
	}
	l.gen++
	l.slots[i] = slot{id: id, size: size, touched: touched, gen: l.gen, prev: none, next: none}
	l.byID[id] = i
	l.bytes += size
	l.pushFront(i)
	return i
}

func (l *lru) remove(i int32) {
	l.unlink(i)
	s := &l.slots[i]
	delete(l.byID, s.id)
	l.bytes -= s.size
	*s = slot{prev: none, next: none}
	l.free = append(l.free, i)
}

func (l *lru) moveToFront(i int32) {
	if l.head == i {
		return
	}
	l.unlink(i)
	l.pushFront(i)
}

func (l *lru) pushFront(i int32) {
	s := &l.slots[i]
	s.prev, s.next = none, l.head
	if l.head != none {
		l.slots[l.head].prev = i
	}
	l.head = i
	if l.tail == none {
		l.tail = i
	}
}

func (l *lru) unlink(i int32) {
	s := &l.slots[i]
	if s.prev != none {
		l.slots[s.prev].next = s.next
	} else {
		l.head = s.next
	}
	if s.next != none {
		l.slots[s.next].prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.prev, s.next = none, none
}

func (l *lru) reset() { *l = *newLRU() }
