package jws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"net/textproto"
	"strings"
)

// Format is a wire format for a signature carried in an HTTP header.
type Format string

// The supported wire formats.
const (
	// FormatMojaloop is Mojaloop's FSPIOP-Signature: a JSON object
	// {"signature": ..., "protectedHeader": ...} whose payload is the body.
	FormatMojaloop Format = "mojaloop"
	// FormatCompact is a full compact JWS (header.payload.signature).
	FormatCompact Format = "compact"
	// FormatDetached is a compact JWS with detached content
	// (header..signature, RFC 7515 appendix F) whose payload is the body,
	// unencoded when the protected header has b64 false (RFC 7797).
	FormatDetached Format = "detached"
)

// DefaultMaxHeaderBytes is the default bound on a signature header value.
const DefaultMaxHeaderBytes = 16 << 10

// Config configures a Verifier or a Signer.
type Config struct {
	// Format is the wire format: mojaloop, compact or detached. Required.
	Format Format

	// Alg is the JWS algorithm, fixed by the configuration: RS256, RS384,
	// RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, HS256,
	// HS384 or HS512. A token naming any other algorithm is refused.
	// Required.
	Alg string

	// PublicKey verifies signatures (*rsa.PublicKey, *ecdsa.PublicKey or
	// ed25519.PublicKey; see ParsePublicKeyPEM). Required for verifying
	// with every algorithm but HS*; optional when signing, and then it
	// must match PrivateKey.
	PublicKey crypto.PublicKey

	// PrivateKey signs messages (see ParsePrivateKeyPEM). Required for
	// signing with every algorithm but HS*.
	PrivateKey crypto.Signer

	// Secret is the shared key of HS256, HS384 and HS512, at least as
	// long as the hash output. It is used with HS* only, and HS* is used
	// only with it: a PEM key is never turned into an HMAC secret.
	Secret []byte

	// ProtectedHeaders names HTTP headers that must be signed whenever
	// they are present on the message; when signing, those present are
	// put in the protected header.
	ProtectedHeaders []string

	// Crit names extra critical header parameters this rule understands
	// (beyond b64), each mapped to the value to expect ("" accepts any
	// value). Example: Open Banking's "http://openbanking.org.uk/iat".
	// A string parameter is compared with its text, any other JSON value
	// with its compact JSON form.
	Crit map[string]string

	// Extra holds additional protected header parameters to add when
	// signing (for example "kid", or Open Banking's iss and tan). Names
	// that are also in Crit are listed in the signed crit.
	Extra map[string]any

	// Unencoded makes the signer use RFC 7797's unencoded payload
	// (b64 false, crit ["b64"]) in the detached format.
	Unencoded bool

	// StandalonePayload applies to the compact format when verifying: the
	// token's own payload is not compared with the message body. By
	// default the compact payload must equal the body byte for byte.
	StandalonePayload bool

	// MaxHeaderBytes bounds the signature header value; longer values are
	// refused before any parsing. Default: DefaultMaxHeaderBytes (16 KiB).
	MaxHeaderBytes int
}

type family int

const (
	famRSA family = iota + 1
	famPSS
	famEC
	famEd
	famHMAC
)

type algInfo struct {
	name   string
	family family
	hash   crypto.Hash
	curve  elliptic.Curve
	size   int // ECDSA: bytes per coordinate; HMAC: minimum key bytes
	curveN string
}

var algs = map[string]algInfo{
	"RS256": {name: "RS256", family: famRSA, hash: crypto.SHA256},
	"RS384": {name: "RS384", family: famRSA, hash: crypto.SHA384},
	"RS512": {name: "RS512", family: famRSA, hash: crypto.SHA512},
	"PS256": {name: "PS256", family: famPSS, hash: crypto.SHA256},
	"PS384": {name: "PS384", family: famPSS, hash: crypto.SHA384},
	"PS512": {name: "PS512", family: famPSS, hash: crypto.SHA512},
	"ES256": {name: "ES256", family: famEC, hash: crypto.SHA256, curve: elliptic.P256(), size: 32, curveN: "P-256"},
	"ES384": {name: "ES384", family: famEC, hash: crypto.SHA384, curve: elliptic.P384(), size: 48, curveN: "P-384"},
	"ES512": {name: "ES512", family: famEC, hash: crypto.SHA512, curve: elliptic.P521(), size: 66, curveN: "P-521"},
	"EdDSA": {name: "EdDSA", family: famEd},
	"HS256": {name: "HS256", family: famHMAC, hash: crypto.SHA256, size: 32},
	"HS384": {name: "HS384", family: famHMAC, hash: crypto.SHA384, size: 48},
	"HS512": {name: "HS512", family: famHMAC, hash: crypto.SHA512, size: 64},
}

// Algorithms lists the supported algorithm names.
func Algorithms() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
		"ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512"}
}

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const minRSABits = 2048

// registered holds the header parameter names defined by RFC 7515 and
// RFC 7797: they are never HTTP header names, and never allowed in crit
// (except b64, which RFC 7797 requires there).
var registered = map[string]bool{
	"alg": true, "jku": true, "jwk": true, "kid": true, "x5u": true, "x5c": true,
	"x5t": true, "x5t#S256": true, "typ": true, "cty": true, "crit": true, "b64": true,
}

// core is what Verifier and Signer share once the Config is validated.
type core struct {
	format    Format
	alg       algInfo
	pub       crypto.PublicKey
	priv      crypto.Signer
	secret    []byte
	protected []string // canonical MIME header names, deduplicated
	crit      map[string]string
	extra     map[string]any
	unencoded bool
	alone     bool
	maxHeader int
}

func newCore(cfg Config) (*core, error) {
	c := &core{format: cfg.Format, unencoded: cfg.Unencoded, alone: cfg.StandalonePayload}
	switch cfg.Format {
	case FormatMojaloop, FormatCompact, FormatDetached:
	case "":
		return nil, configErr("format", "format is required (mojaloop, compact or detached)")
	default:
		return nil, configErr("format", "unknown format %q (want mojaloop, compact or detached)", cfg.Format)
	}
	if cfg.Unencoded && cfg.Format != FormatDetached {
		return nil, configErr("unencoded", "unencoded payload (b64 false) is only supported in the detached format, not %s", cfg.Format)
	}
	if strings.EqualFold(cfg.Alg, "none") {
		return nil, configErr("alg", "alg none is never accepted")
	}
	info, ok := algs[cfg.Alg]
	if !ok {
		return nil, configErr("alg", "unknown alg %q (want one of %s)", cfg.Alg, strings.Join(Algorithms(), ", "))
	}
	c.alg = info
	if cfg.MaxHeaderBytes < 0 {
		return nil, configErr("max_header_bytes", "max header bytes must not be negative: %d", cfg.MaxHeaderBytes)
	}
	c.maxHeader = cfg.MaxHeaderBytes
	if c.maxHeader == 0 {
		c.maxHeader = DefaultMaxHeaderBytes
	}
	seen := map[string]bool{}
	for _, h := range cfg.ProtectedHeaders {
		if !isToken(h) {
			return nil, configErr("protected_headers", "protected header %q is not a valid HTTP header name", h)
		}
		if registered[h] {
			return nil, configErr("protected_headers", "protected header %q is a JOSE header parameter name, not an HTTP header", h)
		}
		canon := textproto.CanonicalMIMEHeaderKey(h)
		if !seen[canon] {
			seen[canon] = true
			c.protected = append(c.protected, h)
		}
	}
	if len(cfg.Crit) > 0 {
		c.crit = make(map[string]string, len(cfg.Crit))
		for name, want := range cfg.Crit {
			if name == "" {
				return nil, configErr("crit", "crit: empty header parameter name")
			}
			if registered[name] && name != "b64" {
				return nil, configErr("crit", "crit: %q is a registered JOSE header parameter and must not be critical", name)
			}
			c.crit[name] = want
		}
	}
	for name := range cfg.Extra {
		if name == "alg" || name == "crit" || name == "b64" || name == "jwk" || name == "jku" || name == "x5u" || name == "x5c" {
			return nil, configErr("extra", "extra header parameter %q is set by the signer itself or never sent", name)
		}
	}
	c.extra = cfg.Extra
	return c, nil
}

// checkVerifyKey checks that the configured key material suits the alg.
func (c *core) checkVerifyKey(pub crypto.PublicKey, secret []byte) error {
	if c.alg.family == famHMAC {
		if pub != nil {
			return configErr("public_key", "%s takes a shared secret, not a public key: a public key is never used as an HMAC key", c.alg.name)
		}
		return c.checkSecret(secret)
	}
	if len(secret) > 0 {
		return configErr("secret", "a shared secret is only used with HS256, HS384 and HS512, not %s", c.alg.name)
	}
	if pub == nil {
		return configErr("public_key", "%s needs a public key", c.alg.name)
	}
	if err := keyFitsAlg(pub, c.alg); err != nil {
		return &ConfigError{Field: "public_key", Err: err}
	}
	c.pub = pub
	return nil
}

func (c *core) checkSecret(secret []byte) error {
	if len(secret) == 0 {
		return configErr("secret", "%s needs a shared secret", c.alg.name)
	}
	if strings.Contains(string(secret), "-----BEGIN") {
		return configErr("secret", "the %s secret looks like a PEM key: a PEM key is never used as an HMAC secret", c.alg.name)
	}
	if len(secret) < c.alg.size {
		return configErr("secret", "the %s secret is %d bytes; it must be at least %d bytes (RFC 7518 §3.2)", c.alg.name, len(secret), c.alg.size)
	}
	c.secret = append([]byte(nil), secret...)
	return nil
}

// keyFitsAlg reports whether pub can verify info's algorithm.
func keyFitsAlg(pub crypto.PublicKey, info algInfo) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if info.family != famRSA && info.family != famPSS {
			return fmt.Errorf("%s needs %s, but the key is %s", info.name, wantKey(info), KeyType(pub))
		}
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("the RSA key has %d bits; at least %d are required", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if info.family != famEC {
			return fmt.Errorf("%s needs %s, but the key is %s", info.name, wantKey(info), KeyType(pub))
		}
		if k.Curve != info.curve {
			return fmt.Errorf("%s needs an ECDSA %s key, but the key is %s", info.name, info.curveN, KeyType(pub))
		}
	case ed25519.PublicKey:
		if info.family != famEd {
			return fmt.Errorf("%s needs %s, but the key is Ed25519", info.name, wantKey(info))
		}
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("the Ed25519 key is %d bytes, not %d", len(k), ed25519.PublicKeySize)
		}
	case nil:
		return fmt.Errorf("%s needs a key", info.name)
	default:
		return fmt.Errorf("unsupported key type %T", pub)
	}
	return nil
}

func wantKey(info algInfo) string {
	switch info.family {
	case famRSA, famPSS:
		return "an RSA key"
	case famEC:
		return "an ECDSA " + info.curveN + " key"
	case famEd:
		return "an Ed25519 key"
	default:
		return "a shared secret"
	}
}

// isToken reports whether s is a valid HTTP field name (RFC 9110 token).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}
