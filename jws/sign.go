package jws

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/textproto"
	"sort"
)

// Signer signs messages for a simulated component. It is safe for
// concurrent use.
type Signer struct{ c *core }

// NewSigner validates cfg and returns a Signer. RS*, PS*, ES* and EdDSA
// need a PrivateKey of the matching type (and, when PublicKey is also set,
// the two must be a pair); HS* needs a Secret.
func NewSigner(cfg Config) (*Signer, error) {
	c, err := newCore(cfg)
	if err != nil {
		return nil, err
	}
	if c.alg.family == famHMAC {
		if cfg.PrivateKey != nil || cfg.PublicKey != nil {
			return nil, configErr("private_key", "%s takes a shared secret, not a key pair", c.alg.name)
		}
		if err := c.checkSecret(cfg.Secret); err != nil {
			return nil, err
		}
		return &Signer{c: c}, nil
	}
	if cfg.PrivateKey == nil {
		return nil, configErr("private_key", "signing with %s needs a private key", c.alg.name)
	}
	if len(cfg.Secret) > 0 {
		return nil, configErr("secret", "a shared secret is only used with HS256, HS384 and HS512, not %s", c.alg.name)
	}
	if err := keyFitsAlg(cfg.PrivateKey.Public(), c.alg); err != nil {
		return nil, &ConfigError{Field: "private_key", Err: fmt.Errorf("private key: %w", err)}
	}
	if cfg.PublicKey != nil {
		if ok, _, reason := CheckKeyPair(cfg.PrivateKey, cfg.PublicKey); !ok {
			return nil, configErr("private_key", "the private key does not match the public key: %s", reason)
		}
	}
	c.priv = cfg.PrivateKey
	c.pub = cfg.PrivateKey.Public()
	return &Signer{c: c}, nil
}

// Sign signs msg and returns the signature header value and the body to
// send, which is the body the signature covers.
//
// In the mojaloop format a JSON body is re-serialised in the form Mojaloop's
// validator recomputes (see Canonicalize) and that is what is signed and
// must be sent (update Content-Length); a body that is not JSON is signed as
// it is. The protected header holds alg, FSPIOP-URI and FSPIOP-HTTP-Method
// (from msg.URI and msg.Method when set, which are then also set on
// msg.Headers so the HTTP headers agree), FSPIOP-Source, and the configured
// protected headers present on the message. msg.Headers must not be nil.
//
// In the compact and detached formats the body is returned unchanged and
// the protected header holds alg, the configured protected headers present
// on the message, Config.Extra, and for detached with Config.Unencoded
// b64 false with crit ["b64"].
func (s *Signer) Sign(msg Message) (headerValue string, body []byte, err error) {
	c := s.c
	body = msg.Body
	var members []member
	members = append(members, member{"alg", c.alg.name})
	done := map[string]bool{}
	if c.format == FormatMojaloop {
		if msg.Headers == nil {
			return "", nil, fmt.Errorf("jws: signing in the mojaloop format needs the message's headers")
		}
		if msg.URI != "" {
			msg.Headers.Set(HeaderFSPIOPURI, msg.URI)
		}
		if msg.Method != "" {
			msg.Headers.Set(HeaderFSPIOPHTTPMethod, msg.Method)
		}
		for _, name := range mojaloopRequired {
			v, ok := httpValue(msg.Headers, name)
			if !ok {
				return "", nil, fmt.Errorf("jws: signing in the mojaloop format needs the %s header", name)
			}
			members = append(members, member{name, v})
			done[textproto.CanonicalMIMEHeaderKey(name)] = true
		}
		canon, err := Canonicalize(body)
		switch {
		case err == nil:
			body = canon
		case !errors.Is(err, ErrNotJSON):
			return "", nil, fmt.Errorf("jws: %w", err)
		}
	}
	for _, name := range c.protected {
		canon := textproto.CanonicalMIMEHeaderKey(name)
		if done[canon] {
			continue
		}
		if v, ok := httpValue(msg.Headers, name); ok {
			members = append(members, member{name, v})
			done[canon] = true
		}
	}
	var crit []string
	extra := make([]string, 0, len(c.extra))
	for name := range c.extra {
		extra = append(extra, name)
	}
	sort.Strings(extra)
	for _, name := range extra {
		members = append(members, member{name, c.extra[name]})
		if _, ok := c.crit[name]; ok {
			crit = append(crit, name)
		}
	}
	unencoded := c.format == FormatDetached && c.unencoded
	if unencoded {
		members = append(members, member{"b64", false})
		crit = append([]string{"b64"}, crit...)
	}
	if len(crit) > 0 {
		members = append(members, member{"crit", crit})
	}
	hdr, err := encodeMembers(members)
	if err != nil {
		return "", nil, fmt.Errorf("jws: encoding the protected header: %w", err)
	}
	protected := encodeSegment(hdr)
	sig, err := c.sign(signingInput(protected, body, !unencoded))
	if err != nil {
		return "", nil, fmt.Errorf("jws: signing with %s: %w", c.alg.name, err)
	}
	switch c.format {
	case FormatMojaloop:
		// Member order as the SDK writes it (safe-stable-stringify sorts).
		out, err := encodeMembers([]member{{"protectedHeader", protected}, {"signature", encodeSegment(sig)}})
		if err != nil {
			return "", nil, fmt.Errorf("jws: %w", err)
		}
		return string(out), body, nil
	case FormatDetached:
		return protected + ".." + encodeSegment(sig), body, nil
	default:
		return protected + "." + encodeSegment(body) + "." + encodeSegment(sig), body, nil
	}
}

type member struct {
	name  string
	value any
}

// encodeMembers writes a JSON object with members in the given order,
// without escaping <, > and &.
func encodeMembers(ms []member) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := writeJSON(&buf, m.name); err != nil {
			return nil, err
		}
		buf.WriteByte(':')
		if err := writeJSON(&buf, m.value); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func writeJSON(buf *bytes.Buffer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.Write(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
	return nil
}
