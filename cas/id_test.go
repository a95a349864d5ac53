package cas

import "testing"

func TestParseIDRoundTrip(t *testing.T) {
	id := Sum([]byte("iris"))
	got, err := ParseID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseID(%s) = %v, %v", id, got, err)
	}
	for _, bad := range []string{"", id.String()[:63], id.String() + "0", "G" + id.String()[1:], "A" + id.String()[1:]} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) succeeded", bad)
		}
	}
}

// FuzzParseID: whatever parses prints back as the same text.
func FuzzParseID(f *testing.F) {
	f.Add(Sum(nil).String())
	f.Add("00")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err == nil && id.String() != s {
			t.Fatalf("ParseID(%q) prints as %q", s, id)
		}
	})
}

// FuzzCheckRefName: accepted names are made only of the allowed bytes.
func FuzzCheckRefName(f *testing.F) {
	for _, s := range []string{"iris/v1", "runs/r-1/x.y", "a//b", "../x", "a/.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckRefName(s) != nil {
			return
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '/') {
				t.Fatalf("accepted %q with byte %q", s, c)
			}
		}
		if s[0] == '/' || s[len(s)-1] == '/' || s[0] == '.' {
			t.Fatalf("accepted %q", s)
		}
	})
}

// BenchmarkSum measures content-id hashing of one 64 KiB chunk (the
// average chunk size), on one core.
func BenchmarkSum(b *testing.B) {
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		Sum(data)
	}
}
