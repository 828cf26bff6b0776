package jws

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Message is an HTTP message to verify or sign, as the proxy sees it.
type Message struct {
	// HeaderValue is the signature header's value (for example
	// FSPIOP-Signature). Ignored by Sign.
	HeaderValue string
	// Body is the message body, byte for byte as sent on the wire.
	Body []byte
	// Headers are the message's HTTP headers.
	Headers http.Header
	// Method and URI are the request the platform actually forwards (the
	// path after any session prefix, with its query). For the mojaloop
	// format, the signed FSPIOP-HTTP-Method and FSPIOP-URI must equal
	// them; leave them empty only when there is no request to compare
	// with (a response). Sign uses them for the signed values.
	Method, URI string
}

// Result describes a verified signature.
type Result struct {
	// Alg is the verified algorithm.
	Alg string
	// Protected is the decoded protected header, as received.
	Protected string
	// Params are the protected header parameters.
	Params map[string]json.RawMessage
	// Payload is the signed payload: the body, or for the compact format
	// the token's payload.
	Payload []byte
	// Unencoded reports an RFC 7797 unencoded payload (b64 false).
	Unencoded bool
	// SignedHeaders maps each HTTP header named in the protected header
	// (spelt as there) to its signed value; each equalled the message's.
	SignedHeaders map[string]string
}

// Verifier verifies signatures of one configured format, algorithm and key.
// It is safe for concurrent use.
type Verifier struct{ c *core }

// NewVerifier validates cfg and returns a Verifier. The algorithm and the
// key must agree: RS*/PS* an RSA key of at least 2048 bits, ES256/384/512
// an ECDSA key on P-256/P-384/P-521, EdDSA an Ed25519 key, HS* a Secret
// and no public key.
func NewVerifier(cfg Config) (*Verifier, error) {
	c, err := newCore(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.checkVerifyKey(cfg.PublicKey, cfg.Secret); err != nil {
		return nil, err
	}
	return &Verifier{c: c}, nil
}

// Verify checks msg's signature. On failure the error is a *VerifyError;
// the Result is returned too whenever the protected header could be
// decoded, so the caller can log it.
func (v *Verifier) Verify(msg Message) (*Result, error) {
	res, e := v.c.verify(msg)
	if e != nil {
		return res, e
	}
	return res, nil
}

func (c *core) verify(msg Message) (*Result, *VerifyError) {
	if msg.HeaderValue == "" {
		return nil, verr(ErrMissing, "the message has no signature (the signature header is absent or empty)")
	}
	if len(msg.HeaderValue) > c.maxHeader {
		return nil, verr(ErrMalformed, fmt.Sprintf("the signature header is %d bytes, more than the limit of %d", len(msg.HeaderValue), c.maxHeader))
	}
	w, e := c.parseWire(msg.HeaderValue)
	if e != nil {
		return nil, e
	}
	h, e := c.decodeHeader(w.protected)
	if e != nil {
		return nil, e
	}
	res := &Result{Alg: h.alg, Protected: string(h.raw), Params: h.params, Unencoded: !h.b64}
	fail := func(kind error, reason string) (*Result, *VerifyError) {
		e := verr(kind, reason)
		e.Protected = res.Protected
		return res, e
	}

	var input []byte
	if c.format == FormatCompact {
		if h.b64 {
			p, err := decodeSegment("the payload", w.payload)
			if err != nil {
				return fail(ErrMalformed, err.Error())
			}
			res.Payload = p
		} else {
			res.Payload = []byte(w.payload)
		}
		input = []byte(w.protected + "." + w.payload)
	} else {
		res.Payload = msg.Body
		input = signingInput(w.protected, msg.Body, h.b64)
	}
	sig, err := decodeSegment("the signature", w.signature)
	if err != nil {
		return fail(ErrMalformed, err.Error())
	}
	if err := c.verifySig(input, sig); err != nil {
		if !errors.Is(err, errBadSig) {
			return fail(ErrSignature, err.Error())
		}
		if c.format == FormatCompact {
			return fail(ErrSignature, fmt.Sprintf("the %s signature does not verify with the configured key", c.alg.name))
		}
		reason := fmt.Sprintf("the %s signature does not verify with the configured key over the %d body bytes received", c.alg.name, len(msg.Body))
		return fail(ErrSignature, reason+c.reserialisedHint(w.protected, msg.Body, h.b64, sig))
	}
	if c.format == FormatCompact && !c.alone && !bytes.Equal(res.Payload, msg.Body) {
		return fail(ErrSignature, fmt.Sprintf("the compact JWS is validly signed but its %d-byte payload is not the %d-byte body received", len(res.Payload), len(msg.Body)))
	}
	signed, e := c.checkHTTP(h, msg)
	if e != nil {
		e.Protected = res.Protected
		return res, e
	}
	res.SignedHeaders = signed
	return res, nil
}

// signingInput is ASCII(protected) || '.' || payload (RFC 7515 §5.1,
// RFC 7797 §3 when unencoded).
func signingInput(protected string, body []byte, b64 bool) []byte {
	var pl string
	if b64 {
		pl = encodeSegment(body)
	} else {
		pl = string(body)
	}
	out := make([]byte, 0, len(protected)+1+len(pl))
	out = append(out, protected...)
	out = append(out, '.')
	return append(out, pl...)
}

// reserialisedHint looks for the commonest interop bug: a sender that
// signs one serialisation of a JSON body and sends another. It is only run
// after the signature failed over the bytes received, and only reports;
// such a message never verifies.
func (c *core) reserialisedHint(protected string, body []byte, b64 bool, sig []byte) string {
	if len(body) == 0 || !json.Valid(body) {
		return ""
	}
	forms := []struct {
		name string
		fn   func([]byte) ([]byte, error)
	}{
		{"safe-stable-stringify canonical JSON (sorted keys, compact, as Mojaloop's validator re-serialises it)", Canonicalize},
		{"compact JSON (whitespace removed, member order kept)", func(b []byte) ([]byte, error) {
			var buf bytes.Buffer
			err := json.Compact(&buf, b)
			return buf.Bytes(), err
		}},
		{"Go encoding/json output (sorted keys, <, > and & escaped)", func(b []byte) ([]byte, error) {
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				return nil, err
			}
			return json.Marshal(v)
		}},
		{"indented JSON (two spaces)", func(b []byte) ([]byte, error) {
			var buf bytes.Buffer
			err := json.Indent(&buf, b, "", "  ")
			return buf.Bytes(), err
		}},
	}
	for _, f := range forms {
		alt, err := f.fn(body)
		if err != nil || bytes.Equal(alt, body) {
			continue
		}
		if c.verifySig(signingInput(protected, alt, b64), sig) == nil {
			return fmt.Sprintf("; it does verify over the body re-serialised as %s, so the sender signed a different serialisation of the JSON than the bytes it sent", f.name)
		}
	}
	return ""
}
