package jws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// ParsePublicKeyPEM parses the first public key in PEM data: a PKIX
// "PUBLIC KEY", a PKCS #1 "RSA PUBLIC KEY", or a "CERTIFICATE" (its
// subject public key). Other blocks (such as "EC PARAMETERS") are skipped;
// a private key is refused, since it does not belong where a public key
// is expected.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("parsing public key: no PEM public key or certificate found")
		}
		var (
			pub any
			err error
		)
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("parsing public key: found a private key (%s) where a public key is expected", block.Type)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parsing public key (%s): %w", block.Type, err)
		}
		return checkPublic(pub)
	}
}

// ParsePrivateKeyPEM parses the first private key in PEM data: PKCS #8
// "PRIVATE KEY", PKCS #1 "RSA PRIVATE KEY" or SEC 1 "EC PRIVATE KEY". Other
// blocks (such as "EC PARAMETERS" from openssl ecparam) are skipped.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("parsing private key: no PEM private key found")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			if _, enc := block.Headers["DEK-Info"]; enc {
				return nil, fmt.Errorf("parsing private key: the key is encrypted; decrypt it first (openssl rsa -in key.pem -out plain.pem)")
			}
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			if _, enc := block.Headers["DEK-Info"]; enc {
				return nil, fmt.Errorf("parsing private key: the key is encrypted; decrypt it first (openssl ec -in key.pem -out plain.pem)")
			}
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("parsing private key: the key is encrypted; decrypt it first (openssl pkcs8 -in key.pem -out plain.pem)")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parsing private key (%s): %w", block.Type, err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			if err := k.Validate(); err != nil {
				return nil, fmt.Errorf("parsing private key: invalid RSA key: %w", err)
			}
			return k, nil
		case *ecdsa.PrivateKey:
			if _, err := checkPublic(&k.PublicKey); err != nil {
				return nil, fmt.Errorf("parsing private key: %w", err)
			}
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("parsing private key: unsupported key type %T", key)
		}
	}
}

func checkPublic(pub any) (crypto.PublicKey, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey, ed25519.PublicKey:
		return k, nil
	case *ecdsa.PublicKey:
		switch k.Curve.Params().Name {
		case "P-256", "P-384", "P-521":
			return k, nil
		}
		return nil, fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	default:
		return nil, fmt.Errorf("unsupported public key type %T", pub)
	}
}

// KeyType describes a public or private key for people: "RSA 2048",
// "ECDSA P-256", "Ed25519".
func KeyType(key any) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *rsa.PrivateKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *ecdsa.PrivateKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey, ed25519.PrivateKey:
		return "Ed25519"
	case nil:
		return "no key"
	default:
		return fmt.Sprintf("%T", key)
	}
}

// CheckKeyPair reports whether priv is the private half of pub (the
// documentation's `openssl rsa -modulus | openssl md5` check, for every key
// type). keyType describes pub (or priv when pub is nil); reason says why
// not when match is false.
func CheckKeyPair(priv crypto.PrivateKey, pub crypto.PublicKey) (match bool, keyType string, reason string) {
	keyType = KeyType(pub)
	if pub == nil {
		keyType = KeyType(priv)
	}
	if priv == nil {
		return false, keyType, "no private key given"
	}
	if pub == nil {
		return false, keyType, "no public key given"
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return false, keyType, fmt.Sprintf("unsupported private key type %T", priv)
	}
	derived := signer.Public()
	if KeyType(derived) != keyType {
		return false, keyType, fmt.Sprintf("the private key is %s but the public key is %s", KeyType(derived), keyType)
	}
	if eq, ok := derived.(interface{ Equal(crypto.PublicKey) bool }); ok && eq.Equal(pub) {
		if k, ok := priv.(*rsa.PrivateKey); ok {
			if err := k.Validate(); err != nil {
				return false, keyType, fmt.Sprintf("the RSA private key is inconsistent: %v", err)
			}
		}
		return true, keyType, ""
	}
	switch derived.(type) {
	case *rsa.PublicKey:
		if derived.(*rsa.PublicKey).E != pub.(*rsa.PublicKey).E {
			return false, keyType, "the RSA public exponents differ"
		}
		return false, keyType, "the RSA moduli differ: the private key belongs to another public key"
	case *ecdsa.PublicKey:
		return false, keyType, "the ECDSA public points differ: the private key belongs to another public key"
	default:
		return false, keyType, "the public keys differ: the private key belongs to another public key"
	}
}

// ParseJWK parses a JSON Web Key with go-jose and returns its key:
// *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey, their private
// forms, or []byte for an "oct" key (an HS* secret). A key whose "use" is
// not "sig", or whose "key_ops" allow neither sign nor verify, is refused.
func ParseJWK(data []byte) (any, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("parsing JWK: %w", err)
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return nil, fmt.Errorf("parsing JWK: the key's use is %q, not \"sig\"", jwk.Use)
	}
	if ops := keyOps(data); ops != nil && !slices.Contains(ops, "verify") && !slices.Contains(ops, "sign") {
		return nil, fmt.Errorf("parsing JWK: the key's key_ops %v allow neither sign nor verify", ops)
	}
	switch k := jwk.Key.(type) {
	case *rsa.PublicKey, *rsa.PrivateKey, *ecdsa.PublicKey, *ecdsa.PrivateKey, ed25519.PublicKey, ed25519.PrivateKey, []byte:
		return k, nil
	default:
		return nil, fmt.Errorf("parsing JWK: unsupported key type %T", jwk.Key)
	}
}

func keyOps(data []byte) []string {
	m, err := parseObject("the JWK", data)
	if err != nil {
		return nil
	}
	raw, ok := m["key_ops"]
	if !ok {
		return nil
	}
	var ops []string
	if err := json.Unmarshal(raw, &ops); err != nil {
		return []string{}
	}
	return ops
}
