package jws

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
)

// TestConfigErrorNamesTheField: a Config that cannot work says which field
// is at fault, so callers never guess it from the message.
func TestConfigErrorNamesTheField(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		sign  bool
		cfg   Config
		field string
	}{
		{false, Config{Format: "xml", Alg: "ES256", PublicKey: &ec.PublicKey}, "format"},
		{false, Config{Format: FormatCompact, Alg: "none"}, "alg"},
		{false, Config{Format: FormatCompact, Alg: "ES256", PublicKey: &ec.PublicKey, Unencoded: true}, "unencoded"},
		{false, Config{Format: FormatDetached, Alg: "ES256", PublicKey: &ec.PublicKey, ProtectedHeaders: []string{"bad header"}}, "protected_headers"},
		{false, Config{Format: FormatDetached, Alg: "ES256", PublicKey: &ec.PublicKey, Crit: map[string]string{"alg": ""}}, "crit"},
		{false, Config{Format: FormatDetached, Alg: "ES256"}, "public_key"},
		{false, Config{Format: FormatDetached, Alg: "ES384", PublicKey: &ec.PublicKey}, "public_key"},
		{false, Config{Format: FormatDetached, Alg: "HS256", Secret: []byte("short")}, "secret"},
		{false, Config{Format: FormatDetached, Alg: "ES256", PublicKey: &ec.PublicKey, Secret: make([]byte, 32)}, "secret"},
		{true, Config{Format: FormatDetached, Alg: "ES256"}, "private_key"},
		{true, Config{Format: FormatDetached, Alg: "ES256", PrivateKey: ec, PublicKey: &other.PublicKey}, "private_key"},
	} {
		var err error
		if tc.sign {
			_, err = NewSigner(tc.cfg)
		} else {
			_, err = NewVerifier(tc.cfg)
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%+v: got %v, want a ConfigError on %s", tc.cfg, err, tc.field)
		}
	}
}
