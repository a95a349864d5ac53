package parse

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxKey is the longest metric, param or tag key in bytes (MLflow's limit).
const MaxKey = 250

// MaxRunID is the longest run id in bytes.
const MaxRunID = 256

// CheckKey reports whether key is a valid metric, param or tag key under
// MLflow's rules: 1 to 250 bytes of ASCII letters, digits, '_', '-', '.',
// '/' and ' '; no "..", no "//", and no '/' at either end.
func CheckKey(key string) error {
	if key == "" {
		return errors.New("key is empty")
	}
	if len(key) > MaxKey {
		return fmt.Errorf("key %s: longer than %d bytes", quote(key), MaxKey)
	}
	for i := 0; i < len(key); i++ {
		if !keyByte(key[i]) {
			return fmt.Errorf("key %s: must not contain %s", quote(key), quoteByte(key, i))
		}
	}
	switch {
	case strings.Contains(key, ".."):
		return fmt.Errorf("key %s: must not contain \"..\"", quote(key))
	case key[0] == '/':
		return fmt.Errorf("key %s: must not start with \"/\"", quote(key))
	case strings.Contains(key, "//"):
		return fmt.Errorf("key %s: must not contain \"//\"", quote(key))
	case key[len(key)-1] == '/':
		return fmt.Errorf("key %s: must not end with \"/\"", quote(key))
	}
	return nil
}

func keyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '-' || c == '.' || c == '/' || c == ' '
}

// CheckRunID reports whether id is a valid run id: a letter or digit, then
// up to 255 letters, digits, '.', '_' or '-'.
func CheckRunID(id string) error {
	if id == "" {
		return errors.New("run id is empty")
	}
	if len(id) > MaxRunID {
		return fmt.Errorf("run id %s: longer than %d bytes", quote(id), MaxRunID)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("run id %s: must start with a letter or digit", quote(id))
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("run id %s: must not contain %s", quote(id), quoteByte(id, i))
		}
	}
	return nil
}

// maxQuote bounds the text quoted in an error message.
const maxQuote = 64

// quote quotes s for an error message, cut to maxQuote bytes.
func quote(s string) string {
	if len(s) > maxQuote {
		cut := maxQuote
		for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		return fmt.Sprintf("%q...", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}

// quoteByte quotes the character that starts at s[i].
func quoteByte(s string, i int) string {
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && n <= 1 {
		return fmt.Sprintf("byte 0x%02x", s[i])
	}
	return fmt.Sprintf("%q", r)
}
