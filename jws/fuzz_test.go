package jws

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

// Each parser gets a fuzz test: none may panic, every failure must be a
// *VerifyError, and accepted input must satisfy the parser's contract.

func fuzzVerify(f *testing.F, format Format, seeds ...string) {
	cfg := keyConfig("HS256", format)
	s, err := NewSigner(cfg)
	if err != nil {
		f.Fatal(err)
	}
	good, _, err := s.Sign(Message{Body: []byte(`{"a":1}`), Headers: mojaloopHeaders()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, []byte(`{"a":1}`))
	for _, seed := range seeds {
		f.Add(seed, []byte(`{"a":1}`))
	}
	v := mustVerifier(f, cfg)
	f.Fuzz(func(t *testing.T, value string, body []byte) {
		res, err := v.Verify(Message{HeaderValue: value, Body: body, Headers: mojaloopHeaders()})
		if err != nil {
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Reason == "" || ve.Kind == nil {
				t.Fatalf("not a proper *VerifyError: %#v", err)
			}
			return
		}
		if res.Alg != "HS256" {
			t.Fatalf("accepted alg %q", res.Alg)
		}
	})
}

func mojaloopHeaders() map[string][]string {
	return map[string][]string{"Fspiop-Source": {"payer"}, "Fspiop-Uri": {"/quotes"}, "Fspiop-Http-Method": {"POST"}}
}

func FuzzVerifyCompact(f *testing.F) {
	fuzzVerify(f, FormatCompact, "a.b.c", "..", "eyJhbGciOiJub25lIn0.e30.", "{}", "....")
}

func FuzzVerifyDetached(f *testing.F) {
	fuzzVerify(f, FormatDetached, "a..c", "eyJhbGciOiJIUzI1NiIsImI2NCI6ZmFsc2UsImNyaXQiOlsiYjY0Il19..AAAA")
}

func FuzzVerifyMojaloop(f *testing.F) {
	fuzzVerify(f, FormatMojaloop, `{"signature":"a","protectedHeader":"b"}`, `{"signature":"a","signature":"b"}`, `[]`, `{"header":{}}`)
}

func FuzzProtectedHeader(f *testing.F) {
	for _, s := range []string{`{"alg":"HS256"}`, `{"alg":"HS256","b64":false,"crit":["b64"]}`, `{"alg":"HS256","crit":[]}`, `{"alg":"HS256","alg":"x"}`, `{"alg":"HS256","x":[[[{}]]]}`} {
		f.Add([]byte(s))
	}
	c, _ := newCore(Config{Format: FormatDetached, Alg: "HS256", Crit: map[string]string{"urn:x": "1"}})
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, e := c.decodeHeader(encodeSegment(raw))
		if e != nil {
			return
		}
		if h.alg != "HS256" {
			t.Fatalf("alg %q accepted", h.alg)
		}
		for _, k := range []string{"jwk", "jku", "x5u", "x5c"} {
			if _, ok := h.params[k]; ok {
				t.Fatalf("%s accepted", k)
			}
		}
		if !h.b64 && !h.critHas("b64") {
			t.Fatal("b64 false without crit accepted")
		}
		// encoding/json must read the same object (no duplicates slipped by).
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil || len(m) != len(h.params) {
			t.Fatal("ambiguous header accepted")
		}
	})
}

func FuzzDecodeSegment(f *testing.F) {
	for _, s := range []string{"", "AA", "AAA", "AAAA", "A", "AB", "AA==", "A\nA", "-_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := decodeSegment("x", s)
		if err != nil {
			return
		}
		if encodeSegment(b) != s {
			t.Fatalf("non-canonical %q accepted", s)
		}
	})
}

func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[1.0,1e21,"<&>"]}`, `"\ud800"`, `-0`, `{"a":1,"a":2}`, `[[[]]]`, `1e400`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Canonicalize(data)
		if err != nil {
			if json.Valid(data) && utf8.Valid(data) && !errors.Is(err, ErrTooDeep) {
				t.Fatalf("valid JSON refused: %v", err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid output %q", out)
		}
		again, err := Canonicalize(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q", out, again)
		}
	})
}

func FuzzParseKeyPEM(f *testing.F) {
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if pub, err := ParsePublicKeyPEM(data); err == nil && KeyType(pub) == "" {
			t.Fatal("empty key type")
		}
		if priv, err := ParsePrivateKeyPEM(data); err == nil && priv.Public() == nil {
			t.Fatal("no public half")
		}
		_, _ = ParseJWK(data)
	})
}
