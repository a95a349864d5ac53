package query

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// likeMatcher is a LIKE or ILIKE pattern compiled once: % matches any run
// of characters, _ exactly one character (a rune; each byte of invalid
// UTF-8 counts as one). There is no escape character, as in MLflow, so a
// pattern cannot demand a literal % or _; _ matches them as any character.
type likeMatcher struct {
	kind likeKind
	lit  string   // likeExact .. likeContains: the literal part
	segs []string // likeBytes: the parts between %, at least two
	runs [][]rune // likeRunes: the parts between %; anyRune for _
	fold bool     // ILIKE: runs hold folded runes
}

type likeKind uint8

const (
	likeExact    likeKind = iota // no %
	likePrefix                   // lit%
	likeSuffix                   // %lit
	likeContains                 // %lit%
	likeBytes                    // several % and no _, case-sensitive
	likeRunes                    // everything else, rune by rune
)

const anyRune = -1

func compileLike(pat string, fold bool) *likeMatcher {
	// Byte-wise matching agrees with rune-wise matching when the pattern
	// is valid UTF-8 without U+FFFD (which invalid bytes in the text
	// decode to).
	if !fold && !strings.ContainsRune(pat, '_') && utf8.ValidString(pat) &&
		!strings.ContainsRune(pat, utf8.RuneError) {
		segs := strings.Split(pat, "%")
		n := len(segs)
		switch {
		case n == 1:
			return &likeMatcher{kind: likeExact, lit: pat}
		case n == 2 && segs[1] == "":
			return &likeMatcher{kind: likePrefix, lit: segs[0]}
		case n == 2 && segs[0] == "":
			return &likeMatcher{kind: likeSuffix, lit: segs[1]}
		case n == 3 && segs[0] == "" && segs[2] == "":
			return &likeMatcher{kind: likeContains, lit: segs[1]}
		}
		return &likeMatcher{kind: likeBytes, segs: segs}
	}
	m := &likeMatcher{kind: likeRunes, fold: fold}
	var run []rune
	for _, r := range pat {
		switch {
		case r == '%':
			m.runs = append(m.runs, run)
			run = nil
		case r == '_':
			run = append(run, anyRune)
		case fold:
			run = append(run, foldRune(r))
		default:
			run = append(run, r)
		}
	}
	m.runs = append(m.runs, run)
	return m
}

func (m *likeMatcher) match(s string) bool {
	switch m.kind {
	case likeExact:
		return s == m.lit
	case likePrefix:
		return strings.HasPrefix(s, m.lit)
	case likeSuffix:
		return strings.HasSuffix(s, m.lit)
	case likeContains:
		return strings.Contains(s, m.lit)
	case likeBytes:
		return m.matchBytes(s)
	}
	return m.matchRunes(s)
}

func (m *likeMatcher) matchBytes(s string) bool {
	segs := m.segs
	first, last := segs[0], segs[len(segs)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	s = s[len(first) : len(s)-len(last)]
	// Taking each middle part at its leftmost place leaves the most room
	// for the rest.
	for _, seg := range segs[1 : len(segs)-1] {
		i := strings.Index(s, seg)
		if i < 0 {
			return false
		}
		s = s[i+len(seg):]
	}
	return true
}

func (m *likeMatcher) matchRunes(s string) bool {
	runs := m.runs
	end, ok := m.at(runs[0], s, 0)
	if !ok {
		return false
	}
	if len(runs) == 1 {
		return end == len(s)
	}
	i := end
	for _, run := range runs[1 : len(runs)-1] {
		for {
			if e, ok := m.at(run, s, i); ok {
				i = e
				break
			}
			if i >= len(s) {
				return false
			}
			_, n := utf8.DecodeRuneInString(s[i:])
			i += n
		}
	}
	// The last part has a fixed number of runes and must end the string.
	last := runs[len(runs)-1]
	j := len(s)
	for range last {
		if j <= i {
			return false
		}
		_, n := utf8.DecodeLastRuneInString(s[:j])
		j -= n
	}
	if j < i {
		return false
	}
	e, ok := m.at(last, s, j)
	return ok && e == len(s)
}

// at matches run against s from byte i and returns where the match ends.
func (m *likeMatcher) at(run []rune, s string, i int) (int, bool) {
	for _, want := range run {
		if i >= len(s) {
			return 0, false
		}
		r, n := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, n = utf8.DecodeRuneInString(s[i:])
		}
		i += n
		if want == anyRune {
			continue
		}
		if m.fold {
			r = foldRune(r)
		}
		if r != want {
			return 0, false
		}
	}
	return i, true
}

// foldRune maps r to the smallest rune of its simple case-folding orbit,
// so that two runes are equal under case folding when their folds are.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		}
		return r
	}
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	return m
}
