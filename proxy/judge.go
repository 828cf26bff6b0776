package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// StatusNoCertificate is the status the ITP answers a secure
// testing route with when no client certificate was presented
// (nginx's non-standard "496 SSL Certificate Required").
const StatusNoCertificate = 496

// DefaultJudgeCacheSize is the default number of leaf
// certificates whose chain verification a Judge remembers.
const DefaultJudgeCacheSize = 4096

// Verdict is a Judge's decision about the client certificate
// of one request.
type Verdict struct {
	// OK is true when the certificate is valid for the ITP
	// and allowed for the component.
	OK bool

	// Present is true when the client presented a certificate.
	Present bool

	// Status is 0 when OK, StatusNoCertificate (496) when no
	// certificate was presented and 403 when it is not valid.
	Status int

	// Reason says in plain English why the certificate is
	// refused; it is empty when OK.
	Reason string

	// Subject is the certificate's subject (RFC 2253, e.g.
	// "CN=alice,O=Payer Bank"), empty when none was presented.
	Subject string

	// Serial is the certificate's serial number in lowercase
	// hexadecimal without leading zeros (big.Int.Text(16)).
	Serial string

	// Issuer is the certificate's issuer (RFC 2253).
	Issuer string
}

// JudgeOptions tune a Judge; the zero value is usable.
type JudgeOptions struct {
	// CacheSize bounds the number of leaf certificates whose
	// chain verification is remembered. Default:
	// DefaultJudgeCacheSize.
	CacheSize int

	// HowToGet ends the reason given when no client
	// certificate was presented, telling the participant how
	// to get one. Default: "get one by sending a certificate
	// signing request to /itp/certificates (the CA is at
	// /itp/RootCA.crt)".
	HowToGet string

	// Now returns the current time. Default: time.Now.
	Now func() time.Time
}

// Judge decides per request whether a client certificate is
// valid for the ITP (DESIGN.md §4): it chains to the ITP CA,
// has the clientAuth extended key usage, is within its
// validity period, is not revoked, and is allowed to call as
// the component. It is safe for concurrent use.
//
// Chain verification is expensive, so its outcome is cached
// per leaf certificate (keyed by the leaf's DER encoding) for
// the root pool it was made with; the validity period,
// revocation and allowed list are checked on every call. The
// cached outcome does not depend on the intermediates a client
// sends: once a leaf was shown to chain to the roots, it does
// so on any connection. Chain outcomes that depend on time (an
// expired intermediate) are never cached.
type Judge struct {
	roots    func() *x509.CertPool
	revoked  func(serial *big.Int) bool
	now      func() time.Time
	size     int
	noCert   atomic.Pointer[string]
	mu       sync.RWMutex
	pool     *x509.CertPool // the pool cache belongs to
	cache    map[string]*chainOutcome
	verifies atomic.Uint64 // chain verifications made, for tests
}

// chainOutcome is what a Judge remembers about a leaf
// certificate: everything that does not change between
// requests.
type chainOutcome struct {
	reason      string // why the chain is refused; "" when it verified
	timely      bool   // the reason depends on the time of verification
	subject     string
	serial      string
	issuer      string
	cn          string
	fingerprint string // lowercase hex SHA-256 of the leaf's DER
	serialInt   *big.Int
	notBefore   time.Time // the latest NotBefore in the verified chain
	notAfter    time.Time // the leaf's NotAfter
	caNotAfter  time.Time // the earliest NotAfter of the chain's CA certificates
	caName      string    // the subject of that CA certificate
}

// NewJudge returns a Judge that verifies client certificates
// against the pool roots returns, and asks revoked (if not nil)
// whether a serial number was revoked.
//
// roots is called on every judgement and must be cheap (return
// a stored pointer). A pool must not be changed once returned:
// to change the trusted CAs (CA import or renewal), return a new
// *x509.CertPool; the Judge notices the new pointer and forgets
// every cached chain. A nil pool refuses every certificate.
//
// revoked is called on every judgement too, never cached, so a
// revocation takes effect on the next request, also on a
// connection that is already open.
func NewJudge(roots func() *x509.CertPool, revoked func(serial *big.Int) bool, opts JudgeOptions) *Judge {
	j := &Judge{
		roots:   roots,
		revoked: revoked,
		now:     opts.Now,
		size:    opts.CacheSize,
	}
	if j.now == nil {
		j.now = time.Now
	}
	if j.size <= 0 {
		j.size = DefaultJudgeCacheSize
	}
	howTo := opts.HowToGet
	if howTo == "" {
		howTo = "get one by sending a certificate signing request to /itp/certificates (the CA is at /itp/RootCA.crt)"
	}
	j.SetHowToGet(howTo)
	return j
}

// SetHowToGet changes the end of the reason given when no client
// certificate was presented (see JudgeOptions.HowToGet), e.g. when the
// platform's public URL changes with a config reload.
func (j *Judge) SetHowToGet(howTo string) {
	msg := "no client certificate was presented; " + howTo
	j.noCert.Store(&msg)
}

// Judge decides whether the client certificate of the
// connection cs (nil for plain HTTP) is valid for the ITP and
// allowed to call as component. allowed holds the common names
// and the lowercase hex SHA-256 fingerprints (of the leaf's DER)
// of the certificates that may call as the component; nil or
// empty allows any valid certificate (session.ResolvedComponent.AllowedClients).
// A valid certificate with a cached chain is judged without
// allocating.
func (j *Judge) Judge(cs *tls.ConnectionState, component string, allowed map[string]struct{}) Verdict {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return Verdict{Status: StatusNoCertificate, Reason: *j.noCert.Load()}
	}
	leaf := cs.PeerCertificates[0]
	now := j.now()

	pool := j.roots()
	if pool == nil {
		o := describe(leaf)
		return o.refuse("no ITP CA is configured to verify client certificates")
	}
	o := j.lookup(pool, leaf.Raw)
	if o == nil {
		var cacheable bool
		j.verifies.Add(1)
		o, cacheable = verifyChain(pool, cs.PeerCertificates, now)
		if cacheable {
			j.store(pool, leaf.Raw, o)
		}
	}
	if o.reason != "" && !o.timely {
		return o.refuse(o.reason)
	}

	switch {
	case now.After(o.notAfter):
		return o.refuse("client certificate expired on " + o.notAfter.UTC().Format(time.RFC3339))
	case now.Before(o.notBefore):
		return o.refuse("client certificate is not valid before " + o.notBefore.UTC().Format(time.RFC3339))
	case o.reason != "":
		// the leaf is within its validity period but a CA
		// certificate of its chain is not
		return o.refuse(o.reason)
	case now.After(o.caNotAfter):
		return o.refuse("the CA certificate " + o.caName + " that signed the client certificate expired on " +
			o.caNotAfter.UTC().Format(time.RFC3339))
	}
	if j.revoked != nil && j.revoked(o.serialInt) {
		return o.refuse("client certificate was revoked")
	}
	if len(allowed) > 0 {
		_, ok := allowed[o.fingerprint]
		if !ok && o.cn != "" {
			_, ok = allowed[o.cn]
		}
		if !ok {
			return o.refuse(fmt.Sprintf("client certificate CN=%s (sha256 %s) is not allowed to call as component %s",
				o.cn, o.fingerprint, component))
		}
	}
	return Verdict{OK: true, Present: true, Subject: o.subject, Serial: o.serial, Issuer: o.issuer}
}

// Reset forgets every cached chain verification.
func (j *Judge) Reset() {
	j.mu.Lock()
	j.pool, j.cache = nil, nil
	j.mu.Unlock()
}

// lookup returns the cached outcome for the leaf DER under
// pool, or nil.
func (j *Judge) lookup(pool *x509.CertPool, der []byte) *chainOutcome {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.pool != pool {
		return nil
	}
	return j.cache[string(der)]
}

// store caches the outcome for the leaf DER under pool,
// dropping the cache if it was made for another pool and
// evicting arbitrary entries when it is full.
func (j *Judge) store(pool *x509.CertPool, der []byte, o *chainOutcome) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.pool != pool || j.cache == nil {
		j.pool = pool
		j.cache = make(map[string]*chainOutcome)
	}
	if len(j.cache) >= j.size {
		// map iteration order is unspecified and in practice
		// random: this drops an arbitrary eighth of the entries
		drop := max(1, j.size/8)
		for k := range j.cache {
			delete(j.cache, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	j.cache[string(der)] = o
}

// refuse returns a 403 verdict for the certificate o describes.
func (o *chainOutcome) refuse(reason string) Verdict {
	return Verdict{
		Present: true,
		Status:  http.StatusForbidden,
		Reason:  reason,
		Subject: o.subject,
		Serial:  o.serial,
		Issuer:  o.issuer,
	}
}

// describe fills the parts of an outcome that come from the
// leaf alone.
func describe(leaf *x509.Certificate) *chainOutcome {
	sum := sha256.Sum256(leaf.Raw)
	o := &chainOutcome{
		subject:     leaf.Subject.String(),
		issuer:      leaf.Issuer.String(),
		cn:          leaf.Subject.CommonName,
		fingerprint: hex.EncodeToString(sum[:]),
		serialInt:   leaf.SerialNumber,
		notBefore:   leaf.NotBefore,
		notAfter:    leaf.NotAfter,
	}
	if leaf.SerialNumber != nil {
		o.serial = leaf.SerialNumber.Text(16)
	} else {
		o.serialInt = new(big.Int)
	}
	return o
}

// verifyChain verifies the presented chain (leaf first)
// against roots for client authentication and reports whether
// the outcome may be cached. The leaf's own validity period is
// left to the caller: the chain is verified at now clamped into
// the leaf's validity period, so that an expired certificate
// from a foreign CA is reported as foreign.
func verifyChain(roots *x509.CertPool, presented []*x509.Certificate, now time.Time) (*chainOutcome, bool) {
	leaf := presented[0]
	o := describe(leaf)

	at := now
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	}
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	var inter *x509.CertPool
	if len(presented) > 1 {
		inter = x509.NewCertPool()
		for _, c := range presented[1:] {
			inter.AddCert(c)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		o.reason = chainReason(err, leaf)
		var cie x509.CertificateInvalidError
		o.timely = errors.As(err, &cie) && cie.Reason == x509.Expired
		return o, !o.timely
	}

	// x509 accepts a leaf without any extended key usage for
	// every usage; the ITP CA always sets clientAuth, so
	// require it explicitly
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		o.reason = "client certificate lacks the clientAuth extended key usage"
		return o, true
	}
	if leaf.IsCA {
		o.reason = "client certificate is a CA certificate, not a client certificate"
		return o, true
	}

	// of the verified chains, keep the one that stays valid
	// the longest
	for i, chain := range chains {
		var nb, na time.Time
		var name string
		for k, c := range chain {
			if c.NotBefore.After(nb) {
				nb = c.NotBefore
			}
			if k > 0 && (na.IsZero() || c.NotAfter.Before(na)) {
				na, name = c.NotAfter, c.Subject.String()
			}
		}
		if i == 0 || na.After(o.caNotAfter) {
			o.notBefore, o.caNotAfter, o.caName = nb, na, name
		}
	}
	return o, true
}

// chainReason explains a chain verification error in plain
// English.
func chainReason(err error, leaf *x509.Certificate) string {
	var uae x509.UnknownAuthorityError
	if errors.As(err, &uae) {
		return "client certificate is not signed by the ITP CA (its issuer is " + leaf.Issuer.String() + ")"
	}
	var cie x509.CertificateInvalidError
	if errors.As(err, &cie) {
		switch cie.Reason {
		case x509.IncompatibleUsage:
			return "client certificate lacks the clientAuth extended key usage"
		case x509.Expired:
			name := "a CA certificate in its chain"
			if cie.Cert != nil {
				name = "the CA certificate " + cie.Cert.Subject.String()
			}
			return "client certificate chain is not valid now: " + name +
				" is outside its validity period (" + strings.TrimPrefix(cie.Detail, "current time ") + ")"
		case x509.NotAuthorizedToSign:
			return "client certificate is signed by a certificate that is not a CA"
		}
	}
	return "client certificate could not be verified against the ITP CA: " + err.Error()
}
