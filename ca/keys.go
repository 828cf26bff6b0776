package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/caddy-itp/caddy-itp/jws"
)

// Key types accepted by the configuration for keys the platform generates.
const (
	KeyECDSAP256 = "ecdsa_p256"
	KeyECDSAP384 = "ecdsa_p384"
	KeyRSA2048   = "rsa2048"
	KeyRSA3072   = "rsa3072"
	KeyRSA4096   = "rsa4096"
	KeyEd25519   = "ed25519"
)

// GenerateKey creates a private key of the given type ("" means ECDSA P-256).
func GenerateKey(keyType string) (crypto.Signer, error) {
	switch strings.ToLower(keyType) {
	case "", KeyECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case KeyRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case KeyEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("unsupported key type %q (use %s, %s, %s, %s, %s or %s)",
		keyType, KeyECDSAP256, KeyECDSAP384, KeyRSA2048, KeyRSA3072, KeyRSA4096, KeyEd25519)
}

// ValidKeyType reports whether keyType names a key GenerateKey can make.
func ValidKeyType(keyType string) bool {
	switch strings.ToLower(keyType) {
	case "", KeyECDSAP256, KeyECDSAP384, KeyRSA2048, KeyRSA3072, KeyRSA4096, KeyEd25519:
		return true
	}
	return false
}

// KeyTypeOf names the type of a public key in the configuration's terms.
func KeyTypeOf(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return KeyECDSAP256
		case elliptic.P384():
			return KeyECDSAP384
		}
		return "ecdsa_" + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa%d", k.N.BitLen())
	case ed25519.PublicKey:
		return KeyEd25519
	}
	return fmt.Sprintf("%T", pub)
}

// DescribeKey names a public key for people: "RSA 2048", "ECDSA P-256",
// "Ed25519".
func DescribeKey(pub crypto.PublicKey) string { return jws.KeyType(pub) }

// EncodeKeyPEM encodes a private key as a PKCS #8 PEM block.
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// DecodeKeyPEM decodes the first private key PEM block in data, in PKCS #8,
// PKCS #1 (RSA) or SEC 1 (EC) form.
func DecodeKeyPEM(data []byte) (crypto.Signer, error) {
	return jws.ParsePrivateKeyPEM(data)
}

// EncodeCertPEM encodes DER certificate bytes as a PEM block.
func EncodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// DecodeCertPEM parses the first CERTIFICATE block of data.
func DecodeCertPEM(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("no CERTIFICATE PEM block found")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate: %w", err)
		}
		return cert, nil
	}
}

// PublicKeyHash is the lowercase hex SHA-256 of the public key's PKIX DER
// encoding: the key under which issuance is recorded.
func PublicKeyHash(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}
