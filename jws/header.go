package jws

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting in the JSON this package parses from headers.
const maxJSONDepth = 32

// header is a decoded protected header.
type header struct {
	raw     []byte                     // the decoded JSON text, as received
	params  map[string]json.RawMessage // exact (case-sensitive) names
	alg     string
	b64     bool     // true unless b64 is false
	critSet []string // crit names, in order
}

// parseObject decodes a JSON object strictly: valid UTF-8, no duplicate
// member names at any level, nothing after the object. encoding/json alone
// keeps the last duplicate and ignores invalid UTF-8, which would let two
// parties read the same header differently.
func parseObject(what string, data []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%s is not valid UTF-8", what)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %v", what, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%s is not a JSON object", what)
	}
	if err := walkObject(what, dec, 1); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s has data after the JSON object", what)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %v", what, err)
	}
	return m, nil
}

// walkObject consumes an object whose '{' was read, refusing duplicates.
func walkObject(what string, dec *json.Decoder, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("%s nests deeper than %d levels", what, maxJSONDepth)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s is not valid JSON: %v", what, err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%s is not valid JSON", what)
		}
		if seen[key] {
			return fmt.Errorf("%s has the member %q twice", what, key)
		}
		seen[key] = true
		if err := walkValue(what, dec, depth); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return fmt.Errorf("%s is not valid JSON: %v", what, err)
	}
	return nil
}

func walkValue(what string, dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%s is not valid JSON: %v", what, err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		return walkObject(what, dec, depth+1)
	case '[':
		if depth+1 > maxJSONDepth {
			return fmt.Errorf("%s nests deeper than %d levels", what, maxJSONDepth)
		}
		for dec.More() {
			if err := walkValue(what, dec, depth+1); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // ']'
			return fmt.Errorf("%s is not valid JSON: %v", what, err)
		}
	}
	return nil
}

// decodeHeader decodes and checks a protected header segment against the
// JOSE rules; HTTP header rules are checked after the signature.
func (c *core) decodeHeader(seg string) (*header, *VerifyError) {
	if seg == "" {
		return nil, verr(ErrMalformed, "the protected header is empty")
	}
	raw, err := decodeSegment("the protected header", seg)
	if err != nil {
		return nil, verr(ErrMalformed, err.Error())
	}
	if !utf8.Valid(raw) {
		return nil, verr(ErrMalformed, "the protected header is not valid UTF-8 (RFC 7515 requires UTF-8; a signer that encodes header values as Latin-1, as the node jws package does for non-ASCII values, produces this)")
	}
	params, err := parseObject("the protected header", raw)
	if err != nil {
		return nil, verr(ErrMalformed, err.Error())
	}
	h := &header{raw: raw, params: params, b64: true}
	fail := func(kind error, format string, a ...any) (*header, *VerifyError) {
		e := verr(kind, fmt.Sprintf(format, a...))
		e.Protected = string(raw)
		return nil, e
	}

	algRaw, ok := params["alg"]
	if !ok {
		return fail(ErrAlgorithm, "the protected header has no alg; %s is required", c.alg.name)
	}
	if err := json.Unmarshal(algRaw, &h.alg); err != nil {
		return fail(ErrAlgorithm, "the protected header's alg is not a string: %s", algRaw)
	}
	if strings.EqualFold(h.alg, "none") {
		e := verr(ErrAlgorithm, fmt.Sprintf("alg %q (unsigned) is never accepted; %s is required", h.alg, c.alg.name))
		e.Protected, e.Expected, e.Actual = string(raw), c.alg.name, h.alg
		return nil, e
	}
	if h.alg != c.alg.name {
		e := verr(ErrAlgorithm, fmt.Sprintf("the token says alg %q but this rule requires %s; the algorithm is fixed by the configuration, never taken from the token", h.alg, c.alg.name))
		e.Protected, e.Expected, e.Actual = string(raw), c.alg.name, h.alg
		return nil, e
	}
	// Keys and key locations in the message never choose the key: refusing
	// them (rather than ignoring them) tells the sender plainly that the
	// platform verifies with the configured key only and never fetches.
	for _, name := range []string{"jwk", "jku", "x5u", "x5c"} {
		if _, ok := params[name]; ok {
			return fail(ErrHeader, "the protected header carries %s; keys are never taken from or fetched for a message, only the configured key is used", name)
		}
	}
	if b, ok := params["b64"]; ok {
		var v bool
		if err := json.Unmarshal(b, &v); err != nil || (string(b) != "true" && string(b) != "false") {
			return fail(ErrHeader, "b64 must be the JSON boolean true or false, not %s", b)
		}
		h.b64 = v
	}
	if cr, ok := params["crit"]; ok {
		var names []any
		if err := json.Unmarshal(cr, &names); err != nil {
			return fail(ErrHeader, "crit must be a JSON array of header parameter names, not %s", cr)
		}
		if len(names) == 0 {
			return fail(ErrHeader, "crit is an empty array, which RFC 7515 §4.1.11 forbids")
		}
		seen := map[string]bool{}
		for _, n := range names {
			name, ok := n.(string)
			if !ok || name == "" {
				return fail(ErrHeader, "crit lists %v, which is not a header parameter name", n)
			}
			if seen[name] {
				return fail(ErrHeader, "crit lists %q twice", name)
			}
			seen[name] = true
			if registered[name] && name != "b64" {
				return fail(ErrHeader, "crit lists %q, a parameter defined by RFC 7515 that must not be critical", name)
			}
			if _, present := params[name]; !present {
				return fail(ErrHeader, "crit lists %q, but the protected header has no %q", name, name)
			}
			if _, understood := c.crit[name]; name != "b64" && !understood {
				return fail(ErrHeader, "crit lists %q, which this rule does not understand (configure it as an understood crit name to accept it)", name)
			}
			h.critSet = append(h.critSet, name)
		}
	}
	if !h.b64 && !h.critHas("b64") {
		return fail(ErrHeader, `b64 is false but crit does not list "b64", as RFC 7797 §6 requires`)
	}
	if !h.b64 && c.format == FormatMojaloop {
		return fail(ErrHeader, "b64 false (unencoded payload) is not part of the mojaloop format")
	}
	for name, want := range c.crit {
		got, ok := params[name]
		if !ok || want == "" {
			continue
		}
		if have := paramText(got); have != want {
			e := verr(ErrHeader, fmt.Sprintf("header parameter %q is %s; this rule expects %s", name, have, want))
			e.Protected, e.Expected, e.Actual = string(raw), want, have
			return nil, e
		}
	}
	return h, nil
}

func (h *header) critHas(name string) bool {
	for _, n := range h.critSet {
		if n == name {
			return true
		}
	}
	return false
}

// paramText is a parameter's string value, or its compact JSON text.
func paramText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		return buf.String()
	}
	return string(raw)
}
