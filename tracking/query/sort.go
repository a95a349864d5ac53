package query

import (
	"math"
	"slices"
	"strings"
)

// Order is one sort key.
type Order struct {
	Field Field
	Desc  bool
}

// String returns o as ParseOrder reads it: the canonical field, followed
// by " DESC" when descending.
func (o Order) String() string {
	if o.Desc {
		return o.Field.String() + " DESC"
	}
	return o.Field.String()
}

// Ranks of sort keys, in sort order for ascending keys; descending keys
// swap the first two.
const (
	rankNum uint8 = iota
	rankStr
	rankNaN
	rankMissing
	rankUnset // not looked up yet
)

// sortKey is a value prepared for comparison. Numbers are held as bits
// that order as unsigned integers, complemented for descending keys.
type sortKey struct {
	rank uint8
	bits uint64
	str  string
}

func makeKey(v Value, ok, desc bool) sortKey {
	switch {
	case !ok:
		return sortKey{rank: rankMissing}
	case v.IsNum:
	default:
		x, isNum := parseNum(v.Str)
		if !isNum {
			if desc {
				return sortKey{rank: rankNum, str: v.Str}
			}
			return sortKey{rank: rankStr, str: v.Str}
		}
		v.Num = x
	}
	if math.IsNaN(v.Num) {
		return sortKey{rank: rankNaN}
	}
	b := math.Float64bits(v.Num + 0) // +0 turns -0 into 0
	if b>>63 != 0 {
		b = ^b
	} else {
		b |= 1 << 63
	}
	if desc {
		return sortKey{rank: rankStr, bits: ^b}
	}
	return sortKey{rank: rankNum, bits: b}
}

// cmpKey compares two keys of the same order.
func cmpKey(a, b *sortKey, desc bool) int {
	switch {
	case a.rank != b.rank:
		return int(a.rank) - int(b.rank)
	case a.bits != b.bits:
		if a.bits < b.bits {
			return -1
		}
		return 1
	case a.str == b.str:
		return 0
	case desc:
		return strings.Compare(b.str, a.str)
	}
	return strings.Compare(a.str, b.str)
}

// Sort sorts rs by orders, the first order first, stably: records that
// tie on every key keep their order. Values compare as numbers when they
// are numbers or strings that strconv.ParseFloat accepts, else as strings
// byte by byte; in ascending order numbers come before strings, and in
// descending order after them. Records with NaN come next, and records
// without the field last, in both directions.
//
// Sort calls Lookup at most once per record and order: the first key of
// every record up front, the others when a tie needs them.
func Sort[R Record](rs []R, orders []Order) {
	n := len(rs)
	if n < 2 || len(orders) == 0 {
		return
	}
	if n > math.MaxInt32 {
		panic("query: Sort of more than 2^31-1 records")
	}
	// The first key sits in the entry, its string (if any) aside, to keep
	// entries small for the swaps.
	type entry struct {
		bits uint64
		rank uint8
		i    int32
	}
	first := orders[0]
	es := make([]entry, n)
	var strs []string
	for i, r := range rs {
		v, ok := r.Lookup(first.Field)
		k := makeKey(v, ok, first.Desc)
		es[i] = entry{k.bits, k.rank, int32(i)}
		if k.str != "" {
			if strs == nil {
				strs = make([]string, n)
			}
			strs[i] = k.str
		}
	}
	// more[j-1][i] is the key of record i for orders[j].
	var more [][]sortKey
	if len(orders) > 1 {
		more = make([][]sortKey, len(orders)-1)
		all := make([]sortKey, n*len(more))
		for j := range more {
			more[j] = all[j*n : (j+1)*n]
			for i := range more[j] {
				more[j][i].rank = rankUnset
			}
		}
	}
	key := func(j int, i int32) *sortKey {
		k := &more[j-1][i]
		if k.rank == rankUnset {
			v, ok := rs[i].Lookup(orders[j].Field)
			*k = makeKey(v, ok, orders[j].Desc)
		}
		return k
	}
	slices.SortFunc(es, func(a, b entry) int {
		switch {
		case a.rank != b.rank:
			return int(a.rank) - int(b.rank)
		case a.bits < b.bits:
			return -1
		case a.bits > b.bits:
			return 1
		}
		if strs != nil {
			if c := strings.Compare(strs[a.i], strs[b.i]); c != 0 {
				if first.Desc {
					return -c
				}
				return c
			}
		}
		for j := 1; j < len(orders); j++ {
			if c := cmpKey(key(j, a.i), key(j, b.i), orders[j].Desc); c != 0 {
				return c
			}
		}
		return int(a.i - b.i)
	})
	sorted := make([]R, n)
	for k, e := range es {
		sorted[k] = rs[e.i]
	}
	copy(rs, sorted)
}
