package repo

import (
	"strings"
	"testing"
)

// FuzzParseRef: a parsed ref prints back as its input, and both of its
// names follow the rules of SPEC section 2.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"iris@v1", "iris@latest", "iris@0123abcd", "runs@v1", "a@", "@v1", "a@b@c", "é@v1", ".x@v1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err != nil {
			return
		}
		if r.String() != s {
			t.Fatalf("ParseRef(%q) prints as %q", s, r)
		}
		if !nameRE.MatchString(r.Dataset) || !nameRE.MatchString(r.Version) || r.Dataset == "runs" || strings.Contains(r.Version, "@") {
			t.Fatalf("ParseRef(%q) accepted %+v", s, r)
		}
	})
}
