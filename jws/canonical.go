package jws

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Canonicalize re-serialises a JSON text exactly as Node's
// safe-stable-stringify does after JSON.parse, which is what Mojaloop's
// validator (@mojaloop/sdk-standard-components JwsValidator) verifies
// against instead of the bytes received:
//
//   - object members sorted by plain JavaScript string order (UTF-16 code
//     units) at every level, a repeated member keeping its last value;
//   - no whitespace;
//   - numbers parsed to IEEE 754 doubles and printed the JavaScript way
//     (1.0 → 1, 1e21 → 1e+21, 0.0000001 → 1e-7, -0 → 0, overflow → null);
//   - strings escaped as JSON.stringify does: only ", \, and control
//     characters (\b \f \n \r \t, others as lowercase \u00xx), lone
//     surrogates as \udxxx, and nothing else (no escaping of <, > or &,
//     unlike Go's encoding/json).
//
// It is written by hand because no maintained Go library reproduces
// JavaScript's number formatting together with this key order: RFC 8785
// (JCS) libraries format numbers the same way but escape differently for
// some characters and are defined over I-JSON; encoding/json sorts keys by
// UTF-8 bytes, escapes <, > and &, and formats floats differently.
//
// A text that is not JSON (or not valid UTF-8) returns an error wrapping
// ErrNotJSON.
func Canonicalize(data []byte) ([]byte, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("canonical JSON: %w: invalid UTF-8", ErrNotJSON)
	}
	p := &jparser{data: data}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(p.data) {
		return nil, fmt.Errorf("canonical JSON: %w: data after the value at byte %d", ErrNotJSON, p.pos)
	}
	out := make([]byte, 0, len(data))
	return v.appendTo(out), nil
}

// ErrNotJSON is wrapped by Canonicalize's error when its input is not JSON.
var ErrNotJSON = errors.New("not JSON")

// ErrTooDeep is wrapped by Canonicalize's error when the input nests
// deeper than MaxCanonicalDepth.
var ErrTooDeep = errors.New("JSON nests too deep")

// MaxCanonicalDepth bounds the nesting Canonicalize accepts.
const MaxCanonicalDepth = 1000

type jkind uint8

const (
	jNull jkind = iota
	jTrue
	jFalse
	jNumber
	jString
	jArray
	jObject
)

type jvalue struct {
	kind    jkind
	num     float64
	str     []uint16
	elems   []*jvalue
	members []jmember
}

type jmember struct {
	key []uint16
	val *jvalue
}

type jparser struct {
	data []byte
	pos  int
}

func (p *jparser) errf(format string, a ...any) error {
	return fmt.Errorf("canonical JSON: %w: %s at byte %d", ErrNotJSON, fmt.Sprintf(format, a...), p.pos)
}

func (p *jparser) space() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jparser) value(depth int) (*jvalue, error) {
	if p.pos >= len(p.data) {
		return nil, p.errf("unexpected end")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return &jvalue{kind: jString, str: s}, nil
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	case bytes.HasPrefix(p.data[p.pos:], []byte("true")):
		p.pos += 4
		return &jvalue{kind: jTrue}, nil
	case bytes.HasPrefix(p.data[p.pos:], []byte("false")):
		p.pos += 5
		return &jvalue{kind: jFalse}, nil
	case bytes.HasPrefix(p.data[p.pos:], []byte("null")):
		p.pos += 4
		return &jvalue{kind: jNull}, nil
	default:
		return nil, p.errf("unexpected %q", c)
	}
}

func (p *jparser) object(depth int) (*jvalue, error) {
	if depth > MaxCanonicalDepth {
		return nil, fmt.Errorf("canonical JSON: %w: more than %d levels", ErrTooDeep, MaxCanonicalDepth)
	}
	p.pos++ // {
	v := &jvalue{kind: jObject}
	index := map[string]int{}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	for {
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.errf("expected a member name")
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.errf("expected ':'")
		}
		p.pos++
		p.space()
		val, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		k := string(utf16ToBytes(key))
		if i, dup := index[k]; dup {
			v.members[i].val = val // JSON.parse: the last one wins
		} else {
			index[k] = len(v.members)
			v.members = append(v.members, jmember{key: key, val: val})
		}
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.errf("unexpected end in object")
		}
		if p.data[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.data[p.pos] == '}' {
			p.pos++
			return v, nil
		}
		return nil, p.errf("expected ',' or '}'")
	}
}

func (p *jparser) array(depth int) (*jvalue, error) {
	if depth > MaxCanonicalDepth {
		return nil, fmt.Errorf("canonical JSON: %w: more than %d levels", ErrTooDeep, MaxCanonicalDepth)
	}
	p.pos++ // [
	v := &jvalue{kind: jArray}
	p.space()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return v, nil
	}
	for {
		p.space()
		e, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		v.elems = append(v.elems, e)
		p.space()
		if p.pos >= len(p.data) {
			return nil, p.errf("unexpected end in array")
		}
		if p.data[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.data[p.pos] == ']' {
			p.pos++
			return v, nil
		}
		return nil, p.errf("expected ',' or ']'")
	}
}

func (p *jparser) number() (*jvalue, error) {
	start := p.pos
	d := p.data
	if p.pos < len(d) && d[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(d) && '0' <= d[p.pos] && d[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.pos < len(d) && d[p.pos] == '0' {
		p.pos++
	} else if digits() == 0 {
		return nil, p.errf("invalid number")
	}
	if p.pos < len(d) && d[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return nil, p.errf("invalid number")
		}
	}
	if p.pos < len(d) && (d[p.pos] == 'e' || d[p.pos] == 'E') {
		p.pos++
		if p.pos < len(d) && (d[p.pos] == '+' || d[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.errf("invalid number")
		}
	}
	f, err := strconv.ParseFloat(string(d[start:p.pos]), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, p.errf("invalid number")
	}
	// On overflow ParseFloat returns ±Inf, as JSON.parse does; on
	// underflow it returns ±0, as JSON.parse does.
	return &jvalue{kind: jNumber, num: f}, nil
}

// str parses a JSON string into UTF-16 code units, keeping lone surrogates
// from \u escapes as JSON.parse does.
func (p *jparser) str() ([]uint16, error) {
	p.pos++ // "
	var out []uint16
	d := p.data
	for {
		if p.pos >= len(d) {
			return nil, p.errf("unterminated string")
		}
		c := d[p.pos]
		switch {
		case c == '"':
			p.pos++
			return out, nil
		case c < 0x20:
			return nil, p.errf("control character in string")
		case c == '\\':
			if p.pos+1 >= len(d) {
				return nil, p.errf("unterminated escape")
			}
			e := d[p.pos+1]
			p.pos += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, uint16(e))
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				if p.pos+4 > len(d) {
					return nil, p.errf("short \\u escape")
				}
				u, err := strconv.ParseUint(string(d[p.pos:p.pos+4]), 16, 16)
				if err != nil || !isHex4(d[p.pos:p.pos+4]) {
					return nil, p.errf("invalid \\u escape")
				}
				out = append(out, uint16(u))
				p.pos += 4
			default:
				return nil, p.errf("invalid escape \\%c", e)
			}
		case c < utf8.RuneSelf:
			out = append(out, uint16(c))
			p.pos++
		default:
			r, size := utf8.DecodeRune(d[p.pos:])
			p.pos += size
			out = utf16.AppendRune(out, r)
		}
	}
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func (v *jvalue) appendTo(out []byte) []byte {
	switch v.kind {
	case jNull:
		return append(out, "null"...)
	case jTrue:
		return append(out, "true"...)
	case jFalse:
		return append(out, "false"...)
	case jNumber:
		return appendJSNumber(out, v.num)
	case jString:
		return appendJSString(out, v.str)
	case jArray:
		out = append(out, '[')
		for i, e := range v.elems {
			if i > 0 {
				out = append(out, ',')
			}
			out = e.appendTo(out)
		}
		return append(out, ']')
	default:
		ms := slices.Clone(v.members)
		slices.SortStableFunc(ms, func(a, b jmember) int { return slices.Compare(a.key, b.key) })
		out = append(out, '{')
		for i, m := range ms {
			if i > 0 {
				out = append(out, ',')
			}
			out = appendJSString(out, m.key)
			out = append(out, ':')
			out = m.val.appendTo(out)
		}
		return append(out, '}')
	}
}

// appendJSNumber formats f as ECMAScript's Number::toString does
// (ECMA-262 §6.1.6.1.20), with JSON.stringify's null for non-finite values.
func appendJSNumber(out []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(out, "null"...)
	}
	if f == 0 {
		return append(out, '0') // also -0
	}
	if f < 0 {
		out = append(out, '-')
		f = -f
	}
	// Shortest round-tripping digits, as ECMAScript requires.
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, expPart, _ := bytes.Cut([]byte(e), []byte("e"))
	digits := bytes.Replace(mant, []byte("."), nil, 1)
	exp, _ := strconv.Atoi(string(expPart))
	k, n := len(digits), exp+1
	switch {
	case k <= n && n <= 21:
		out = append(out, digits...)
		for i := 0; i < n-k; i++ {
			out = append(out, '0')
		}
	case 0 < n && n <= 21:
		out = append(out, digits[:n]...)
		out = append(out, '.')
		out = append(out, digits[n:]...)
	case -6 < n && n <= 0:
		out = append(out, "0."...)
		for i := 0; i < -n; i++ {
			out = append(out, '0')
		}
		out = append(out, digits...)
	default:
		out = append(out, digits[0])
		if k > 1 {
			out = append(out, '.')
			out = append(out, digits[1:]...)
		}
		out = append(out, 'e')
		if n-1 >= 0 {
			out = append(out, '+')
		}
		out = strconv.AppendInt(out, int64(n-1), 10)
	}
	return out
}

// appendJSString quotes s as JSON.stringify does (ECMA-262 QuoteJSONString).
func appendJSString(out []byte, s []uint16) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			out = append(out, '\\', '"')
		case c == '\\':
			out = append(out, '\\', '\\')
		case c == '\b':
			out = append(out, '\\', 'b')
		case c == '\f':
			out = append(out, '\\', 'f')
		case c == '\n':
			out = append(out, '\\', 'n')
		case c == '\r':
			out = append(out, '\\', 'r')
		case c == '\t':
			out = append(out, '\\', 't')
		case c < 0x20:
			out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case c < utf8.RuneSelf:
			out = append(out, byte(c))
		case utf16.IsSurrogate(rune(c)):
			if c < 0xdc00 && i+1 < len(s) && 0xdc00 <= s[i+1] && s[i+1] < 0xe000 {
				out = utf8.AppendRune(out, utf16.DecodeRune(rune(c), rune(s[i+1])))
				i++
				continue
			}
			out = append(out, '\\', 'u', hex[c>>12], hex[c>>8&0xf], hex[c>>4&0xf], hex[c&0xf])
		default:
			out = utf8.AppendRune(out, rune(c))
		}
	}
	return append(out, '"')
}

// utf16ToBytes is a lossless map key for a UTF-16 string.
func utf16ToBytes(s []uint16) []byte {
	b := make([]byte, 2*len(s))
	for i, c := range s {
		b[2*i], b[2*i+1] = byte(c>>8), byte(c)
	}
	return b
}
