package query

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kind is the namespace of a Field.
type Kind uint8

// The namespaces. The zero Kind is invalid.
const (
	Metric Kind = iota + 1 // metrics.<key>: numbers
	Param                  // params.<key>: strings
	Tag                    // tags.<key>: strings
	Attr                   // run attributes: numbers or strings
)

// String returns the canonical prefix of k: "metrics", "params", "tags" or
// "attributes".
func (k Kind) String() string {
	switch k {
	case Metric:
		return "metrics"
	case Param:
		return "params"
	case Tag:
		return "tags"
	case Attr:
		return "attributes"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Field names one value of a run: a metric, param or tag by its key, or an
// attribute by its name. Fields are comparable with ==.
type Field struct {
	Kind Kind
	Key  string
}

// String returns f in the canonical form that ParseField reads back:
// metrics.acc, params.`a b`, start_time. An attribute is written bare when
// its name is a plain identifier that is not a keyword, else as
// attributes.<name>; a key that holds characters other than letters, digits
// and _ - . / is quoted with backticks.
func (f Field) String() string {
	if f.Kind == Attr && isBareName(f.Key) {
		return f.Key
	}
	return f.Kind.String() + "." + quoteKey(f.Key)
}

// Value is the value of a field in one run.
type Value struct {
	Num   float64 // the value when IsNum
	Str   string  // the value when !IsNum
	IsNum bool
}

// NumValue returns the number x as a Value.
func NumValue(x float64) Value { return Value{Num: x, IsNum: true} }

// StrValue returns the string s as a Value.
func StrValue(s string) Value { return Value{Str: s} }

// Record is one run as the filter and the sort see it.
//
// Lookup returns the value of f and true, or false when the run does not
// have f. Metrics should be numbers (the caller picks which of a metric's
// values counts, usually the last), params and tags strings, attributes
// either (times as unix milliseconds if date literals are to work). Match
// calls Lookup once per clause, Sort once per record and sort key.
type Record interface {
	Lookup(f Field) (Value, bool)
}

// prefixes maps each field prefix, lower-cased, to its kind.
var prefixes = map[string]Kind{
	"metrics": Metric, "metric": Metric,
	"params": Param, "param": Param,
	"tags": Tag, "tag": Tag,
	"attributes": Attr, "attribute": Attr, "attr": Attr, "run": Attr,
}

// reserved words cannot be bare attribute names.
var reserved = map[string]bool{
	"and": true, "or": true, "not": true, "in": true, "is": true,
	"like": true, "ilike": true, "null": true, "asc": true, "desc": true,
}

// isKeyRune reports whether r may appear in an unquoted key.
func isKeyRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
			r == '_' || r == '-' || r == '.' || r == '/'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// isBareName reports whether an attribute name can be written without a
// prefix: it starts with a letter or _, has no dot and is not reserved.
func isBareName(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	if !(r == '_' || unicode.IsLetter(r)) {
		return false
	}
	for _, r := range s {
		if r == '.' || !isKeyRune(r) {
			return false
		}
	}
	l := strings.ToLower(s)
	_, isPrefix := prefixes[l]
	return !isPrefix && !reserved[l]
}

func quoteKey(k string) string {
	plain := k != ""
	for _, r := range k {
		if !isKeyRune(r) {
			plain = false
			break
		}
	}
	if plain && utf8.ValidString(k) {
		return k
	}
	return quote(k, '`')
}

// quote returns s between q characters, with q and \ escaped by \.
func quote(s string, q byte) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte(q)
	for i := 0; i < len(s); i++ {
		if s[i] == q || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte(q)
	return b.String()
}
