package parse

import "fmt"

// jsonlScratch is reused from line to line of a JSONL file.
type jsonlScratch struct {
	s    jscan
	path []byte  // the key of the value being read
	str  []byte  // a decoded string value
	pts  []Point // the line's points, stepped once the line is read
	errs problems

	step, epoch, ts reserved
}

// reserved is a top-level "step", "epoch" or "timestamp" value.
type reserved struct {
	set  bool
	num  []byte // the number's text; nil if the value is not a number
	what string // the value as text, for errors, if not a number
}

func (r *reserved) integer(name string) (int64, string) {
	if r.num == nil {
		return 0, name + " " + r.what + ": not an integer"
	}
	v, why := parseInt(r.num)
	if why != "" {
		return 0, name + " " + shorten(r.num) + ": " + why
	}
	return v, ""
}

// jsonlLine parses one line of metrics.jsonl.
func (p *Parser) jsonlLine(line []byte, emit func(Point), fail func(string)) {
	line = trimBlank(line)
	if len(line) == 0 {
		return
	}
	if line[0] != '{' {
		fail("not a JSON object")
		return
	}
	j := p.jsonl
	if j == nil {
		j = &jsonlScratch{}
		p.jsonl = j
	}
	defer j.release()
	j.s.reset(line)
	j.pts, j.errs, j.path = j.pts[:0], j.errs.reset(), j.path[:0]
	j.step, j.epoch, j.ts = reserved{}, reserved{}, reserved{}
	if !p.jsonObject(j, 0) {
		fail(j.s.err)
		return
	}
	j.s.ws()
	if j.s.i < len(line) {
		j.s.fail("data after the object")
		fail(j.s.err)
		return
	}
	var step int64
	var why string
	switch {
	case j.step.set:
		step, why = j.step.integer("step")
	case j.epoch.set:
		step, why = j.epoch.integer("epoch")
	default:
		step, why = p.nextStep()
	}
	if why != "" {
		fail(why)
		return
	}
	var t int64
	if j.ts.set {
		if j.ts.num == nil {
			why = "timestamp " + j.ts.what + ": not a number"
		} else if f, w := parseFloat(j.ts.num); w != "" {
			why = "timestamp " + shorten(j.ts.num) + ": " + w
		} else if t, w = secondsToMillis(f); w != "" {
			why = "timestamp " + shorten(j.ts.num) + ": " + w
		}
		if why != "" {
			fail(why)
		}
	}
	j.errs.flush(p, fail)
	p.setStep(step)
	for _, pt := range j.pts {
		pt.Step, pt.Time = step, t
		emit(pt)
	}
}

// release frees scratch space grown by an unusually large line.
func (j *jsonlScratch) release() {
	if cap(j.pts) > 4096 {
		j.pts = nil
	}
	if cap(j.str) > 64<<10 {
		j.str = nil
	}
	if cap(j.path) > 64<<10 {
		j.path = nil
	}
	j.s.b = nil
	j.step, j.epoch, j.ts = reserved{}, reserved{}, reserved{}
}

// jsonObject reads the object at the scanner's position; its members are
// metrics named by j.path + "/" + member name.
func (p *Parser) jsonObject(j *jsonlScratch, depth int) bool {
	s := &j.s
	if depth >= maxDepth {
		return s.fail("nested too deeply")
	}
	s.i++
	s.ws()
	if s.peek() == '}' {
		s.i++
		return true
	}
	base := len(j.path)
	for {
		s.ws()
		if s.peek() != '"' {
			return s.fail("")
		}
		j.path = j.path[:base]
		if depth > 0 {
			j.path = append(j.path, '/')
		}
		var ok bool
		if j.path, ok = s.str(j.path); !ok || !s.expect(':') {
			return false
		}
		s.ws()
		if depth == 0 && p.jsonReserved(j) {
			if s.err != "" {
				return false
			}
		} else if !p.jsonValue(j, depth) {
			return false
		}
		j.path = j.path[:base]
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

// jsonReserved reads the value of a top-level step, epoch or timestamp,
// and reports whether the member was one of those.
func (p *Parser) jsonReserved(j *jsonlScratch) bool {
	var r *reserved
	switch string(j.path) {
	case "step":
		r = &j.step
	case "epoch":
		r = &j.epoch
	case "timestamp":
		r = &j.ts
	default:
		return false
	}
	s := &j.s
	*r = reserved{set: true}
	start := s.i
	switch c := s.peek(); c {
	case '"':
		var ok bool
		if j.str, ok = s.str(j.str[:0]); ok {
			r.what = quote(string(j.str))
		}
	case '{', '[', 't', 'f', 'n':
		if s.skip(1) {
			r.what = literalName(s.b[start:s.i])
		}
	default:
		r.num, _ = s.num()
	}
	return true
}

// literalName names a JSON value that is neither a string nor a number.
func literalName(v []byte) string {
	switch v[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return string(v)
}

// jsonValue reads a metric value at the scanner's position.
func (p *Parser) jsonValue(j *jsonlScratch, depth int) bool {
	s := &j.s
	start := s.i
	switch c := s.peek(); c {
	case '{':
		return p.jsonObject(j, depth+1)
	case '"':
		var ok bool
		if j.str, ok = s.str(j.str[:0]); !ok {
			return false
		}
		if v, ok := special(j.str); ok {
			p.jsonPoint(j, v)
		} else {
			if j.errs.room() {
				j.errs.add(fmt.Sprintf("key %s: %s is not a number", quote(string(j.path)), quote(string(j.str))))
			}
		}
		return true
	case '[', 't', 'f', 'n':
		if !s.skip(depth + 1) {
			return false
		}
		if j.errs.room() {
			j.errs.add(fmt.Sprintf("key %s: %s is not a number", quote(string(j.path)), literalName(s.b[start:s.i])))
		}
		return true
	}
	lit, ok := s.num()
	if !ok {
		return false
	}
	if v, why := parseFloat(lit); why != "" {
		if j.errs.room() {
			j.errs.add(fmt.Sprintf("key %s: %s is %s", quote(string(j.path)), shorten(lit), why))
		}
	} else {
		p.jsonPoint(j, v)
	}
	return true
}

func (p *Parser) jsonPoint(j *jsonlScratch, v float64) {
	k := p.intern(j.path)
	if k.bad != "" {
		if j.errs.room() {
			j.errs.add(k.bad)
		}
		return
	}
	j.pts = append(j.pts, Point{Key: k.name, Value: v})
}

// special parses nan, inf and infinity (any case, optionally signed).
func special(b []byte) (float64, bool) {
	s := b
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	if len(s) == 0 || !(s[0]|0x20 == 'n' || s[0]|0x20 == 'i') {
		return 0, false
	}
	v, why := parseFloat(b)
	return v, why == ""
}
