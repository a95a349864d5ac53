package parse

import (
	"math"
	"strconv"
	"unsafe"
)

// transient views bytes as a string without copying. The string must not
// outlive the call it is passed to (strconv copies what it keeps in errors).
func transient(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// parseInt parses an optionally signed decimal integer. A decimal number
// with no fraction ("3.0", "1e3") is that integer too: steps and epochs
// often come out of numpy or pandas as floats.
func parseInt(b []byte) (int64, string) {
	v, why := parseDigits(b)
	if why == "not an integer" && decimal(b) {
		if f, err := strconv.ParseFloat(transient(b), 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f), ""
		}
	}
	return v, why
}

// decimal reports whether b holds only what a decimal float is made of.
func decimal(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
			return false
		}
	}
	return len(b) > 0
}

func parseDigits(b []byte) (int64, string) {
	s := b
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if len(s) == 0 {
		return 0, "not an integer"
	}
	var u uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, "not an integer"
		}
		if u > (math.MaxUint64-9)/10 {
			return 0, "out of range"
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, "out of range"
		}
		return int64(-u), ""
	}
	if u > math.MaxInt64 {
		return 0, "out of range"
	}
	return int64(u), ""
}

// parseFloat parses a decimal number or one of nan, inf, infinity (any
// case, optionally signed). Hex floats and digit separators are refused.
func parseFloat(b []byte) (float64, string) {
	s := b
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if len(s) == 0 {
		return 0, "not a number"
	}
	if c := s[0]; c == 'n' || c == 'N' || c == 'i' || c == 'I' {
		switch {
		case equalFold(s, "nan"):
			return math.NaN(), ""
		case equalFold(s, "inf"), equalFold(s, "infinity"):
			if neg {
				return math.Inf(-1), ""
			}
			return math.Inf(1), ""
		}
		return 0, "not a number"
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
			return 0, "not a number"
		}
	}
	f, err := strconv.ParseFloat(transient(b), 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, "out of range"
		}
		return 0, "not a number"
	}
	return f, ""
}

// equalFold reports whether b equals the lower-case ASCII word w, ignoring case.
func equalFold(b []byte, w string) bool {
	if len(b) != len(w) {
		return false
	}
	for i := range b {
		if b[i]|0x20 != w[i] {
			return false
		}
	}
	return true
}

// maxSeconds keeps seconds*1000 within int64.
const maxSeconds = math.MaxInt64 / 1000

// parseTime parses unix seconds, possibly fractional, into unix milliseconds.
func parseTime(b []byte) (int64, string) {
	f, why := parseFloat(b)
	if why != "" {
		return 0, why
	}
	return secondsToMillis(f)
}

func secondsToMillis(f float64) (int64, string) {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return 0, "not a finite number"
	case f < 0:
		return 0, "negative"
	case f >= maxSeconds:
		return 0, "out of range"
	}
	return int64(math.Round(f * 1000)), ""
}
