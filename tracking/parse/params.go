package parse

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Value limits in bytes (MLflow's).
const (
	MaxParamValue = 6000
	MaxTagValue   = 8000
)

// Value returns the value held by a params/<key> or tags/<key> file: its
// content without leading and trailing white space (so without the final
// newline or CRLF). The value must be valid UTF-8 and at most limit bytes
// (MaxParamValue or MaxTagValue).
func Value(data []byte, limit int) (string, error) {
	v := trimSpace(data)
	if !utf8.Valid(v) {
		return "", errors.New("value is not valid UTF-8")
	}
	if len(v) > limit {
		return "", fmt.Errorf("value is %d bytes; at most %d allowed", len(v), limit)
	}
	return string(v), nil
}

// trimSpace trims ASCII white space.
func trimSpace(b []byte) []byte {
	isSpace := func(c byte) bool {
		return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
	}
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// flat collects flattened params.
type flat struct {
	out    map[string]string
	merged map[string]bool // keys whose value came from a YAML merge key
	probs  []error
}

func newFlat() *flat {
	return &flat{out: map[string]string{}, merged: map[string]bool{}}
}

// set records one param. A value from a YAML merge key never replaces
// another; a key given twice otherwise keeps its last value.
func (f *flat) set(key, value string, merge bool) {
	if err := CheckKey(key); err != nil {
		f.probs = append(f.probs, err)
		return
	}
	if !utf8.ValidString(value) {
		f.probs = append(f.probs, fmt.Errorf("key %s: value is not valid UTF-8", quote(key)))
		return
	}
	if len(value) > MaxParamValue {
		f.probs = append(f.probs, fmt.Errorf("key %s: value longer than %d bytes", quote(key), MaxParamValue))
		return
	}
	if _, ok := f.out[key]; ok {
		if merge {
			return
		}
		if !f.merged[key] {
			f.probs = append(f.probs, fmt.Errorf("key %s: given twice; the last value is kept", quote(key)))
		}
		delete(f.merged, key)
	} else if merge {
		f.merged[key] = true
	}
	f.out[key] = value
}

// ParamsJSON reads params.json: an object whose nested keys flatten to
// "a.b.c". Strings are kept as they are, numbers as written, booleans as
// "true" or "false", null as "", arrays as compact JSON, and an empty
// nested object as "{}". Empty input gives no params. It returns the
// valid params, the problems with single keys (bad keys and values,
// skipped), and err when the whole file is unusable (then params is nil):
// not JSON, not an object, or nested deeper than 64 levels.
func ParamsJSON(data []byte) (params map[string]string, problems []error, err error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	s := jscan{b: data}
	s.ws()
	f := newFlat()
	if s.i == len(data) {
		return f.out, nil, nil
	}
	if s.peek() != '{' {
		return nil, nil, errors.New("not a JSON object")
	}
	var path []byte
	if !f.jsonObject(&s, &path, 0) {
		return nil, nil, errors.New(s.err)
	}
	s.ws()
	if s.i < len(data) {
		s.fail("data after the object")
		return nil, nil, errors.New(s.err)
	}
	return f.out, f.probs, nil
}

// jsonObject flattens the object at the scanner's position under *path.
func (f *flat) jsonObject(s *jscan, path *[]byte, depth int) bool {
	if depth >= maxDepth {
		return s.fail("nested too deeply")
	}
	s.i++
	s.ws()
	if s.peek() == '}' {
		s.i++
		if depth > 0 {
			f.set(string(*path), "{}", false)
		}
		return true
	}
	base := len(*path)
	var str []byte
	for {
		s.ws()
		if s.peek() != '"' {
			return s.fail("")
		}
		*path = (*path)[:base]
		if depth > 0 {
			*path = append(*path, '.')
		}
		var ok bool
		if *path, ok = s.str(*path); !ok || !s.expect(':') {
			return false
		}
		s.ws()
		start := s.i
		switch s.peek() {
		case '{':
			if !f.jsonObject(s, path, depth+1) {
				return false
			}
		case '"':
			if str, ok = s.str(str[:0]); !ok {
				return false
			}
			f.set(string(*path), string(str), false)
		case 't', 'f', 'n':
			if !s.skip(depth + 1) {
				return false
			}
			v := string(s.b[start:s.i])
			if v == "null" {
				v = ""
			}
			f.set(string(*path), v, false)
		case '[':
			if !s.skip(depth + 1) {
				return false
			}
			f.set(string(*path), string(compact(nil, s.b[start:s.i])), false)
		default:
			lit, ok := s.num()
			if !ok {
				return false
			}
			f.set(string(*path), string(lit), false)
		}
		*path = (*path)[:base]
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return s.fail("")
		}
	}
}

// ParamsYAML reads params.yaml (its first document) like ParamsJSON: a
// mapping whose nested keys flatten to "a.b.c". Scalars are kept as
// written, except booleans ("true", "false") and null (""); sequences
// become compact JSON. Merge keys ("<<") are followed; explicit keys win
// over merged ones. An empty document gives no params.
func ParamsYAML(data []byte) (params map[string]string, problems []error, err error) {
	defer func() {
		if r := recover(); r != nil {
			params, problems, err = nil, nil, fmt.Errorf("yaml: cannot parse: %v", r)
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, err
	}
	f := newFlat()
	w := yamlWalk{f: f, budget: 1000 + 10*len(data), active: map[*yaml.Node]bool{}}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return f.out, nil, nil
		}
		root = root.Content[0]
	}
	switch {
	case root.Kind == 0, root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null":
		return f.out, nil, nil
	case root.Kind != yaml.MappingNode:
		return nil, nil, errors.New("yaml: not a mapping")
	}
	w.mapping(root, "", 0, false)
	if w.err != nil {
		return nil, nil, w.err
	}
	return f.out, f.probs, nil
}

// yamlWalk flattens a YAML node tree. Aliases can make a small document
// expand exponentially, so the nodes visited are bounded by budget.
type yamlWalk struct {
	f      *flat
	budget int
	active map[*yaml.Node]bool // aliases being followed, to stop cycles
	stack  []*yaml.Node        // the same, in order
	err    error
}

// enter counts a visit to n and follows it if it is an alias. The caller
// calls leave(mark) when done with the node.
func (w *yamlWalk) enter(n *yaml.Node, depth int) (node *yaml.Node, mark int, ok bool) {
	mark = len(w.stack)
	if w.err != nil {
		return nil, mark, false
	}
	w.budget--
	switch {
	case w.budget < 0:
		w.err = errors.New("yaml: document expands too much (aliases)")
	case depth >= maxDepth:
		w.err = errors.New("yaml: nested too deeply")
	}
	for w.err == nil && n.Kind == yaml.AliasNode {
		if w.active[n] {
			w.err = errors.New("yaml: alias refers to itself")
			break
		}
		w.active[n] = true
		w.stack = append(w.stack, n)
		if n = n.Alias; n == nil {
			w.err = errors.New("yaml: unknown alias")
		}
	}
	return n, mark, w.err == nil
}

func (w *yamlWalk) leave(mark int) {
	for _, a := range w.stack[mark:] {
		delete(w.active, a)
	}
	w.stack = w.stack[:mark]
}

func (w *yamlWalk) mapping(n *yaml.Node, prefix string, depth int, merge bool) {
	if len(n.Content) == 0 && prefix != "" {
		w.f.set(strings.TrimSuffix(prefix, "."), "{}", merge)
		return
	}
	for i := 0; i+1 < len(n.Content) && w.err == nil; i += 2 {
		k, mark, ok := w.enter(n.Content[i], depth)
		w.leave(mark)
		if !ok {
			return
		}
		if k.Kind != yaml.ScalarNode {
			w.f.probs = append(w.f.probs, fmt.Errorf("a key in %s is not a scalar", mapName(prefix)))
			continue
		}
		if k.ShortTag() == "!!merge" {
			w.merge(n.Content[i+1], prefix, depth+1)
			continue
		}
		w.value(n.Content[i+1], prefix+k.Value, depth+1, merge)
	}
}

func mapName(prefix string) string {
	if prefix == "" {
		return "the top mapping"
	}
	return quote(strings.TrimSuffix(prefix, "."))
}

// merge flattens the mapping, or sequence of mappings, of a "<<" key.
func (w *yamlWalk) merge(v *yaml.Node, prefix string, depth int) {
	m, mark, ok := w.enter(v, depth)
	defer w.leave(mark)
	if !ok {
		return
	}
	switch m.Kind {
	case yaml.MappingNode:
		w.mapping(m, prefix, depth, true)
		return
	case yaml.SequenceNode:
		for _, e := range m.Content {
			em, mark, ok := w.enter(e, depth+1)
			if ok && em.Kind == yaml.MappingNode {
				w.mapping(em, prefix, depth+1, true)
			} else if ok {
				w.f.probs = append(w.f.probs, fmt.Errorf("merge key in %s: not a mapping", mapName(prefix)))
			}
			w.leave(mark)
		}
		return
	}
	w.f.probs = append(w.f.probs, fmt.Errorf("merge key in %s: not a mapping", mapName(prefix)))
}

func (w *yamlWalk) value(v *yaml.Node, key string, depth int, merge bool) {
	n, mark, ok := w.enter(v, depth)
	defer w.leave(mark)
	if !ok {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		w.mapping(n, key+".", depth, merge)
	case yaml.SequenceNode:
		if b := w.json(nil, n, depth); w.err == nil {
			w.f.set(key, string(b), merge)
		}
	default:
		w.f.set(key, scalarText(n), merge)
	}
}

// scalarText is a scalar param's value.
func scalarText(n *yaml.Node) string {
	switch n.ShortTag() {
	case "!!null":
		return ""
	case "!!bool":
		switch strings.ToLower(n.Value) {
		case "true":
			return "true"
		case "false":
			return "false"
		}
	}
	return n.Value
}

// json appends v as compact JSON. It stops early once the text is longer
// than any param value may be.
func (w *yamlWalk) json(dst []byte, v *yaml.Node, depth int) []byte {
	if len(dst) > MaxParamValue {
		return dst
	}
	n, mark, ok := w.enter(v, depth)
	defer w.leave(mark)
	if !ok {
		return dst
	}
	switch n.Kind {
	case yaml.SequenceNode:
		dst = append(dst, '[')
		for i, e := range n.Content {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = w.json(dst, e, depth+1)
		}
		return append(dst, ']')
	case yaml.MappingNode:
		dst = append(dst, '{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				dst = append(dst, ',')
			}
			k, mark, ok := w.enter(n.Content[i], depth+1)
			w.leave(mark)
			if !ok {
				return dst
			}
			dst = appendJSONString(dst, k.Value)
			dst = append(dst, ':')
			dst = w.json(dst, n.Content[i+1], depth+1)
		}
		return append(dst, '}')
	}
	return appendScalarJSON(dst, n)
}

// appendScalarJSON appends a YAML scalar as a JSON value.
func appendScalarJSON(dst []byte, n *yaml.Node) []byte {
	switch n.ShortTag() {
	case "!!null":
		return append(dst, "null"...)
	case "!!bool":
		if t := scalarText(n); t == "true" || t == "false" {
			return append(dst, t...)
		}
	case "!!int", "!!float":
		if isJSONNumber(n.Value) {
			return append(dst, n.Value...)
		}
		var v any
		if n.Decode(&v) == nil {
			switch x := v.(type) {
			case int:
				return strconv.AppendInt(dst, int64(x), 10)
			case int64:
				return strconv.AppendInt(dst, x, 10)
			case uint64:
				return strconv.AppendUint(dst, x, 10)
			case float64:
				if !math.IsNaN(x) && !math.IsInf(x, 0) {
					return strconv.AppendFloat(dst, x, 'g', -1, 64)
				}
			}
		}
	}
	return appendJSONString(dst, n.Value)
}

func isJSONNumber(v string) bool {
	s := jscan{b: []byte(v)}
	if v == "" || v[0] == 'N' || v[0] == 'I' || strings.HasPrefix(v, "-I") {
		return false
	}
	_, ok := s.num()
	return ok && s.i == len(v)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\r':
			dst = append(dst, '\\', 'r')
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xF])
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return append(dst, '"')
}
