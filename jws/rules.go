package jws

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/textproto"
	"sort"
	"strings"
)

// The Mojaloop header names, spelt as Mojaloop's validator looks them up
// in the protected header (case-sensitively).
const (
	HeaderFSPIOPURI         = "FSPIOP-URI"
	HeaderFSPIOPHTTPMethod  = "FSPIOP-HTTP-Method"
	HeaderFSPIOPSource      = "FSPIOP-Source"
	HeaderFSPIOPDestination = "FSPIOP-Destination"
)

var mojaloopRequired = []string{HeaderFSPIOPURI, HeaderFSPIOPHTTPMethod, HeaderFSPIOPSource}

// httpValue is the value of an HTTP header as signed: its field values
// joined with ", " (RFC 9110 §5.3), and whether it is present at all.
func httpValue(hdr http.Header, name string) (string, bool) {
	vals := hdr.Values(name)
	if len(vals) == 0 {
		return "", false
	}
	return strings.Join(vals, ", "), true
}

// checkHTTP applies DESIGN.md §3: every HTTP header named in the protected
// header equals the message's; every configured protected header present
// on the message is signed; the Mojaloop rules. A protected header
// parameter names an HTTP header when it is a string, a valid HTTP field
// name, and neither a JOSE parameter nor a configured crit name.
func (c *core) checkHTTP(h *header, msg Message) (map[string]string, *VerifyError) {
	signed := map[string]string{}
	byCanon := map[string]string{} // canonical name -> name as spelt
	names := make([]string, 0, len(h.params))
	for name := range h.params {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if registered[name] || !isToken(name) {
			continue
		}
		if _, ok := c.crit[name]; ok {
			continue
		}
		var val string
		if json.Unmarshal(h.params[name], &val) != nil {
			continue // not a string: not an HTTP header value
		}
		canon := textproto.CanonicalMIMEHeaderKey(name)
		if prev, dup := byCanon[canon]; dup {
			return nil, verr(ErrHeader, fmt.Sprintf("the protected header names the HTTP header %s twice (%q and %q)", canon, prev, name))
		}
		byCanon[canon] = name
		signed[name] = val
	}
	for _, name := range names {
		want, ok := signed[name]
		if !ok {
			continue
		}
		got, present := httpValue(msg.Headers, name)
		if !present {
			e := verr(ErrHTTPHeader, fmt.Sprintf("the signed header %s is absent from the HTTP message", name))
			e.Expected = want
			return nil, e
		}
		if got != want {
			e := verr(ErrHTTPHeader, fmt.Sprintf("the HTTP header %s is %q but the signed value is %q", name, got, want))
			e.Expected, e.Actual = want, got
			return nil, e
		}
	}
	for _, name := range c.protected {
		if _, present := httpValue(msg.Headers, name); !present {
			continue
		}
		if _, ok := byCanon[textproto.CanonicalMIMEHeaderKey(name)]; !ok {
			return nil, verr(ErrHTTPHeader, fmt.Sprintf("the HTTP header %s is on the message but not in the protected header; this rule requires it to be signed", name))
		}
	}
	if c.format != FormatMojaloop {
		return signed, nil
	}
	for _, name := range mojaloopRequired {
		if _, ok := signed[name]; ok {
			continue
		}
		if other, ok := byCanon[textproto.CanonicalMIMEHeaderKey(name)]; ok {
			return nil, verr(ErrHTTPHeader, fmt.Sprintf("the protected header spells %q as %q; Mojaloop looks it up case-sensitively", name, other))
		}
		return nil, verr(ErrHTTPHeader, fmt.Sprintf("the protected header has no %s, which the mojaloop format requires", name))
	}
	if msg.URI != "" && signed[HeaderFSPIOPURI] != msg.URI {
		e := verr(ErrHTTPHeader, fmt.Sprintf("the signed FSPIOP-URI %q is not the forwarded request's URI %q", signed[HeaderFSPIOPURI], msg.URI))
		e.Expected, e.Actual = msg.URI, signed[HeaderFSPIOPURI]
		return nil, e
	}
	if msg.Method != "" && signed[HeaderFSPIOPHTTPMethod] != msg.Method {
		e := verr(ErrHTTPHeader, fmt.Sprintf("the signed FSPIOP-HTTP-Method %q is not the forwarded request's method %q", signed[HeaderFSPIOPHTTPMethod], msg.Method))
		e.Expected, e.Actual = msg.Method, signed[HeaderFSPIOPHTTPMethod]
		return nil, e
	}
	return signed, nil
}
