package parse

import "fmt"

// metricLine parses one line of a metrics/<key> file.
func (p *Parser) metricLine(line []byte, emit func(Point), fail func(string)) {
	line = trimBlank(line)
	if len(line) == 0 || line[0] == '#' {
		return
	}
	var f [3][]byte
	n := 0
	for i := 0; ; {
		j := i
		for j < len(line) && !sepByte(line[j]) {
			j++
		}
		if j == i {
			fail("empty field")
			return
		}
		if n == len(f) {
			fail("more than 3 fields")
			return
		}
		f[n] = line[i:j]
		n++
		if j == len(line) {
			break
		}
		// A separator: blanks, or one comma with optional blanks around it.
		for j < len(line) && (line[j] == ' ' || line[j] == '\t') {
			j++
		}
		if line[j] == ',' {
			j++
			for j < len(line) && (line[j] == ' ' || line[j] == '\t') {
				j++
			}
			if j == len(line) {
				fail("empty field")
				return
			}
		}
		i = j
	}
	pt := Point{Key: p.key}
	valueField := f[0]
	if n == 1 {
		s, why := p.nextStep()
		if why != "" {
			fail(why)
			return
		}
		pt.Step = s
	} else {
		s, why := parseInt(f[0])
		if why != "" {
			fail(fmt.Sprintf("step %s: %s", quote(string(f[0])), why))
			return
		}
		pt.Step = s
		valueField = f[1]
	}
	v, why := parseFloat(valueField)
	if why != "" {
		fail(fmt.Sprintf("%s: %s", quote(string(valueField)), why))
		return
	}
	pt.Value = v
	if n == 3 {
		t, why := parseTime(f[2])
		if why != "" {
			fail(fmt.Sprintf("time %s: %s", quote(string(f[2])), why))
			return
		}
		pt.Time = t
	}
	p.setStep(pt.Step)
	emit(pt)
}

func sepByte(c byte) bool { return c == ' ' || c == '\t' || c == ',' }
