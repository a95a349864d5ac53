package pack

// CachedBytes returns the bytes of the windows in the read-ahead cache,
// fetched or being fetched.
func (s *Store) CachedBytes() int64 {
	s.win.mu.Lock()
	defer s.win.mu.Unlock()
	return s.win.bytes
}

// ParseTail is parseTail, for the fuzzer.
var ParseTail = parseTail
