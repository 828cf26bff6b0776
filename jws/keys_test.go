package jws

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
)

func TestCheckKeyPair(t *testing.T) {
	testKeys()
	rs := keyConfig("RS256", FormatCompact)
	es := keyConfig("ES256", FormatCompact)
	es384 := keyConfig("ES384", FormatCompact)
	ed := keyConfig("EdDSA", FormatCompact)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, otherEd, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name     string
		priv     any
		pub      any
		match    bool
		keyType  string
		inReason string
	}{
		{"rsa pair", rs.PrivateKey, rs.PublicKey, true, "RSA 2048", ""},
		{"ec pair", es.PrivateKey, es.PublicKey, true, "ECDSA P-256", ""},
		{"ed pair", ed.PrivateKey, ed.PublicKey, true, "Ed25519", ""},
		{"types differ", rs.PrivateKey, es.PublicKey, false, "ECDSA P-256", "private key is RSA 2048"},
		{"curves differ", es.PrivateKey, es384.PublicKey, false, "ECDSA P-384", "ECDSA P-256"},
		{"rsa other key", otherRSA, rs.PublicKey, false, "RSA 2048", "moduli differ"},
		{"ec other key", otherEC, es.PublicKey, false, "ECDSA P-256", "points differ"},
		{"ed other key", otherEd, ed.PublicKey, false, "Ed25519", "public keys differ"},
		{"no private key", nil, rs.PublicKey, false, "RSA 2048", "no private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			match, kt, reason := CheckKeyPair(tc.priv, tc.pub)
			if match != tc.match || kt != tc.keyType || !strings.Contains(reason, tc.inReason) {
				t.Fatalf("got %v %q %q", match, kt, reason)
			}
		})
	}
}
