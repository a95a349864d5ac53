package parse

import (
	"bytes"
	"fmt"
)

// MaxLine is the longest line a Parser parses, in bytes before its newline.
// A longer line is reported once and skipped.
const MaxLine = 1 << 20

// maxLineErrors bounds the errors reported for one line; the rest are
// counted in one last error.
const maxLineErrors = 10

// Point is one metric value.
type Point struct {
	Key   string
	Step  int64
	Value float64
	Time  int64 // unix milliseconds; 0 means not given
}

// Error is a problem with one line of input. Line 0 means no line.
type Error struct {
	Line   int64
	Reason string
}

func (e Error) Error() string {
	if e.Line == 0 {
		return e.Reason
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
}

// Format is the kind of file a Parser reads.
type Format uint8

const (
	// MetricLines is metrics/<key>: "<value>", "<step> <value>" or
	// "<step> <value> <unix-seconds>" per line.
	MetricLines Format = iota + 1
	// JSONL is metrics.jsonl: one JSON object per line.
	JSONL
	// CSV is metrics.csv: a header row, then rows.
	CSV
)

func (f Format) String() string {
	switch f {
	case MetricLines:
		return "metric lines"
	case JSONL:
		return "JSONL"
	case CSV:
		return "CSV"
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

func (f Format) valid() bool { return f >= MetricLines && f <= CSV }

// Parser parses one growing file, fed in pieces of any size. It is not
// safe for concurrent use.
type Parser struct {
	format   Format
	key      string // MetricLines: the metric's key
	line     int64  // lines finished
	consumed int64  // bytes finished, through the last newline handled
	started  bool   // a step has been given, so prev is set
	prev     int64  // the last step
	skipping bool   // inside a line longer than limit
	limit    int    // MaxLine, smaller in tests

	buf []byte // the unfinished line, at most limit bytes

	csv   *csvHeader     // CSV: nil until the header row is read
	jsonl *jsonlScratch  // JSONL: reused per line
	keys  map[string]key // JSONL and CSV: keys seen, checked once
	errs  int            // errors reported for the current line
	cells []byte         // CSV: scratch for a quoted cell
}

// key is an interned, checked metric key.
type key struct {
	name string
	bad  string // why the key is invalid; "" if valid
}

// maxKeys bounds the interned keys of one Parser.
const maxKeys = 4096

// New returns a parser of format f at the start of a file. For
// MetricLines, key is the key of every point (it is not checked here: see
// CheckKey); other formats ignore it. New panics if f is not a Format.
func New(f Format, key string) *Parser {
	if !f.valid() {
		panic("parse: unknown format " + f.String())
	}
	p := &Parser{format: f, limit: MaxLine}
	if f == MetricLines {
		p.key = key
	}
	return p
}

// Format returns the parser's format.
func (p *Parser) Format() Format { return p.format }

// Consumed returns how many bytes of the file the parser has finished
// with: every byte through the last newline handled, and the bytes of a
// too-long line skipped so far. A restored parser must be fed the file
// from this offset.
func (p *Parser) Consumed() int64 { return p.consumed }

// Line returns the number of lines finished.
func (p *Parser) Line() int64 { return p.line }

// Feed parses the complete lines in data, with the unfinished line kept
// from earlier calls, calling emit for each point and report for each
// problem. An unfinished last line is kept (at most MaxLine bytes) until
// its newline arrives or End is called. Neither callback is retained;
// either may be nil.
func (p *Parser) Feed(data []byte, emit func(Point), report func(Error)) {
	emit, report = orNop(emit, report)
	for len(data) > 0 {
		if p.skipping {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				p.consumed += int64(len(data))
				return
			}
			p.consumed += int64(i + 1)
			p.line++
			p.skipping = false
			data = data[i+1:]
			continue
		}
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(p.buf)+len(data) > p.limit {
				p.tooLong(report)
				p.consumed += int64(len(p.buf) + len(data))
				p.skipping = true
				p.dropBuf()
				return
			}
			p.keep(data)
			return
		}
		if len(p.buf)+i > p.limit {
			p.tooLong(report)
			p.consumed += int64(len(p.buf) + i + 1)
			p.line++
			p.dropBuf()
			data = data[i+1:]
			continue
		}
		if len(p.buf) > 0 {
			p.keep(data[:i])
			p.finish(p.buf, 1, emit, report)
			p.dropBuf()
		} else {
			p.finish(data[:i], 1, emit, report)
		}
		data = data[i+1:]
	}
}

// End tells the parser the input has ended: a non-empty unfinished last
// line is parsed as if its newline had come, and Consumed then counts it.
// Feeding more afterwards starts a new line.
func (p *Parser) End(emit func(Point), report func(Error)) {
	emit, report = orNop(emit, report)
	if p.skipping {
		p.skipping = false
		p.line++
		return
	}
	if len(p.buf) > 0 {
		p.finish(p.buf, 0, emit, report)
		p.dropBuf()
	}
}

func orNop(emit func(Point), report func(Error)) (func(Point), func(Error)) {
	if emit == nil {
		emit = func(Point) {}
	}
	if report == nil {
		report = func(Error) {}
	}
	return emit, report
}

// keep appends b to the unfinished line, never growing it past limit.
func (p *Parser) keep(b []byte) {
	need := len(p.buf) + len(b)
	if need > cap(p.buf) {
		c := max(2*cap(p.buf), need, 512)
		c = min(c, p.limit)
		nb := make([]byte, len(p.buf), c)
		copy(nb, p.buf)
		p.buf = nb
	}
	p.buf = append(p.buf, b...)
}

// dropBuf empties the unfinished line, freeing a large buffer.
func (p *Parser) dropBuf() {
	if cap(p.buf) > 64<<10 {
		p.buf = nil
	} else {
		p.buf = p.buf[:0]
	}
}

func (p *Parser) tooLong(report func(Error)) {
	report(Error{Line: p.line + 1, Reason: "line longer than 1 MiB"})
}

// finish parses one whole line (without its newline; nl is the newline's
// length, 0 or 1) and counts it.
func (p *Parser) finish(line []byte, nl int, emit func(Point), report func(Error)) {
	p.consumed += int64(len(line) + nl)
	p.line++
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if p.line == 1 {
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
	}
	p.errs = 0
	rep := func(reason string) { p.report(report, reason) }
	switch p.format {
	case MetricLines:
		p.metricLine(line, emit, rep)
	case JSONL:
		p.jsonlLine(line, emit, rep)
	case CSV:
		p.csvLine(line, emit, rep)
	}
	if p.errs > maxLineErrors {
		report(Error{Line: p.line, Reason: fmt.Sprintf("%d more problems in this line", p.errs-maxLineErrors)})
	}
}

// report reports a problem with the current line, up to maxLineErrors.
func (p *Parser) report(report func(Error), reason string) {
	p.errs++
	if p.errs <= maxLineErrors {
		report(Error{Line: p.line, Reason: reason})
	}
}

// problems collects a line's problems before they are reported, keeping
// only as many as can be reported and counting the rest.
type problems struct {
	list []string
	more int
}

// room reports whether another problem is kept, counting it if not.
func (pr *problems) room() bool {
	if len(pr.list) < maxLineErrors {
		return true
	}
	pr.more++
	return false
}

func (pr *problems) add(s string) { pr.list = append(pr.list, s) }

func (pr problems) reset() problems { return problems{list: pr.list[:0]} }

// flush reports the problems kept and counts the rest for the line.
func (pr *problems) flush(p *Parser, fail func(string)) {
	for _, s := range pr.list {
		fail(s)
	}
	p.errs += pr.more
}

// nextStep returns the step of a row that gives none: the last step + 1,
// or 0 for the first.
func (p *Parser) nextStep() (int64, string) {
	if !p.started {
		return 0, ""
	}
	if p.prev == 1<<63-1 {
		return 0, "step after 9223372036854775807 is out of range"
	}
	return p.prev + 1, ""
}

func (p *Parser) setStep(s int64) {
	p.started = true
	p.prev = s
}

// intern returns the checked key for name, caching up to maxKeys keys
// short enough to be valid.
func (p *Parser) intern(name []byte) key {
	if len(name) > MaxKey {
		return key{bad: CheckKey(transient(name)).Error()}
	}
	if k, ok := p.keys[string(name)]; ok {
		return k
	}
	s := string(name)
	k := key{name: s}
	if err := CheckKey(s); err != nil {
		k.bad = err.Error()
	}
	if p.keys == nil {
		p.keys = make(map[string]key)
	}
	if len(p.keys) < maxKeys {
		p.keys[s] = k
	}
	return k
}

// isBlank reports whether b holds only spaces and tabs.
func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

func trimBlank(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
