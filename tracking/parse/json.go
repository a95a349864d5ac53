package parse

import (
	"fmt"
	"unicode/utf8"
)

// maxDepth bounds the nesting of JSON values.
const maxDepth = 64

// jscan is a small JSON scanner over one document. Besides standard JSON
// it accepts the bare tokens NaN, Infinity and -Infinity that Python's
// json module writes for non-finite floats.
type jscan struct {
	b   []byte
	i   int
	err string // the first syntax error
}

func (s *jscan) reset(b []byte) {
	s.b, s.i, s.err = b, 0, ""
}

// fail records a syntax error at the current position and returns false.
func (s *jscan) fail(what string) bool {
	if s.err != "" {
		return false
	}
	if s.i >= len(s.b) {
		s.err = "invalid JSON: unexpected end"
	} else if what == "" {
		s.err = fmt.Sprintf("invalid JSON at byte %d: unexpected %s", s.i+1, quoteByte(string(s.b[s.i:min(s.i+4, len(s.b))]), 0))
	} else {
		s.err = fmt.Sprintf("invalid JSON at byte %d: %s", s.i+1, what)
	}
	return false
}

func (s *jscan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte, or 0 at the end.
func (s *jscan) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// expect consumes c after optional white space.
func (s *jscan) expect(c byte) bool {
	s.ws()
	if s.peek() != c {
		return s.fail("")
	}
	s.i++
	return true
}

// word consumes the literal w.
func (s *jscan) word(w string) bool {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		return s.fail("")
	}
	s.i += len(w)
	return true
}

// str decodes the string at s.i (which is '"'), appending it to dst.
func (s *jscan) str(dst []byte) ([]byte, bool) {
	s.i++
	for {
		start := s.i
		for s.i < len(s.b) {
			c := s.b[s.i]
			if c == '"' || c == '\\' || c < 0x20 {
				break
			}
			s.i++
		}
		dst = append(dst, s.b[start:s.i]...)
		if s.i >= len(s.b) {
			return dst, s.fail("")
		}
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return dst, true
		case c < 0x20:
			return dst, s.fail("control character in string")
		}
		// A backslash.
		if s.i+1 >= len(s.b) {
			s.i++
			return dst, s.fail("")
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			dst = append(dst, e)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return dst, false
			}
			if 0xD800 <= r && r < 0xDC00 {
				// A high surrogate: combine with a following low one.
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					save := s.i
					s.i += 2
					r2, ok := s.hex4()
					if !ok {
						return dst, false
					}
					if 0xDC00 <= r2 && r2 < 0xE000 {
						r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
					} else {
						s.i = save
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			} else if 0xDC00 <= r && r < 0xE000 {
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
		default:
			s.i -= 2
			return dst, s.fail("bad escape in string")
		}
	}
}

func (s *jscan) hex4() (rune, bool) {
	if len(s.b)-s.i < 4 {
		s.i = len(s.b)
		return 0, s.fail("")
	}
	var r rune
	for k := 0; k < 4; k++ {
		c := s.b[s.i]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, s.fail("bad \\u escape")
		}
		r = r<<4 | rune(c)
		s.i++
	}
	return r, true
}

// num consumes a number (or NaN, Infinity, -Infinity) and returns its text.
func (s *jscan) num() ([]byte, bool) {
	start := s.i
	if s.peek() == 'N' {
		ok := s.word("NaN")
		return s.b[start:s.i], ok
	}
	if s.peek() == '-' {
		s.i++
	}
	if s.peek() == 'I' {
		ok := s.word("Infinity")
		return s.b[start:s.i], ok
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return nil, s.fail("")
	}
	if s.peek() == '.' {
		s.i++
		if !s.digits() {
			return nil, s.fail("")
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return nil, s.fail("")
		}
	}
	return s.b[start:s.i], true
}

func (s *jscan) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// skip consumes one value of any kind.
func (s *jscan) skip(depth int) bool {
	s.ws()
	switch c := s.peek(); {
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return s.fail("nested too deeply")
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		s.i++
		s.ws()
		if s.peek() == end {
			s.i++
			return true
		}
		for {
			if c == '{' {
				s.ws()
				if s.peek() != '"' {
					return s.fail("")
				}
				if !s.skipString() || !s.expect(':') {
					return false
				}
			}
			if !s.skip(depth + 1) {
				return false
			}
			s.ws()
			switch s.peek() {
			case ',':
				s.i++
			case end:
				s.i++
				return true
			default:
				return s.fail("")
			}
		}
	case c == '"':
		return s.skipString()
	case c == 't':
		return s.word("true")
	case c == 'f':
		return s.word("false")
	case c == 'n':
		return s.word("null")
	default:
		_, ok := s.num()
		return ok
	}
}

// skipString consumes a string without decoding it.
func (s *jscan) skipString() bool {
	s.i++
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c == '\\':
			if s.i+1 >= len(s.b) {
				s.i = len(s.b)
				return s.fail("")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				s.i += 2
				if _, ok := s.hex4(); !ok {
					return false
				}
			default:
				return s.fail("bad escape in string")
			}
		case c < 0x20:
			return s.fail("control character in string")
		default:
			s.i++
		}
	}
	return s.fail("")
}

// compact appends the JSON text v (already checked) without white space
// outside strings.
func compact(dst, v []byte) []byte {
	in, esc := false, false
	for _, c := range v {
		switch {
		case in:
			if esc {
				esc = false
			} else if c == '\\' {
				esc = true
			} else if c == '"' {
				in = false
			}
		case c == '"':
			in = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// shorten cuts JSON text for an error message.
func shorten(v []byte) string {
	if len(v) > maxQuote {
		return string(v[:maxQuote]) + "..."
	}
	return string(v)
}
