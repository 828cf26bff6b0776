package jws

import (
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestAttacks is the attack table of issue 4: each case must fail, with
// the kind and reason given.
func TestAttacks(t *testing.T) {
	body := []byte(`{"amount":"100","currency":"USD"}`)
	rs := keyConfig("RS256", FormatDetached)
	es := keyConfig("ES256", FormatDetached)
	pubDER, _ := x509.MarshalPKIXPublicKey(rs.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	detached := func(cfg Config, hdr string) string {
		p, s := craft(t, cfg, hdr, body, true)
		return p + ".." + s
	}
	hsWithPEM := func() string {
		p := encodeSegment([]byte(`{"alg":"HS256"}`))
		m := hmac.New(sha256.New, pubPEM)
		m.Write(signingInput(p, body, true))
		return p + ".." + encodeSegment(m.Sum(nil))
	}()
	ecSig := func(r, s *big.Int) string {
		raw := make([]byte, 64)
		r.FillBytes(raw[:32])
		s.FillBytes(raw[32:])
		return encodeSegment([]byte(`{"alg":"ES256"}`)) + ".." + encodeSegment(raw)
	}
	n := ecKeys["ES256"].Curve.Params().N
	derSig := func() string {
		p, s := craft(t, es, `{"alg":"ES256"}`, body, true)
		raw, _ := decodeSegment("", s)
		der, _ := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])})
		return p + ".." + encodeSegment(der)
	}()
	good := detached(rs, `{"alg":"RS256"}`)
	goodParts := strings.Split(good, ".")
	okCfg := rs
	okCfg.Crit = map[string]string{"http://openbanking.org.uk/iat": "", "http://openbanking.org.uk/tan": "openbanking.org.uk"}

	cases := []struct {
		name   string
		cfg    Config
		value  string
		body   []byte
		kind   error
		reason string
	}{
		{"alg none", rs, encodeSegment([]byte(`{"alg":"none"}`)) + "..", nil, ErrMalformed, "signature segment is empty"},
		{"alg none with signature", rs, encodeSegment([]byte(`{"alg":"none"}`)) + "..AAAA", nil, ErrAlgorithm, "never accepted"},
		{"alg None", rs, encodeSegment([]byte(`{"alg":"None"}`)) + "..AAAA", nil, ErrAlgorithm, "never accepted"},
		{"alg NONE", rs, encodeSegment([]byte(`{"alg":"NONE"}`)) + "..AAAA", nil, ErrAlgorithm, "never accepted"},
		{"alg nOnE", rs, encodeSegment([]byte(`{"alg":"nOnE"}`)) + "..AAAA", nil, ErrAlgorithm, "never accepted"},
		{"HS256 keyed with the RSA public key", rs, hsWithPEM, nil, ErrAlgorithm, "fixed by the configuration"},
		{"other algorithm (PS256 for RS256)", rs, func() string { c := rs; c.Alg = "PS256"; return detached(c, `{"alg":"PS256"}`) }(), nil, ErrAlgorithm, `says alg "PS256" but this rule requires RS256`},
		{"alg missing", rs, detached(rs, `{"kid":"x"}`), nil, ErrAlgorithm, "has no alg"},
		{"alg not a string", rs, detached(rs, `{"alg":["RS256"]}`), nil, ErrAlgorithm, "not a string"},
		{"embedded jwk", rs, detached(rs, `{"alg":"RS256","jwk":{"kty":"oct","k":"AAAA"}}`), nil, ErrHeader, "carries jwk"},
		{"jku", rs, detached(rs, `{"alg":"RS256","jku":"https://evil.example/keys"}`), nil, ErrHeader, "carries jku"},
		{"x5u", rs, detached(rs, `{"alg":"RS256","x5u":"https://evil.example/cert"}`), nil, ErrHeader, "carries x5u"},
		{"x5c", rs, detached(rs, `{"alg":"RS256","x5c":["MIIB"]}`), nil, ErrHeader, "carries x5c"},
		{"unknown crit", rs, detached(rs, `{"alg":"RS256","crit":["exp"],"exp":1}`), nil, ErrHeader, "does not understand"},
		{"empty crit", rs, detached(rs, `{"alg":"RS256","crit":[]}`), nil, ErrHeader, "empty array"},
		{"crit naming an absent header", rs, detached(rs, `{"alg":"RS256","crit":["b64"]}`), nil, ErrHeader, `has no "b64"`},
		{"crit not an array", rs, detached(rs, `{"alg":"RS256","crit":"b64","b64":true}`), nil, ErrHeader, "JSON array"},
		{"crit naming a registered parameter", rs, detached(rs, `{"alg":"RS256","crit":["alg"]}`), nil, ErrHeader, "must not be critical"},
		{"crit listing a name twice", okCfg, detached(rs, `{"alg":"RS256","crit":["http://openbanking.org.uk/iat","http://openbanking.org.uk/iat"],"http://openbanking.org.uk/iat":1}`), nil, ErrHeader, "twice"},
		{"understood crit with the wrong value", okCfg, detached(rs, `{"alg":"RS256","crit":["http://openbanking.org.uk/tan"],"http://openbanking.org.uk/tan":"evil.example"}`), nil, ErrHeader, "expects openbanking.org.uk"},
		{"unprotected crit (JSON serialization)", rs, `{"protected":"` + goodParts[0] + `","header":{"crit":["b64"]},"signature":"` + goodParts[2] + `"}`, nil, ErrMalformed, "JSON serialization"},
		{"b64 false without crit", rs, func() string { p, s := craft(t, rs, `{"alg":"RS256","b64":false}`, body, false); return p + ".." + s }(), nil, ErrHeader, `crit does not list "b64"`},
		{"b64 a string", rs, detached(rs, `{"alg":"RS256","b64":"false","crit":["b64"]}`), nil, ErrHeader, "JSON boolean"},
		{"b64 a number", rs, detached(rs, `{"alg":"RS256","b64":0,"crit":["b64"]}`), nil, ErrHeader, "JSON boolean"},
		{"ECDSA r = s = 0", es, ecSig(big.NewInt(0), big.NewInt(0)), nil, ErrSignature, "equal to zero"},
		{"ECDSA r = n", es, ecSig(n, big.NewInt(1)), nil, ErrSignature, "not below the curve order"},
		{"ECDSA s = n", es, ecSig(big.NewInt(1), n), nil, ErrSignature, "not below the curve order"},
		{"ECDSA DER-encoded", es, derSig, nil, ErrSignature, "DER-encoded"},
		{"duplicate alg", rs, detached(rs, `{"alg":"RS256","alg":"RS256"}`), nil, ErrMalformed, `"alg" twice`},
		{"duplicate nested key", rs, detached(rs, `{"alg":"RS256","x":{"a":1,"a":2}}`), nil, ErrMalformed, `"a" twice`},
		{"padding in signature", rs, good + "==", nil, ErrMalformed, "padding"},
		{"padding in header", rs, encodeSegment([]byte(`{"alg":"RS256"}`)) + "=" + ".." + goodParts[2], nil, ErrMalformed, "padding"},
		{"space in signature", rs, goodParts[0] + ".. " + goodParts[2], nil, ErrMalformed, "whitespace"},
		{"line break in signature", rs, goodParts[0] + ".." + goodParts[2][:10] + "\r\n" + goodParts[2][10:], nil, ErrMalformed, "whitespace"},
		{"standard base64", rs, goodParts[0] + ".." + strings.ReplaceAll(strings.ReplaceAll(goodParts[2], "-", "+"), "_", "/") + "+", nil, ErrMalformed, "standard base64"},
		{"non-canonical trailing bits", rs, nonCanonical(encodeSegment([]byte(`{"alg":"RS256"} `))) + ".." + goodParts[2], nil, ErrMalformed, "not canonical"},
		{"two segments", rs, goodParts[0] + "." + goodParts[2], nil, ErrMalformed, "got 2"},
		{"four segments", rs, good + ".", nil, ErrMalformed, "got 4"},
		{"payload in a detached JWS", rs, goodParts[0] + "." + encodeSegment(body) + "." + goodParts[2], nil, ErrMalformed, "empty middle segment"},
		{"JSON serialization", rs, `{"payload":"","protected":"` + goodParts[0] + `","signature":"` + goodParts[2] + `"}`, nil, ErrMalformed, "JSON serialization"},
		{"several signatures", rs, `{"payload":"","signatures":[{"protected":"` + goodParts[0] + `","signature":"` + goodParts[2] + `"}]}`, nil, ErrMalformed, "several signatures"},
		{"one byte of the body changed", rs, good, []byte(`{"amount":"900","currency":"USD"}`), ErrSignature, "does not verify"},
		{"signature stripped", rs, goodParts[0] + "..", nil, ErrMalformed, "signature segment is empty"},
		{"no signature", rs, "", nil, ErrMissing, "no signature"},
		{"signature of another length", rs, goodParts[0] + ".." + goodParts[2][:100], nil, ErrSignature, "exactly 256"},
		{"protected header not JSON", rs, encodeSegment([]byte(`alg=RS256`)) + ".." + goodParts[2], nil, ErrMalformed, "not valid JSON"},
		{"protected header an array", rs, encodeSegment([]byte(`["alg"]`)) + ".." + goodParts[2], nil, ErrMalformed, "not a JSON object"},
		{"trailing data after the header", rs, encodeSegment([]byte(`{"alg":"RS256"}{}`)) + ".." + goodParts[2], nil, ErrMalformed, "after the JSON object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.PrivateKey = nil
			v := mustVerifier(t, cfg)
			b := body
			if tc.body != nil {
				b = tc.body
			}
			_, err := v.Verify(Message{HeaderValue: tc.value, Body: b})
			if err == nil {
				t.Fatal("accepted")
			}
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("not a *VerifyError: %T %v", err, err)
			}
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got %v (kind %v), want %v containing %q", err, ve.Kind, tc.kind, tc.reason)
			}
		})
	}
	// The good token and an understood crit do pass.
	if _, err := mustVerifier(t, Config{Format: FormatDetached, Alg: "RS256", PublicKey: rs.PublicKey}).Verify(Message{HeaderValue: good, Body: body}); err != nil {
		t.Fatalf("good token: %v", err)
	}
	ob := detached(rs, `{"alg":"RS256","crit":["http://openbanking.org.uk/iat","http://openbanking.org.uk/tan"],"http://openbanking.org.uk/iat":1501497671,"http://openbanking.org.uk/tan":"openbanking.org.uk"}`)
	okCfg.PrivateKey = nil
	if _, err := mustVerifier(t, okCfg).Verify(Message{HeaderValue: ob, Body: body}); err != nil {
		t.Fatalf("understood crit: %v", err)
	}
}

func TestConfigRefusals(t *testing.T) {
	rs := keyConfig("RS256", FormatCompact)
	es := keyConfig("ES256", FormatCompact)
	small, _ := rsa.GenerateKey(randReader{}, 1024)
	for _, tc := range []struct {
		name   string
		cfg    Config
		reason string
	}{
		{"HS256 with a public key", Config{Format: FormatCompact, Alg: "HS256", PublicKey: rs.PublicKey}, "never used as an HMAC key"},
		{"HS256 with a PEM secret", Config{Format: FormatCompact, Alg: "HS256", Secret: []byte("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n")}, "looks like a PEM key"},
		{"HS256 short secret", Config{Format: FormatCompact, Alg: "HS256", Secret: []byte("short")}, "at least 32 bytes"},
		{"HS256 without secret", Config{Format: FormatCompact, Alg: "HS256"}, "needs a shared secret"},
		{"alg none", Config{Format: FormatCompact, Alg: "none", PublicKey: rs.PublicKey}, "never accepted"},
		{"unknown alg", Config{Format: FormatCompact, Alg: "rs256", PublicKey: rs.PublicKey}, "unknown alg"},
		{"RSA key for ES256", Config{Format: FormatCompact, Alg: "ES256", PublicKey: rs.PublicKey}, "needs an ECDSA P-256 key, but the key is RSA 2048"},
		{"P-256 key for ES384", Config{Format: FormatCompact, Alg: "ES384", PublicKey: es.PublicKey}, "needs an ECDSA P-384 key"},
		{"EC key for RS256", Config{Format: FormatCompact, Alg: "RS256", PublicKey: es.PublicKey}, "needs an RSA key"},
		{"small RSA key", Config{Format: FormatCompact, Alg: "RS256", PublicKey: &small.PublicKey}, "at least 2048"},
		{"secret with RS256", Config{Format: FormatCompact, Alg: "RS256", PublicKey: rs.PublicKey, Secret: hsSecret}, "only used with HS256"},
		{"no format", Config{Alg: "RS256", PublicKey: rs.PublicKey}, "format is required"},
		{"bad format", Config{Format: "jwt", Alg: "RS256", PublicKey: rs.PublicKey}, "unknown format"},
		{"bad header name", Config{Format: FormatCompact, Alg: "RS256", PublicKey: rs.PublicKey, ProtectedHeaders: []string{"Bad Header"}}, "not a valid HTTP header name"},
		{"crit registered name", Config{Format: FormatCompact, Alg: "RS256", PublicKey: rs.PublicKey, Crit: map[string]string{"kid": ""}}, "must not be critical"},
		{"unencoded mojaloop", Config{Format: FormatMojaloop, Alg: "RS256", PublicKey: rs.PublicKey, Unencoded: true}, "only supported in the detached format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewVerifier(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got %v, want %q", err, tc.reason)
			}
		})
	}
	other := keyConfig("ES256", FormatCompact)
	mismatch := Config{Format: FormatCompact, Alg: "RS256", PrivateKey: rs.PrivateKey, PublicKey: other.PublicKey}
	if _, err := NewSigner(mismatch); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatched pair: %v", err)
	}
}

// TestMegabyteOfDots checks that a huge header is refused in bounded time
// and memory, both at the default limit and when the limit is raised.
func TestMegabyteOfDots(t *testing.T) {
	dots := strings.Repeat(".", 1<<20)
	for _, format := range []Format{FormatCompact, FormatDetached, FormatMojaloop} {
		for _, limit := range []int{0, 4 << 20} {
			cfg := keyConfig("RS256", format)
			cfg.PrivateKey, cfg.MaxHeaderBytes = nil, limit
			v := mustVerifier(t, cfg)
			start := time.Now()
			allocs := testing.AllocsPerRun(5, func() {
				_, err := v.Verify(Message{HeaderValue: dots})
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("%s/%d: %v", format, limit, err)
				}
			})
			if el := time.Since(start); el > time.Second {
				t.Errorf("%s/%d: took %v", format, limit, el)
			}
			if allocs > 10 {
				t.Errorf("%s/%d: %v allocations", format, limit, allocs)
			}
			// and few bytes: not one copy of the megabyte
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			v.Verify(Message{HeaderValue: dots})
			runtime.ReadMemStats(&after)
			if b := after.TotalAlloc - before.TotalAlloc; b > 64<<10 {
				t.Errorf("%s/%d: %d bytes allocated for a megabyte of dots", format, limit, b)
			}
		}
	}
}

type randReader struct{}

func (randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i*7 + 3)
	}
	return len(p), nil
}

// nonCanonical sets an unused low bit in the last character of seg, whose
// length must leave unused bits (len%4 == 2 or 3).
func nonCanonical(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[i|1])
}
