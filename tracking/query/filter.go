package query

import "strings"

type op uint8

const (
	opEq op = iota
	opNe
	opLt
	opLe
	opGt
	opGe
	opLike
	opNotLike
	opILike
	opNotILike
	opIn
	opNotIn
	opNull
	opNotNull
)

var opText = [...]string{
	opEq: "=", opNe: "!=", opLt: "<", opLe: "<=", opGt: ">", opGe: ">=",
	opLike: "LIKE", opNotLike: "NOT LIKE", opILike: "ILIKE", opNotILike: "NOT ILIKE",
	opIn: "IN", opNotIn: "NOT IN", opNull: "IS NULL", opNotNull: "IS NOT NULL",
}

// literal is a value written in a filter, converted once at parse time.
type literal struct {
	text    string  // the string, or the number as written
	num     float64 // the number, if numOK
	isNum   bool    // written as a number
	numOK   bool    // a number, or a string that strconv.ParseFloat accepts
	date    float64 // unix ms, if hasDate
	hasDate bool    // a string on an attribute that reads as a date
}

// number returns the literal as a number, for comparison with a stored
// number: a number literal, else a date, else a numeric string.
func (l *literal) number() (float64, bool) {
	if l.hasDate && !l.isNum {
		return l.date, true
	}
	return l.num, l.numOK
}

func (l *literal) String() string {
	if l.isNum {
		return l.text
	}
	return quote(l.text, '\'')
}

type clause struct {
	field Field
	op    op
	lits  []literal // one; several for IN; none for IS [NOT] NULL
	like  *likeMatcher
}

// Filter is a parsed filter: clauses that must all hold. A nil or zero
// Filter matches every run. A Filter is immutable, and safe for concurrent
// use.
type Filter struct {
	clauses []clause
}

// Match reports whether r satisfies every clause of f.
func (f *Filter) Match(r Record) bool {
	if f == nil {
		return true
	}
	for i := range f.clauses {
		if !f.clauses[i].match(r) {
			return false
		}
	}
	return true
}

// Fields returns the distinct fields that f refers to, in order of first
// appearance.
func (f *Filter) Fields() []Field {
	if f == nil {
		return nil
	}
	var out []Field
outer:
	for _, c := range f.clauses {
		for _, g := range out {
			if g == c.field {
				continue outer
			}
		}
		out = append(out, c.field)
	}
	return out
}

// String returns f in canonical form, which ParseFilter reads back to an
// equal Filter: canonical fields, upper-case keywords, strings in single
// quotes with ' and \ escaped by \, numbers as written, clauses joined by
// " AND ". A nil or zero Filter gives "".
func (f *Filter) String() string {
	if f == nil {
		return ""
	}
	var b strings.Builder
	for i, c := range f.clauses {
		if i > 0 {
			b.WriteString(" AND ")
		}
		b.WriteString(c.field.String())
		b.WriteByte(' ')
		b.WriteString(opText[c.op])
		switch c.op {
		case opNull, opNotNull:
		case opIn, opNotIn:
			b.WriteString(" (")
			for j := range c.lits {
				if j > 0 {
					b.WriteString(", ")
				}
				b.WriteString(c.lits[j].String())
			}
			b.WriteByte(')')
		default:
			b.WriteByte(' ')
			b.WriteString(c.lits[0].String())
		}
	}
	return b.String()
}

func (c *clause) match(r Record) bool {
	v, ok := r.Lookup(c.field)
	switch c.op {
	case opNull:
		return !ok
	case opNotNull:
		return ok
	}
	if !ok {
		return false
	}
	switch c.op {
	case opEq:
		return equal(v, &c.lits[0])
	case opNe:
		return !equal(v, &c.lits[0])
	case opLt, opLe, opGt, opGe:
		d, ok := compare(v, &c.lits[0])
		if !ok {
			return false
		}
		switch c.op {
		case opLt:
			return d < 0
		case opLe:
			return d <= 0
		case opGt:
			return d > 0
		}
		return d >= 0
	case opLike, opILike:
		return !v.IsNum && c.like.match(v.Str)
	case opNotLike, opNotILike:
		return v.IsNum || !c.like.match(v.Str)
	case opIn, opNotIn:
		in := false
		for i := range c.lits {
			if equal(v, &c.lits[i]) {
				in = true
				break
			}
		}
		return in == (c.op == opIn)
	}
	return false
}

// equal is the = of a stored value and a literal.
func equal(v Value, l *literal) bool {
	if v.IsNum {
		x, ok := l.number()
		return ok && v.Num == x
	}
	if l.isNum {
		if x, ok := parseNum(v.Str); ok {
			return x == l.num
		}
	}
	return v.Str == l.text
}

// compare orders a stored value against a literal; false means the two
// do not compare (NaN, or a stored number against a string that is
// neither a number nor a date).
func compare(v Value, l *literal) (int, bool) {
	if v.IsNum {
		x, ok := l.number()
		if !ok {
			return 0, false
		}
		return cmpNum(v.Num, x)
	}
	if l.numOK {
		if x, ok := parseNum(v.Str); ok {
			return cmpNum(x, l.num)
		}
	}
	return strings.Compare(v.Str, l.text), true
}

func cmpNum(a, b float64) (int, bool) {
	switch {
	case a < b:
		return -1, true
	case a > b:
		return 1, true
	case a == b:
		return 0, true
	}
	return 0, false // NaN
}
