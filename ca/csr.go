package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
)

// MaxCSRBytes bounds the size of a participant's CSR upload.
const MaxCSRBytes = 64 << 10

// PolicyError is a CSR refused by the signing policy. Its message is meant
// for the participant who sent the CSR.
type PolicyError struct{ Msg string }

func (e *PolicyError) Error() string { return e.Msg }

func policyErrorf(format string, args ...any) error {
	return &PolicyError{Msg: fmt.Sprintf(format, args...)}
}

// ParseParticipantCSR applies the participant signing policy of DESIGN.md
// §5 to a PEM upload: exactly one CERTIFICATE REQUEST block and nothing
// else, a self-signature that verifies, and a key that is RSA of at least
// 2048 bits with e = 65537, ECDSA P-256 or P-384, or Ed25519. Everything the
// CSR asks for besides its key and subject common name is ignored later by
// the signer; this only decides whether it is acceptable at all.
func ParseParticipantCSR(data []byte) (*x509.CertificateRequest, error) {
	if len(data) > MaxCSRBytes {
		return nil, policyErrorf("CSR of %d bytes: at most %d are accepted", len(data), MaxCSRBytes)
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, policyErrorf("expected one PEM CERTIFICATE REQUEST block, found no PEM data")
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, policyErrorf("expected one PEM CERTIFICATE REQUEST block, found a %s block", block.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, policyErrorf("expected one PEM CERTIFICATE REQUEST block, found more data after it")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		if strings.Contains(err.Error(), "unsupported elliptic curve") {
			return nil, policyErrorf("CSR uses an unsupported elliptic curve: only P-256 and P-384 are accepted")
		}
		return nil, policyErrorf("CSR does not parse: %v", err)
	}
	if err := checkParticipantKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, policyErrorf("CSR signature does not verify: %v", err)
	}
	if len(csr.Subject.CommonName) > 64 {
		return nil, policyErrorf("CSR common name of %d bytes: at most 64 are accepted", len(csr.Subject.CommonName))
	}
	return csr, nil
}

func checkParticipantKey(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 {
			return policyErrorf("RSA key of %d bits: at least 2048 are required", bits)
		} else if bits > 8192 {
			return policyErrorf("RSA key of %d bits: at most 8192 are accepted", bits)
		}
		if k.E != 65537 {
			return policyErrorf("RSA public exponent %d: only 65537 is accepted", k.E)
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return policyErrorf("ECDSA curve %s: only P-256 and P-384 are accepted", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case nil:
		return policyErrorf("CSR key algorithm is not supported: use RSA (2048+ bits), ECDSA P-256/P-384 or Ed25519")
	default:
		return policyErrorf("CSR key type %T is not supported: use RSA (2048+ bits), ECDSA P-256/P-384 or Ed25519", pub)
	}
	return nil
}
