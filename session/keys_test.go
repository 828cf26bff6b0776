package session

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"strings"
	"testing"
	"time"
)

// TestRuleKeysAsOpensslWritesThem: a rule's keys are checked with the
// parsers the rule is compiled with, so the "EC PARAMETERS" block that
// `openssl ecparam -genkey` writes first is accepted here too.
func TestRuleKeysAsOpensslWritesThem(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	params, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	priv := string(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: params})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	s := Session{ID: "k", Components: []Component{{Slug: "a"}, {Slug: "b", Simulated: true}},
		JWS: []JWSRule{{Source: "b", Target: "a", Direction: DirectionResponse, Header: "x-jws-signature",
			Format: FormatDetached, Alg: "ES256", PublicKey: pub, PrivateKey: priv}}}
	c := &compiler{opts: &Options{ExpiryWarning: DefaultExpiryWarning, Now: time.Now}, strict: true, now: time.Now()}
	if _, err := c.compileSession(s, nil); err != nil {
		t.Fatalf("openssl-style EC key refused: %v", err)
	}
	s.JWS[0].PrivateKey = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
	_, err := c.compileSession(s, nil)
	if fe, ok := err.(*FieldError); !ok || fe.Field != "jws[0].private_key" {
		t.Fatalf("parameters without a key: %v", err)
	}
}

func TestNormalizeAllowedFingerprintPrefixAnyCase(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	for _, in := range []string{"sha256:" + fp, "SHA256:" + strings.ToUpper(fp), "Sha256:" + fp, " " + fp + " "} {
		if got := normalizeAllowed(in); got != fp {
			t.Errorf("normalizeAllowed(%q) = %q", in, got)
		}
	}
	if got := normalizeAllowed("payer"); got != "payer" {
		t.Errorf("a CN changed: %q", got)
	}
}
