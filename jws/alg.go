package jws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

// verifySig checks sig over input with the configured key. It is the strict
// path: go-jose's verifier accepts PSS signatures of any salt length and
// cannot be told otherwise, so every algorithm is checked here directly
// with crypto/*.
func (c *core) verifySig(input, sig []byte) error {
	a := c.alg
	switch a.family {
	case famRSA, famPSS:
		pub := c.pub.(*rsa.PublicKey)
		if len(sig) != pub.Size() {
			return fmt.Errorf("the %s signature is %d bytes; an RSA-%d signature is exactly %d", a.name, len(sig), pub.N.BitLen(), pub.Size())
		}
		digest := hashOf(a.hash, input)
		if a.family == famRSA {
			if rsa.VerifyPKCS1v15(pub, a.hash, digest, sig) != nil {
				return errBadSig
			}
			return nil
		}
		// RFC 7518 §3.5: the salt is as long as the hash output.
		if rsa.VerifyPSS(pub, a.hash, digest, sig, &rsa.PSSOptions{SaltLength: a.hash.Size(), Hash: a.hash}) != nil {
			return errBadSig
		}
		return nil
	case famEC:
		pub := c.pub.(*ecdsa.PublicKey)
		if len(sig) != 2*a.size {
			if len(sig) > 0 && sig[0] == 0x30 {
				return fmt.Errorf("the %s signature is %d bytes and looks DER-encoded; JWS needs the raw r||s form of exactly %d bytes (RFC 7518 §3.4)", a.name, len(sig), 2*a.size)
			}
			return fmt.Errorf("the %s signature is %d bytes; it must be the raw r||s form of exactly %d bytes (RFC 7518 §3.4)", a.name, len(sig), 2*a.size)
		}
		r := new(big.Int).SetBytes(sig[:a.size])
		s := new(big.Int).SetBytes(sig[a.size:])
		n := pub.Curve.Params().N
		if r.Sign() == 0 || s.Sign() == 0 {
			return fmt.Errorf("the %s signature has r or s equal to zero, which is never valid", a.name)
		}
		if r.Cmp(n) >= 0 || s.Cmp(n) >= 0 {
			return fmt.Errorf("the %s signature has r or s not below the curve order, which is never valid", a.name)
		}
		if !ecdsa.Verify(pub, hashOf(a.hash, input), r, s) {
			return errBadSig
		}
		return nil
	case famEd:
		pub := c.pub.(ed25519.PublicKey)
		if len(sig) != ed25519.SignatureSize {
			return fmt.Errorf("the EdDSA signature is %d bytes; an Ed25519 signature is exactly %d", len(sig), ed25519.SignatureSize)
		}
		if !ed25519.Verify(pub, input, sig) {
			return errBadSig
		}
		return nil
	case famHMAC:
		if len(sig) != a.hash.Size() {
			return fmt.Errorf("the %s MAC is %d bytes; it must be exactly %d", a.name, len(sig), a.hash.Size())
		}
		if !hmac.Equal(c.mac(input), sig) {
			return errBadSig
		}
		return nil
	}
	return fmt.Errorf("unsupported algorithm %s", a.name)
}

var errBadSig = errors.New("signature does not verify")

func (c *core) mac(input []byte) []byte {
	m := hmac.New(c.alg.hash.New, c.secret)
	m.Write(input)
	return m.Sum(nil)
}

func hashOf(h crypto.Hash, b []byte) []byte {
	w := h.New()
	w.Write(b)
	return w.Sum(nil)
}

// sign makes the JWS signature of input with the configured key. It works
// with any crypto.Signer (so a key in an HSM or KMS works too).
func (c *core) sign(input []byte) ([]byte, error) {
	a := c.alg
	switch a.family {
	case famHMAC:
		return c.mac(input), nil
	case famEd:
		return c.priv.Sign(rand.Reader, input, crypto.Hash(0))
	case famRSA:
		return c.priv.Sign(rand.Reader, hashOf(a.hash, input), a.hash)
	case famPSS:
		return c.priv.Sign(rand.Reader, hashOf(a.hash, input), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: a.hash})
	case famEC:
		der, err := c.priv.Sign(rand.Reader, hashOf(a.hash, input), a.hash)
		if err != nil {
			return nil, err
		}
		return derToRaw(der, a.size)
	}
	return nil, fmt.Errorf("unsupported algorithm %s", a.name)
}

// derToRaw turns an ASN.1 ECDSA signature into JWS's fixed-size r||s.
func derToRaw(der []byte, size int) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) > 0 || sig.R == nil || sig.S == nil || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 {
		return nil, fmt.Errorf("the signer returned a malformed ECDSA signature")
	}
	if sig.R.BitLen() > 8*size || sig.S.BitLen() > 8*size {
		return nil, fmt.Errorf("the signer returned an ECDSA signature too large for the curve")
	}
	out := make([]byte, 2*size)
	sig.R.FillBytes(out[:size])
	sig.S.FillBytes(out[size:])
	return out, nil
}
