package jws

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func joseKey(cfg Config, private bool) any {
	if cfg.Secret != nil {
		return cfg.Secret
	}
	if private {
		return cfg.PrivateKey
	}
	return cfg.PublicKey
}

// TestRoundTripAndGoJose signs with this package and verifies with
// go-jose (an independent implementation), and the reverse, for every
// algorithm, in the compact and detached formats.
func TestRoundTripAndGoJose(t *testing.T) {
	body := []byte(`{"hello":"world","n":1}`)
	for _, alg := range Algorithms() {
		t.Run(alg, func(t *testing.T) {
			jalg := []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)}
			for _, format := range []Format{FormatCompact, FormatDetached} {
				cfg := keyConfig(alg, format)
				cfg.Extra = map[string]any{"kid": "test-key"}
				s, err := NewSigner(cfg)
				if err != nil {
					t.Fatal(err)
				}
				value, out, err := s.Sign(Message{Body: body})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out, body) {
					t.Fatalf("%s changed the body", format)
				}
				vcfg := cfg
				vcfg.PrivateKey = nil
				if _, err := mustVerifier(t, vcfg).Verify(Message{HeaderValue: value, Body: body}); err != nil {
					t.Fatalf("%s: own signature: %v", format, err)
				}
				var obj *jose.JSONWebSignature
				if format == FormatCompact {
					obj, err = jose.ParseSigned(value, jalg)
					if err == nil {
						var got []byte
						got, err = obj.Verify(joseKey(cfg, false))
						if err == nil && !bytes.Equal(got, body) {
							t.Errorf("go-jose payload %q", got)
						}
					}
				} else {
					obj, err = jose.ParseDetached(value, body, jalg)
					if err == nil {
						err = obj.DetachedVerify(body, joseKey(cfg, false))
					}
				}
				if err != nil {
					t.Fatalf("%s: go-jose refuses our signature: %v", format, err)
				}
			}
			// go-jose signs, we verify.
			cfg := keyConfig(alg, FormatCompact)
			js, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: joseKey(cfg, true)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			obj, err := js.Sign(body)
			if err != nil {
				t.Fatal(err)
			}
			compact, _ := obj.CompactSerialize()
			cfg.PrivateKey = nil
			if _, err := mustVerifier(t, cfg).Verify(Message{HeaderValue: compact, Body: body}); err != nil {
				t.Fatalf("go-jose's signature: %v", err)
			}
			detached, _ := obj.DetachedCompactSerialize()
			cfg.Format = FormatDetached
			if _, err := mustVerifier(t, cfg).Verify(Message{HeaderValue: detached, Body: body}); err != nil {
				t.Fatalf("go-jose's detached signature: %v", err)
			}
		})
	}
}

func TestUnencodedDetached(t *testing.T) {
	cfg := keyConfig("PS256", FormatDetached)
	cfg.Unencoded = true
	s, err := NewSigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("$.02 with dots. and spaces")
	value, _, err := s.Sign(Message{Body: body})
	if err != nil {
		t.Fatal(err)
	}
	cfg.PrivateKey = nil
	res, err := mustVerifier(t, cfg).Verify(Message{HeaderValue: value, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Unencoded || !strings.Contains(res.Protected, `"crit":["b64"]`) {
		t.Errorf("result %+v", res)
	}
	// go-jose verifies RFC 7797 detached signatures too.
	obj, err := jose.ParseDetached(value, body, []jose.SignatureAlgorithm{jose.PS256})
	if err != nil {
		t.Fatal(err)
	}
	if err := obj.DetachedVerify(body, cfg.PublicKey); err != nil {
		t.Fatalf("go-jose: %v", err)
	}
}

func TestHeaderRulesDetached(t *testing.T) {
	cfg := keyConfig("ES256", FormatDetached)
	cfg.ProtectedHeaders = []string{"x-idempotency-key", "Digest"}
	s, err := NewSigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("X-Idempotency-Key", "abc")
	h.Add("Digest", "a")
	h.Add("Digest", "b")
	body := []byte("{\n  \"a\": 1\n}")
	value, _, err := s.Sign(Message{Body: body, Headers: h})
	if err != nil {
		t.Fatal(err)
	}
	cfg.PrivateKey = nil
	v := mustVerifier(t, cfg)
	res, err := v.Verify(Message{HeaderValue: value, Body: body, Headers: h})
	if err != nil {
		t.Fatal(err)
	}
	if res.SignedHeaders["x-idempotency-key"] != "abc" || res.SignedHeaders["Digest"] != "a, b" {
		t.Errorf("signed headers %v", res.SignedHeaders)
	}
	// The body sent compacted after signing the indented form.
	_, err = v.Verify(Message{HeaderValue: value, Body: []byte(`{"a":1}`), Headers: h})
	if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "indented JSON") {
		t.Errorf("re-serialised body: %v", err)
	}
	// A signed header changed in case only in its name still matches.
	h2 := http.Header{}
	h2.Set("x-IDEMPOTENCY-key", "abc")
	h2["Digest"] = []string{"a", "b"}
	if _, err := v.Verify(Message{HeaderValue: value, Body: body, Headers: h2}); err != nil {
		t.Errorf("header name case: %v", err)
	}
	h2.Set("X-Idempotency-Key", "ABC")
	_, err = v.Verify(Message{HeaderValue: value, Body: body, Headers: h2})
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Expected != "abc" || ve.Actual != "ABC" {
		t.Errorf("value case: %v", err)
	}
}

func TestCompactPayloadMustBeBody(t *testing.T) {
	cfg := keyConfig("EdDSA", FormatCompact)
	s, _ := NewSigner(cfg)
	value, _, _ := s.Sign(Message{Body: []byte("one")})
	cfg.PrivateKey = nil
	_, err := mustVerifier(t, cfg).Verify(Message{HeaderValue: value, Body: []byte("two")})
	if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "not the 3-byte body") {
		t.Fatalf("got %v", err)
	}
	cfg.StandalonePayload = true
	res, err := mustVerifier(t, cfg).Verify(Message{HeaderValue: value, Body: []byte("two")})
	if err != nil || string(res.Payload) != "one" {
		t.Fatalf("standalone: %v %q", err, res.Payload)
	}
}
