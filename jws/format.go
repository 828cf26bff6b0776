package jws

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// wire is a signature split into its parts, still base64url-encoded.
type wire struct {
	protected string
	payload   string // compact format only
	signature string
}

// parseWire splits a header value of the configured format. Its input is
// already bounded by MaxHeaderBytes.
func (c *core) parseWire(v string) (*wire, *VerifyError) {
	switch c.format {
	case FormatMojaloop:
		return parseMojaloop(v)
	case FormatDetached:
		w, err := splitCompact(v, "a detached JWS (header..signature)")
		if err != nil {
			return nil, err
		}
		if w.payload != "" {
			return nil, verr(ErrMalformed, fmt.Sprintf("a detached JWS has an empty middle segment (header..signature) because the body is the payload, but this one carries a %d-byte payload", len(w.payload)))
		}
		return w, nil
	default:
		return splitCompact(v, "a compact JWS (header.payload.signature)")
	}
}

func splitCompact(v, what string) (*wire, *VerifyError) {
	if strings.HasPrefix(strings.TrimLeft(v, " \t"), "{") {
		if strings.Contains(v, `"signatures"`) {
			return nil, verr(ErrMalformed, fmt.Sprintf("the header holds a JWS JSON serialization with several signatures where %s is expected", what))
		}
		return nil, verr(ErrMalformed, fmt.Sprintf("the header holds a JWS JSON serialization where %s is expected", what))
	}
	if n := strings.Count(v, "."); n != 2 {
		return nil, verr(ErrMalformed, fmt.Sprintf("expected %s with exactly 3 dot-separated segments, got %d", what, n+1))
	}
	i := strings.IndexByte(v, '.')
	j := i + 1 + strings.IndexByte(v[i+1:], '.')
	w := &wire{protected: v[:i], payload: v[i+1 : j], signature: v[j+1:]}
	if w.protected == "" {
		return nil, verr(ErrMalformed, "the protected header segment is empty")
	}
	if w.signature == "" {
		return nil, verr(ErrMalformed, "the signature segment is empty (signature stripped?)")
	}
	return w, nil
}

// parseMojaloop parses {"signature": ..., "protectedHeader": ...}. Member
// names are exact (encoding/json alone would match them case-insensitively)
// and every other member is refused, so that no unprotected header can
// slip in.
func parseMojaloop(v string) (*wire, *VerifyError) {
	if !strings.HasPrefix(strings.TrimLeft(v, " \t"), "{") {
		return nil, verr(ErrMalformed, `the mojaloop signature header must be a JSON object {"signature": ..., "protectedHeader": ...}`)
	}
	m, err := parseObject("the mojaloop signature object", []byte(v))
	if err != nil {
		return nil, verr(ErrMalformed, err.Error())
	}
	var extra []string
	for k := range m {
		if k != "signature" && k != "protectedHeader" {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		for _, k := range extra {
			switch k {
			case "header":
				return nil, verr(ErrHeader, `the mojaloop signature object has an unprotected "header" member; only protected header parameters are accepted`)
			case "signatures":
				return nil, verr(ErrMalformed, `the mojaloop signature object has a "signatures" array where one signature is expected`)
			}
		}
		return nil, verr(ErrMalformed, fmt.Sprintf("the mojaloop signature object has unexpected member(s) %s; only signature and protectedHeader are allowed", strings.Join(quoteAll(extra), ", ")))
	}
	w := &wire{}
	for name, dst := range map[string]*string{"signature": &w.signature, "protectedHeader": &w.protected} {
		raw, ok := m[name]
		if !ok {
			return nil, verr(ErrMalformed, fmt.Sprintf("the mojaloop signature object has no %q member", name))
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return nil, verr(ErrMalformed, fmt.Sprintf("the mojaloop signature object's %q is not a string", name))
		}
		if *dst == "" {
			return nil, verr(ErrMalformed, fmt.Sprintf("the mojaloop signature object's %q is empty", name))
		}
	}
	return w, nil
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}
