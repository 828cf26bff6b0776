package jws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"sync"
	"testing"
)

var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	ecKeys   map[string]*ecdsa.PrivateKey
	edKey    ed25519.PrivateKey
	hsSecret = []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
)

func testKeys() {
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		ecKeys = map[string]*ecdsa.PrivateKey{}
		for alg, c := range map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()} {
			if ecKeys[alg], err = ecdsa.GenerateKey(c, rand.Reader); err != nil {
				panic(err)
			}
		}
		if _, edKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
}

// keyConfig returns a Config with a fresh test key pair for alg.
func keyConfig(alg string, format Format) Config {
	testKeys()
	cfg := Config{Format: format, Alg: alg}
	var priv crypto.Signer
	switch alg[:2] {
	case "RS", "PS":
		priv = rsaKey
	case "ES":
		priv = ecKeys[alg]
	case "Ed":
		priv = edKey
	case "HS":
		cfg.Secret = hsSecret
		return cfg
	}
	cfg.PrivateKey, cfg.PublicKey = priv, priv.Public()
	return cfg
}

// craft signs protectedJSON over payload (encoded unless b64 is false)
// with cfg's key under cfg.Alg, whatever the header says, so that a test
// sees only the rule it exercises.
func craft(t testing.TB, cfg Config, protectedJSON string, payload []byte, b64 bool) (protected, sig string) {
	t.Helper()
	c, err := newCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.priv, c.secret = cfg.PrivateKey, cfg.Secret
	protected = encodeSegment([]byte(protectedJSON))
	s, err := c.sign(signingInput(protected, payload, b64))
	if err != nil {
		t.Fatal(err)
	}
	return protected, encodeSegment(s)
}
