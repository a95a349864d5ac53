package parse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strings"
)

// The state encoding, version 1:
//
//	'P' 1 format
//	uvarint line, uvarint consumed, byte flags, varint prev step
//	uvarint len, key bytes (MetricLines; empty otherwise)
//	if the header flag: uvarint count, then count × (uvarint len, name bytes)
//	CRC-32 (IEEE) of all the above, little-endian
const (
	stateMagic   = 'P'
	stateVersion = 1

	flagStarted  = 1 << 0
	flagSkipping = 1 << 1
	flagHeader   = 1 << 2
)

// State encodes what the parser needs to resume: the line number, the last
// step, the CSV header and the consumed offset. The unfinished line is not
// kept: a restored parser is fed the file from Consumed.
func (p *Parser) State() []byte {
	b := []byte{stateMagic, stateVersion, byte(p.format)}
	b = binary.AppendUvarint(b, uint64(p.line))
	b = binary.AppendUvarint(b, uint64(p.consumed))
	var flags byte
	if p.started {
		flags |= flagStarted
	}
	if p.skipping {
		flags |= flagSkipping
	}
	if p.csv != nil {
		flags |= flagHeader
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, p.prev)
	b = binary.AppendUvarint(b, uint64(len(p.key)))
	b = append(b, p.key...)
	if p.csv != nil {
		b = binary.AppendUvarint(b, uint64(len(p.csv.names)))
		for _, n := range p.csv.names {
			b = binary.AppendUvarint(b, uint64(len(n)))
			b = append(b, n...)
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

// Restore returns a parser in the state that State encoded. It checks the
// whole encoding and returns an error for anything State would not write.
func Restore(state []byte) (*Parser, error) {
	if len(state) < 3+4 {
		return nil, errors.New("parser state: too short")
	}
	body := state[:len(state)-4]
	if binary.LittleEndian.Uint32(state[len(body):]) != crc32.ChecksumIEEE(body) {
		return nil, errors.New("parser state: checksum mismatch")
	}
	if body[0] != stateMagic {
		return nil, errors.New("parser state: not a parser state")
	}
	if body[1] != stateVersion {
		return nil, fmt.Errorf("parser state: unknown version %d", body[1])
	}
	f := Format(body[2])
	if !f.valid() {
		return nil, fmt.Errorf("parser state: unknown format %d", body[2])
	}
	d := decoder{b: body[3:]}
	p := &Parser{format: f, limit: MaxLine}
	p.line = d.int()
	p.consumed = d.int()
	flags := d.byte()
	p.prev = d.varint()
	key := d.bytes()
	if d.err != nil {
		return nil, d.err
	}
	if flags&^(flagStarted|flagSkipping|flagHeader) != 0 {
		return nil, errors.New("parser state: unknown flags")
	}
	p.started = flags&flagStarted != 0
	p.skipping = flags&flagSkipping != 0
	switch {
	case !p.started && p.prev != 0:
		return nil, errors.New("parser state: a step without a start")
	case p.consumed < p.line:
		return nil, errors.New("parser state: more lines than bytes")
	case f != MetricLines && len(key) > 0:
		return nil, errors.New("parser state: a key for a format without one")
	case f != CSV && flags&flagHeader != 0:
		return nil, errors.New("parser state: a header for a format without one")
	}
	p.key = string(key)
	if flags&flagHeader != 0 {
		count := d.uvarint()
		if d.err == nil && count > uint64(len(d.b)) {
			return nil, errors.New("parser state: too many header columns")
		}
		names := make([]string, 0, count)
		total := 0
		for i := uint64(0); i < count && d.err == nil; i++ {
			n := d.bytes()
			total += len(n) + 1
			if total > MaxLine+1 {
				return nil, errors.New("parser state: header longer than a line")
			}
			if strings.IndexByte(string(n), '\n') >= 0 {
				return nil, errors.New("parser state: header name with a newline")
			}
			names = append(names, string(n))
		}
		if d.err != nil {
			return nil, d.err
		}
		p.csv, _ = newHeader(names)
	}
	if len(d.b) != 0 {
		return nil, errors.New("parser state: trailing bytes")
	}
	return p, nil
}

// decoder reads the fields of a state, keeping the first error.
type decoder struct {
	b   []byte
	err error
}

var errTruncated = errors.New("parser state: truncated or malformed")

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 || n != len(binary.AppendVarint(nil, v)) {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

// int reads a uvarint that must fit in an int64.
func (d *decoder) int() int64 {
	v := d.uvarint()
	if v > math.MaxInt64 {
		d.err = errTruncated
		return 0
	}
	return int64(v)
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errTruncated
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errTruncated
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
