package query

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Parser holds the settings of the parse functions. The zero Parser is
// ready to use; the package-level functions use it.
type Parser struct {
	// Attrs lists the attribute names that may appear in filters, sort
	// orders and field lists. Names are matched without regard to case and
	// come out spelled as here; any other attribute is an "unknown field"
	// error that lists these names. With nil Attrs every name is accepted
	// as typed, and a misspelt one matches nothing, because the Record
	// reports it missing.
	Attrs []string

	// Location is the time zone of date literals that carry no offset,
	// such as "2026-12-01". Nil means UTC.
	Location *time.Location
}

// SyntaxError is the error of the parse functions.
type SyntaxError struct {
	What string // what was being parsed: "filter", "sort" or "field"
	Pos  int    // 1-based column, in characters, where the problem is
	Msg  string // the message, which says Pos in words where it helps
}

func (e *SyntaxError) Error() string { return e.What + ": " + e.Msg }

// ParseField parses one field with the zero Parser. See Parser.ParseField.
func ParseField(s string) (Field, error) { return Parser{}.ParseField(s) }

// ParseFields parses a comma-separated field list with the zero Parser.
func ParseFields(s string) ([]Field, error) { return Parser{}.ParseFields(s) }

// ParseFilter parses a filter with the zero Parser. See Parser.ParseFilter.
func ParseFilter(s string) (*Filter, error) { return Parser{}.ParseFilter(s) }

// ParseOrder parses a sort order with the zero Parser. See Parser.ParseOrder.
func ParseOrder(s string) ([]Order, error) { return Parser{}.ParseOrder(s) }

// ParseField parses s, which must hold exactly one field (surrounding
// spaces aside), as written in filters.
func (p Parser) ParseField(s string) (Field, error) {
	ps := &parser{Parser: p, what: "field", s: s}
	ps.skip()
	start := ps.i
	f, err := ps.field()
	if err != nil {
		return Field{}, err
	}
	ps.skip()
	if !ps.eof() {
		return Field{}, ps.errAt(ps.i, "unexpected %s after %q", ps.found(ps.i), ps.text(start))
	}
	return f, nil
}

// ParseFields parses a comma-separated list of fields, such as the
// columns to show. The empty string gives no fields.
func (p Parser) ParseFields(s string) ([]Field, error) {
	ps := &parser{Parser: p, what: "field", s: s}
	ps.skip()
	var out []Field
	for !ps.eof() {
		start := ps.i
		f, err := ps.field()
		if err != nil {
			return nil, err
		}
		out = append(out, f)
		if err := ps.comma(start); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ParseOrder parses a sort order: comma-separated fields, each optionally
// followed by ASC (the default) or DESC. The empty string gives no order.
func (p Parser) ParseOrder(s string) ([]Order, error) {
	ps := &parser{Parser: p, what: "sort", s: s}
	ps.skip()
	var out []Order
	for !ps.eof() {
		start := ps.i
		f, err := ps.field()
		if err != nil {
			return nil, err
		}
		o := Order{Field: f}
		ftext := s[start:ps.i]
		ps.skip()
		if !ps.eof() && s[ps.i] != ',' {
			w, end := ps.word(ps.i)
			switch strings.ToLower(w) {
			case "asc":
			case "desc":
				o.Desc = true
			default:
				return nil, ps.errAt(ps.i, "expected ASC, DESC or \",\" after %q, found %s", ftext, ps.found(ps.i))
			}
			ps.i = end
		}
		out = append(out, o)
		if err := ps.comma(start); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ParseFilter parses a filter in MLflow's search syntax; see the package
// documentation. The empty string (or only spaces) gives a Filter that
// matches every run.
func (p Parser) ParseFilter(s string) (*Filter, error) {
	ps := &parser{Parser: p, what: "filter", s: s}
	f := &Filter{}
	ps.skip()
	if ps.eof() {
		return f, nil
	}
	for {
		start := ps.i
		c, err := ps.clause()
		if err != nil {
			return nil, err
		}
		f.clauses = append(f.clauses, c)
		ctext := s[start:ps.i]
		ps.skip()
		if ps.eof() {
			return f, nil
		}
		w, end := ps.word(ps.i)
		switch strings.ToLower(w) {
		case "and":
			ps.i = end
			ps.skip()
			if ps.eof() {
				return nil, ps.errAt(ps.i, "expected a clause after AND, found end of input")
			}
		case "or":
			return nil, ps.errAt(ps.i, "OR is not supported; run two searches")
		default:
			return nil, ps.errAt(ps.i, "expected AND after %q, found %s", ctext, ps.found(ps.i))
		}
	}
}

type parser struct {
	Parser
	what string
	s    string
	i    int
}

func (p *parser) eof() bool { return p.i >= len(p.s) }

func (p *parser) skip() {
	for p.i < len(p.s) && isSpace(p.s[p.i]) {
		p.i++
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (p *parser) col(i int) int { return utf8.RuneCountInString(p.s[:i]) + 1 }

func (p *parser) errAt(i int, format string, args ...any) error {
	c := p.col(i)
	return &SyntaxError{What: p.what, Pos: c, Msg: fmt.Sprintf("at %d: ", c) + fmt.Sprintf(format, args...)}
}

// found describes the input at i for an error message: the word, quoted
// string or run of other characters there, or the end of input.
func (p *parser) found(i int) string {
	s := p.s
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i >= len(s) {
		return "end of input"
	}
	j := i
	r, n := utf8.DecodeRuneInString(s[i:])
	switch {
	case isKeyRune(r):
		j = p.scan(i, true)
	case r == '\'' || r == '"' || r == '`':
		j = i + 1
		for j < len(s) && s[j] != s[i] {
			j++
		}
		j = min(j+1, len(s))
	default:
		j += n
		for j < len(s) && !isSpace(s[j]) {
			r, n := utf8.DecodeRuneInString(s[j:])
			if isKeyRune(r) || r == '\'' || r == '"' || r == '`' {
				break
			}
			j += n
		}
	}
	tok := s[i:j]
	if utf8.RuneCountInString(tok) > 24 {
		k := 0
		for n := 0; n < 24; n++ {
			_, size := utf8.DecodeRuneInString(tok[k:])
			k += size
		}
		tok = tok[:k] + "…"
	}
	return strconv.Quote(tok)
}

// scan returns the end of the run of key characters at i; without dots,
// the run stops at the first dot.
func (p *parser) scan(i int, dots bool) int {
	for i < len(p.s) {
		r, n := utf8.DecodeRuneInString(p.s[i:])
		if !isKeyRune(r) || r == '.' && !dots {
			break
		}
		i += n
	}
	return i
}

// word returns the run of key characters at i and its end.
func (p *parser) word(i int) (string, int) {
	end := p.scan(i, true)
	return p.s[i:end], end
}

// text returns the input from start to p.i, without trailing spaces.
func (p *parser) text(start int) string {
	return strings.TrimRight(p.s[start:p.i], " \t\n\r\v\f")
}

// comma ends an element of a comma-separated list that started at start.
func (p *parser) comma(start int) error {
	p.skip()
	if p.eof() {
		return nil
	}
	if p.s[p.i] != ',' {
		return p.errAt(p.i, "expected \",\" after %q, found %s", p.text(start), p.found(p.i))
	}
	p.i++
	p.skip()
	if p.eof() {
		return p.errAt(p.i, "expected a field after \",\", found end of input")
	}
	return nil
}

// quoted reads the string between the quote character at p.i and its
// match. A backslash takes the next byte literally; a doubled quote
// character stands for one.
func (p *parser) quoted(what string) (string, error) {
	s := p.s
	q := s[p.i]
	start := p.i
	var b []byte
	i := p.i + 1
	for i < len(s) {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			b = append(b, s[i+1])
			i += 2
		case c == '\\':
			i++ // a backslash ending the input leaves the string open
		case c == q && i+1 < len(s) && s[i+1] == q:
			b = append(b, q)
			i += 2
		case c == q:
			p.i = i + 1
			return string(b), nil
		default:
			b = append(b, c)
			i++
		}
	}
	c := p.col(start)
	return "", &SyntaxError{What: p.what, Pos: c, Msg: fmt.Sprintf("unterminated %s starting at %d", what, c)}
}

func (p *parser) unknownField(start, end int) error {
	use := "an attribute"
	if p.Attrs != nil {
		use = "one of the attributes " + strings.Join(p.Attrs, ", ")
	}
	return &SyntaxError{What: p.what, Pos: p.col(start),
		Msg: fmt.Sprintf("unknown field %q (use metrics.<key>, params.<key>, tags.<key> or %s)", p.s[start:end], use)}
}

// field reads a field at p.i.
func (p *parser) field() (Field, error) {
	s := p.s
	start := p.i
	r, _ := utf8.DecodeRuneInString(s[min(p.i, len(s)):])
	if p.eof() || !(r == '_' || unicode.IsLetter(r)) {
		hint := ""
		if !p.eof() && s[p.i] == '(' {
			hint = " (parentheses are only for IN lists; clauses are joined by AND)"
		}
		return Field{}, p.errAt(p.i, "expected a field, found %s%s", p.found(p.i), hint)
	}
	head := p.scan(p.i, false)
	name := s[p.i:head]
	lower := strings.ToLower(name)
	kind, isPrefix := prefixes[lower]
	if head < len(s) && s[head] == '.' {
		if !isPrefix {
			return Field{}, p.unknownField(start, p.scan(head, true))
		}
		p.i = head + 1
		var key string
		if !p.eof() && (s[p.i] == '`' || s[p.i] == '"') {
			k, err := p.quoted("quoted key")
			if err != nil {
				return Field{}, err
			}
			if k == "" {
				return Field{}, p.errAt(start, "empty key in %q", s[start:p.i])
			}
			key = k
		} else {
			end := p.scan(p.i, true)
			if end == p.i {
				return Field{}, p.errAt(p.i, "expected a key after %q, found %s", s[start:p.i], p.found(p.i))
			}
			key = s[p.i:end]
			p.i = end
		}
		if kind == Attr {
			return p.attr(key, start)
		}
		return Field{Kind: kind, Key: key}, nil
	}
	if isPrefix {
		return Field{}, p.errAt(start, "%q needs a key: %s.<key>", name, name)
	}
	if reserved[lower] {
		return Field{}, p.errAt(start, "expected a field, found %s", p.found(start))
	}
	p.i = head
	return p.attr(name, start)
}

func (p *parser) attr(name string, start int) (Field, error) {
	if p.Attrs == nil {
		return Field{Kind: Attr, Key: name}, nil
	}
	for _, a := range p.Attrs {
		if strings.EqualFold(a, name) {
			return Field{Kind: Attr, Key: a}, nil
		}
	}
	return Field{}, p.unknownField(start, p.i)
}

// clause reads field op value at p.i.
func (p *parser) clause() (clause, error) {
	s := p.s
	start := p.i
	f, err := p.field()
	if err != nil {
		return clause{}, err
	}
	ftext := s[start:p.i]
	p.skip()
	opPos := p.i
	o, err := p.op(ftext)
	if err != nil {
		return clause{}, err
	}
	c := clause{field: f, op: o}
	head := ftext + " " + opText[o]
	switch o {
	case opNull, opNotNull:
		return c, nil
	case opLike, opNotLike, opILike, opNotILike:
		if f.Kind == Metric {
			return clause{}, p.errAt(opPos, "%s: %s compares strings, and metrics are numbers", ftext, opText[o])
		}
		p.skip()
		if p.eof() || s[p.i] != '\'' && s[p.i] != '"' {
			return clause{}, p.errAt(p.i, "expected a quoted pattern after %q, found %s", head, p.found(p.i))
		}
		l, err := p.value(f, ftext, head)
		if err != nil {
			return clause{}, err
		}
		c.lits = []literal{l}
		c.like = compileLike(l.text, o == opILike || o == opNotILike)
		return c, nil
	case opIn, opNotIn:
		p.skip()
		if p.eof() || s[p.i] != '(' {
			return clause{}, p.errAt(p.i, "expected \"(\" after %q, found %s", head, p.found(p.i))
		}
		p.i++
		p.skip()
		if !p.eof() && s[p.i] == ')' {
			return clause{}, p.errAt(p.i, "empty list after %q", head)
		}
		for {
			p.skip()
			l, err := p.value(f, ftext, head)
			if err != nil {
				return clause{}, err
			}
			c.lits = append(c.lits, l)
			p.skip()
			if !p.eof() && s[p.i] == ',' {
				p.i++
				continue
			}
			if !p.eof() && s[p.i] == ')' {
				p.i++
				return c, nil
			}
			return clause{}, p.errAt(p.i, "expected \",\" or \")\" in the list after %q, found %s", head, p.found(p.i))
		}
	}
	p.skip()
	l, err := p.value(f, ftext, head)
	if err != nil {
		return clause{}, err
	}
	c.lits = []literal{l}
	return c, nil
}

// op reads an operator at p.i.
func (p *parser) op(ftext string) (op, error) {
	s := p.s
	i := p.i
	bad := func() (op, error) {
		return 0, p.errAt(i, "expected an operator after %q, found %s", ftext, p.found(i))
	}
	if p.eof() {
		return bad()
	}
	next := byte(0)
	if i+1 < len(s) {
		next = s[i+1]
	}
	switch s[i] {
	case '=':
		p.i++
		if next == '=' {
			p.i++
		}
		return opEq, nil
	case '!':
		if next != '=' {
			return bad()
		}
		p.i += 2
		return opNe, nil
	case '<':
		switch next {
		case '=':
			p.i += 2
			return opLe, nil
		case '>':
			p.i += 2
			return opNe, nil
		}
		p.i++
		return opLt, nil
	case '>':
		if next == '=' {
			p.i += 2
			return opGe, nil
		}
		p.i++
		return opGt, nil
	}
	w, end := p.word(i)
	switch strings.ToLower(w) {
	case "like":
		p.i = end
		return opLike, nil
	case "ilike":
		p.i = end
		return opILike, nil
	case "in":
		p.i = end
		return opIn, nil
	case "not":
		p.i = end
		p.skip()
		j := p.i
		w, end := p.word(j)
		switch strings.ToLower(w) {
		case "like":
			p.i = end
			return opNotLike, nil
		case "ilike":
			p.i = end
			return opNotILike, nil
		case "in":
			p.i = end
			return opNotIn, nil
		}
		return 0, p.errAt(j, "expected LIKE, ILIKE or IN after NOT, found %s", p.found(j))
	case "is":
		p.i = end
		p.skip()
		j := p.i
		w, end := p.word(j)
		switch strings.ToLower(w) {
		case "null":
			p.i = end
			return opNull, nil
		case "not":
			p.i = end
			p.skip()
			k := p.i
			w, end := p.word(k)
			if strings.EqualFold(w, "null") {
				p.i = end
				return opNotNull, nil
			}
			return 0, p.errAt(k, "expected NULL after IS NOT, found %s", p.found(k))
		}
		return 0, p.errAt(j, "expected NULL or NOT NULL after IS, found %s", p.found(j))
	}
	return bad()
}

// value reads a string or number literal at p.i; head is the field and
// operator before it, for messages.
func (p *parser) value(f Field, ftext, head string) (literal, error) {
	s := p.s
	start := p.i
	if p.eof() {
		return literal{}, p.errAt(start, "expected a value after %q, found end of input", head)
	}
	var l literal
	switch c := s[start]; {
	case c == '\'' || c == '"':
		text, err := p.quoted("string")
		if err != nil {
			return literal{}, err
		}
		l.text = text
		l.num, l.numOK = parseNum(text)
		if f.Kind == Attr {
			l.date, l.hasDate = p.parseDate(text)
		}
	case isDigit(c) || c == '.' || c == '+' || c == '-':
		j := start
		if c == '+' || c == '-' {
			j++
		}
		for j < len(s) && (isDigit(s[j]) || s[j] == '.') {
			j++
		}
		if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
			k := j + 1
			if k < len(s) && (s[k] == '+' || s[k] == '-') {
				k++
			}
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			j = k
		}
		if r, _ := utf8.DecodeRuneInString(s[j:]); j < len(s) && isKeyRune(r) {
			j = p.scan(j, true)
		}
		text := s[start:j]
		x, err := strconv.ParseFloat(text, 64)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				return literal{}, p.errAt(start, "number %q is out of range", text)
			}
			return literal{}, p.errAt(start, "malformed number %q", text)
		}
		p.i = j
		l = literal{text: text, num: x, isNum: true, numOK: true}
	default:
		hint := ""
		if r, _ := utf8.DecodeRuneInString(s[start:]); isKeyRune(r) {
			hint = " (strings need quotes: 'text')"
		}
		return literal{}, p.errAt(start, "expected a value after %q, found %s%s", head, p.found(start), hint)
	}
	if f.Kind == Metric && !l.isNum {
		return literal{}, p.errAt(start, "%s: compare with a number, found %s", ftext, s[start:p.i])
	}
	return l, nil
}

// parseNum reports whether s is a number to strconv.ParseFloat; that
// includes "NaN", "Inf" and hexadecimal floats.
func parseNum(s string) (float64, bool) {
	x, err := strconv.ParseFloat(s, 64)
	return x, err == nil
}

var dateLayouts = []string{
	time.RFC3339,
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	"2006-01-02",
}

// parseDate converts a date literal to unix milliseconds.
func (p *parser) parseDate(s string) (float64, bool) {
	if len(s) < 10 || !isDigit(s[0]) {
		return 0, false
	}
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	for _, layout := range dateLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return float64(t.Unix())*1000 + float64(t.Nanosecond())/1e6, true
		}
	}
	return 0, false
}
