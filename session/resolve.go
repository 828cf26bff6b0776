package session

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"net/url"
	"sync/atomic"
	"time"
)

// Resolved is the compiled, immutable form of a session used on the request
// path: every reference resolved, every PEM parsed. It must not be modified.
type Resolved struct {
	// Session is the session as given (with its env references, not
	// redacted), with its id, warnings and Static flag set.
	Session Session
	// Components maps slugs to the compiled components.
	Components map[string]*ResolvedComponent
	// JWS are the compiled JWS rules, in the order of Session.JWS.
	JWS []ResolvedJWSRule
	// Expires is when the session stops answering; zero means never.
	Expires time.Time
}

// Expired reports whether the session has an expiry time that is not after
// now.
func (r *Resolved) Expired(now time.Time) bool {
	return !r.Expires.IsZero() && !now.Before(r.Expires)
}

// ResolvedComponent is a compiled component.
type ResolvedComponent struct {
	// Slug names the component.
	Slug string
	// Simulated is true when the platform plays the component.
	Simulated bool
	// BaseURL is the parsed base_url; nil when the component has none.
	BaseURL *url.URL
	// UseEncryption says whether the upstream leg uses TLS.
	UseEncryption bool
	// CACertPEM is the resolved PEM of the CA that verifies the SUT;
	// empty means the system roots.
	CACertPEM string
	// CAPool holds the certificates of CACertPEM; nil means the system
	// roots.
	CAPool *x509.CertPool
	// ClientChain is the DER of the client certificate, then of any
	// intermediates given with it; nil means no client certificate.
	ClientChain [][]byte
	// ClientCertNotAfter is when the client certificate expires; zero
	// when there is none.
	ClientCertNotAfter time.Time
	// AllowedClients holds the common names and lowercase hex SHA-256
	// fingerprints of the ITP certificates that may call as this
	// component; nil means any.
	AllowedClients map[string]struct{}
	// IdentityKey is the lowercase hex SHA-256 over the encryption flag,
	// the CA certificates and the client chain: components with the same
	// upstream identity have the same key and different identities never
	// do, so it can key a pool of upstream transports.
	IdentityKey string

	// derived holds what the app derives from this component once (see
	// Derived).
	derived atomic.Pointer[any]
}

// Derived returns what build derives from the component (the app's
// upstream identity, say), building it on first use only. A resolved
// component never changes (a change to its session resolves a new one),
// so what is derived from it stays right for its lifetime.
func (c *ResolvedComponent) Derived(build func() any) any {
	if v := c.derived.Load(); v != nil {
		return *v
	}
	v := build()
	c.derived.CompareAndSwap(nil, &v)
	return *c.derived.Load()
}

// ResolvedJWSRule is a JWS rule with its env references substituted and its
// mode defaulted.
type ResolvedJWSRule struct {
	JWSRule
	// Index is the position of the rule in the session's jws list.
	Index int
	// Compiled is what Options.CompileJWSRule returned for the rule; nil
	// without that hook, or when it failed for a session read back from
	// storage (the failure is then one of the session's warnings).
	Compiled any
}

// identityKey computes ResolvedComponent.IdentityKey. Every variable-length
// part is length-prefixed so that different identities cannot collide.
func identityKey(useEncryption bool, caDER [][]byte, chain [][]byte) string {
	h := sha256.New()
	h.Write([]byte("itp upstream identity v1\x00"))
	if !useEncryption {
		h.Write([]byte{0})
		return hex.EncodeToString(h.Sum(nil))
	}
	h.Write([]byte{1})
	var n [8]byte
	part := func(list [][]byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(list)))
		h.Write(n[:])
		for _, b := range list {
			binary.BigEndian.PutUint64(n[:], uint64(len(b)))
			h.Write(n[:])
			h.Write(b)
		}
	}
	part(caDER)
	part(chain)
	return hex.EncodeToString(h.Sum(nil))
}
