package parse

import "fmt"

// Column roles in a CSV header.
const (
	colMetric = iota
	colIgnored
	colStep
	colEpoch
	colTime
)

// csvHeader is the header row of a CSV file and what each column means.
type csvHeader struct {
	names []string
	roles []uint8
	keys  []string // metric columns: the key

	pts  []Point // the row's points, stepped once the row is read
	errs problems
}

// newHeader works out column roles. It returns the problems with the
// header, which the caller reports; they are not kept.
func newHeader(names []string) (*csvHeader, problems) {
	h := &csvHeader{names: names, roles: make([]uint8, len(names)), keys: make([]string, len(names))}
	var bad problems
	find := func(name string) int {
		for i, n := range names {
			if n == name {
				return i
			}
		}
		return -1
	}
	step, epoch := find("step"), find("epoch")
	tm := find("timestamp")
	if tm < 0 {
		tm = find("time")
	}
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		switch {
		case i == step:
			h.roles[i] = colStep
		case i == epoch:
			h.roles[i] = colEpoch
		case i == tm:
			h.roles[i] = colTime
		case n == "step" || n == "epoch" || n == "timestamp" || n == "time":
			h.roles[i] = colIgnored
		case seen[n]:
			h.roles[i] = colIgnored
			if bad.room() {
				bad.add(fmt.Sprintf("header: column %s: given twice", quote(n)))
			}
		default:
			if err := CheckKey(n); err != nil {
				h.roles[i] = colIgnored
				if bad.room() {
					bad.add(fmt.Sprintf("header: column %d: %v", i+1, err))
				}
			} else {
				h.keys[i] = n
			}
		}
		seen[n] = true
	}
	return h, bad
}

// csvCells iterates over the cells of one CSV line (RFC 4180 quoting;
// a quoted cell cannot span lines).
type csvCells struct {
	line []byte
	i    int
	done bool
}

// next returns the next cell, trimmed of blanks and unquoted. scratch holds
// an unquoted cell that had doubled quotes. It returns ok false at the end
// of the line, and a reason for a quoting error.
func (c *csvCells) next(scratch *[]byte) (cell []byte, ok bool, why string) {
	if c.done {
		return nil, false, ""
	}
	line := c.line
	i := c.i
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	if i < len(line) && line[i] == '"' {
		i++
		start := i
		doubled := false
		for {
			for i < len(line) && line[i] != '"' {
				i++
			}
			if i >= len(line) {
				return nil, false, "unterminated quoted cell"
			}
			if i+1 < len(line) && line[i+1] == '"' {
				doubled = true
				i += 2
				continue
			}
			break
		}
		cell = line[start:i]
		i++
		if doubled {
			b := (*scratch)[:0]
			for k := 0; k < len(cell); k++ {
				b = append(b, cell[k])
				if cell[k] == '"' {
					k++
				}
			}
			*scratch = b
			cell = b
		}
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i < len(line) && line[i] != ',' {
			return nil, false, "text after a closing quote"
		}
	} else {
		start := i
		for i < len(line) && line[i] != ',' {
			i++
		}
		cell = trimBlank(line[start:i])
	}
	if i >= len(line) {
		c.done = true
	} else {
		c.i = i + 1
	}
	return cell, true, ""
}

// csvLine parses one line of metrics.csv: the header, or a row.
func (p *Parser) csvLine(line []byte, emit func(Point), fail func(string)) {
	if isBlank(line) {
		return
	}
	if p.csv == nil {
		p.csvHeaderLine(line, fail)
		return
	}
	h := p.csv
	defer h.release()
	h.pts, h.errs = h.pts[:0], h.errs.reset()
	var step, epoch, tm cellValue
	it := csvCells{line: line}
	n := 0
	for {
		cell, ok, why := it.next(&p.cells)
		if why != "" {
			fail(fmt.Sprintf("column %d: %s", n+1, why))
			return
		}
		if !ok {
			break
		}
		n++
		cell = trimBlank(cell)
		if n > len(h.names) || len(cell) == 0 {
			continue
		}
		col := n - 1
		switch h.roles[col] {
		case colStep:
			step.set(h.names[col], cell, parseInt)
		case colEpoch:
			epoch.set(h.names[col], cell, parseInt)
		case colTime:
			tm.set(h.names[col], cell, parseTime)
		case colMetric:
			v, why := parseFloat(cell)
			if why != "" {
				if h.errs.room() {
					h.errs.add(cellError(h.names[col], cell, why))
				}
				continue
			}
			h.pts = append(h.pts, Point{Key: h.keys[col], Value: v})
		}
	}
	if n > len(h.names) {
		fail(fmt.Sprintf("row has %d cells; the header has %d", n, len(h.names)))
		return
	}
	var s int64
	var why string
	switch {
	case step.given:
		s, why = step.v, step.why
	case epoch.given:
		s, why = epoch.v, epoch.why
	default:
		s, why = p.nextStep()
	}
	if why != "" {
		fail(why)
		return
	}
	if tm.why != "" {
		fail(tm.why)
	}
	t := tm.v
	h.errs.flush(p, fail)
	p.setStep(s)
	for _, pt := range h.pts {
		pt.Step, pt.Time = s, t
		emit(pt)
	}
}

// cellValue is a parsed step, epoch or time cell.
type cellValue struct {
	given bool
	v     int64
	why   string // the problem with the cell, if any
}

func (c *cellValue) set(col string, cell []byte, parse func([]byte) (int64, string)) {
	c.given = true
	c.v, c.why = parse(cell)
	if c.why != "" {
		c.v, c.why = 0, cellError(col, cell, c.why)
	}
}

func cellError(col string, cell []byte, why string) string {
	return fmt.Sprintf("column %s: %s is %s", quote(col), quote(string(cell)), why)
}

// csvHeaderLine reads the header row. A header with a quoting error is
// reported and kept with no columns, so every row after it is an error.
func (p *Parser) csvHeaderLine(line []byte, fail func(string)) {
	var names []string
	it := csvCells{line: line}
	for {
		cell, ok, why := it.next(&p.cells)
		if why != "" {
			fail(fmt.Sprintf("header: column %d: %s", len(names)+1, why))
			names = []string{}
			break
		}
		if !ok {
			break
		}
		names = append(names, string(cell))
	}
	if names == nil {
		names = []string{}
	}
	h, bad := newHeader(names)
	bad.flush(p, fail)
	p.csv = h
}

func (h *csvHeader) release() {
	if cap(h.pts) > 4096 {
		h.pts = nil
	}
}
