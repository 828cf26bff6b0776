package proxy

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// Identity is what the platform is on the Proxy → Server leg
// for one session component (DESIGN.md §1, §3): whether it
// speaks TLS, which CA it trusts for the SUT's certificate,
// and which client certificate it presents.
type Identity struct {
	// Key names the identity in the Pool: requests with equal
	// keys share connections. It must change whenever any
	// other field changes; session.ResolvedComponent.IdentityKey
	// is such a key. (The Pool also compares the other fields, so a
	// stale key costs a new transport, never a connection
	// with the wrong identity.)
	Key string

	// UseEncryption selects TLS (https) or plain HTTP.
	UseEncryption bool

	// RootCAs verifies the SUT's server certificate; nil
	// means the system's roots. The pool must not be changed
	// after the Identity is first used.
	RootCAs *x509.CertPool

	// ClientChain is the DER client certificate chain the
	// platform presents (leaf first); empty for server-only
	// TLS.
	ClientChain [][]byte

	// ClientKey is the private key of ClientChain[0]; it must
	// be a crypto.Signer. Required when ClientChain is set.
	ClientKey crypto.PrivateKey
}

type identityCtxKey struct{}

// WithIdentity returns a copy of ctx that carries id, for
// Pool.RoundTrip.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityCtxKey{}, id)
}

// IdentityFrom returns the Identity ctx carries, or nil.
func IdentityFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityCtxKey{}).(*Identity)
	return id
}

// ErrNoIdentity is returned by Pool.RoundTrip for a request
// whose context carries no Identity: the pool never falls back
// to a default identity.
var ErrNoIdentity = errors.New("proxy: no upstream identity in the request context")

// errNoKey is returned for an Identity without a Key.
var errNoKey = errors.New("proxy: upstream identity has no key")

// Defaults of PoolOptions, in line with Caddy's reverse_proxy
// HTTP transport where it has one.
const (
	DefaultDialTimeout         = 3 * time.Second
	DefaultTLSHandshakeTimeout = 10 * time.Second
	DefaultKeepAliveInterval   = 30 * time.Second
	DefaultMaxIdleConnsPerHost = 32
	DefaultIdleConnTimeout     = 2 * time.Minute
	DefaultIdentityIdleTimeout = 10 * time.Minute
	DefaultMaxIdentities       = 1024
)

// PoolOptions tune a Pool; the zero value gives the defaults.
type PoolOptions struct {
	// DialTimeout bounds connecting to the SUT. Default 3s.
	DialTimeout time.Duration

	// TLSHandshakeTimeout bounds the TLS handshake with the
	// SUT. Default 10s.
	TLSHandshakeTimeout time.Duration

	// KeepAliveInterval is the TCP keep-alive probe interval.
	// Default 30s.
	KeepAliveInterval time.Duration

	// MaxIdleConnsPerHost is the number of idle connections
	// kept per identity and SUT address. Default 32.
	MaxIdleConnsPerHost int

	// IdleConnTimeout closes a connection idle this long.
	// Default 2m.
	IdleConnTimeout time.Duration

	// ResponseHeaderTimeout bounds the wait for the SUT's
	// response headers once the request is written. Default:
	// none, as in Caddy.
	ResponseHeaderTimeout time.Duration

	// IdentityIdleTimeout forgets an identity (and closes its
	// idle connections) when it has not been used this long.
	// Default 10m.
	IdentityIdleTimeout time.Duration

	// MaxIdentities bounds the number of identities kept; the
	// least recently used is forgotten to make room. Default
	// 1024.
	MaxIdentities int

	// Now returns the current time. Default: time.Now.
	Now func() time.Time
}

// Pool is the Proxy → Server leg's http.RoundTripper: it
// keeps one pooled *http.Transport per distinct Identity, so
// requests with the same identity share connections and
// requests with different identities never do, even to the
// same SUT. It is safe for concurrent use.
type Pool struct {
	opts      PoolOptions
	mu        sync.RWMutex
	entries   map[string]*poolEntry
	lastSweep atomic.Int64
}

// poolEntry is one identity's transport.
type poolEntry struct {
	id       atomic.Pointer[Identity] // the identity last seen under this key
	tr       *http.Transport
	lastUsed atomic.Int64 // unix nanoseconds
}

// NewPool returns an empty Pool.
func NewPool(opts PoolOptions) *Pool {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.TLSHandshakeTimeout <= 0 {
		opts.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	if opts.KeepAliveInterval <= 0 {
		opts.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if opts.MaxIdleConnsPerHost <= 0 {
		opts.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if opts.IdleConnTimeout <= 0 {
		opts.IdleConnTimeout = DefaultIdleConnTimeout
	}
	if opts.IdentityIdleTimeout <= 0 {
		opts.IdentityIdleTimeout = DefaultIdentityIdleTimeout
	}
	if opts.MaxIdentities <= 0 {
		opts.MaxIdentities = DefaultMaxIdentities
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Pool{opts: opts, entries: make(map[string]*poolEntry)}
}

// RoundTrip sends req with the Identity its context carries
// (see WithIdentity). Like Caddy's own HTTP transport, it sets
// req.URL.Scheme in place: "https" when the identity uses
// encryption, "http" when not, whatever it was before. The
// SUT's certificate is verified for the host of req.URL, which
// is also the SNI: the caller points req.URL.Host at the
// target's base_url host:port and sets req.Host to its host.
//
// Errors are returned unchanged apart from a wrapper that keeps
// errors.Is, errors.As and net.Error working; a dial failure
// also matches reverseproxy.DialError, so Caddy's reverse proxy
// knows the request never reached the SUT and may be retried.
// ClassifyUpstreamError explains them.
func (p *Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	id := IdentityFrom(req.Context())
	if id == nil {
		return nil, ErrNoIdentity
	}
	tr, err := p.Transport(id)
	if err != nil {
		return nil, &upstreamError{err: err, id: id}
	}
	if id.UseEncryption {
		req.URL.Scheme = "https"
	} else {
		req.URL.Scheme = "http"
	}
	res, err := tr.RoundTrip(req)
	if err != nil {
		return nil, &upstreamError{err: err, id: id}
	}
	return res, nil
}

// Transport returns the pooled transport for id, making it on
// first use.
func (p *Pool) Transport(id *Identity) (*http.Transport, error) {
	if id.Key == "" {
		return nil, errNoKey
	}
	now := p.opts.Now().UnixNano()
	p.maybeSweep(now)

	p.mu.RLock()
	e := p.entries[id.Key]
	p.mu.RUnlock()
	if e != nil && e.matches(id) {
		e.lastUsed.Store(now)
		return e.tr, nil
	}
	return p.add(id, now)
}

// add makes and stores the transport for id, replacing one
// stored under the same key for another identity.
func (p *Pool) add(id *Identity, now int64) (*http.Transport, error) {
	tr, err := p.newTransport(id)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.entries[id.Key]; e != nil {
		if e.matches(id) {
			// another request made it first
			tr.CloseIdleConnections()
			e.lastUsed.Store(now)
			return e.tr, nil
		}
		// same key, other identity: the old connections must
		// not be used again
		delete(p.entries, id.Key)
		e.tr.CloseIdleConnections()
	}
	for len(p.entries) >= p.opts.MaxIdentities {
		p.evictOldestLocked()
	}
	e := &poolEntry{tr: tr}
	e.id.Store(id)
	e.lastUsed.Store(now)
	p.entries[id.Key] = e
	return tr, nil
}

// matches reports whether id is the identity e was made for.
func (e *poolEntry) matches(id *Identity) bool {
	cur := e.id.Load()
	if cur == id {
		return true
	}
	if !sameIdentity(cur, id) {
		return false
	}
	e.id.Store(id) // take the pointer fast path next time
	return true
}

// sameIdentity compares two identities field by field.
func sameIdentity(a, b *Identity) bool {
	if a.Key != b.Key || a.UseEncryption != b.UseEncryption || len(a.ClientChain) != len(b.ClientChain) {
		return false
	}
	if !a.UseEncryption {
		return true
	}
	if a.RootCAs != b.RootCAs && (a.RootCAs == nil || b.RootCAs == nil || !a.RootCAs.Equal(b.RootCAs)) {
		return false
	}
	for i := range a.ClientChain {
		if !bytes.Equal(a.ClientChain[i], b.ClientChain[i]) {
			return false
		}
	}
	if a.ClientKey == nil || b.ClientKey == nil {
		return a.ClientKey == nil && b.ClientKey == nil
	}
	// keys are compared with their Equal method, never with
	// == (an ed25519.PrivateKey is a slice: == would panic)
	k, ok := a.ClientKey.(interface{ Equal(crypto.PrivateKey) bool })
	return ok && k.Equal(b.ClientKey)
}

// maybeSweep forgets the identities unused for longer than
// IdentityIdleTimeout, at most every quarter of it.
func (p *Pool) maybeSweep(now int64) {
	last := p.lastSweep.Load()
	every := int64(p.opts.IdentityIdleTimeout / 4)
	if now-last < every || !p.lastSweep.CompareAndSwap(last, now) {
		return
	}
	cutoff := now - int64(p.opts.IdentityIdleTimeout)
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, e := range p.entries {
		if e.lastUsed.Load() < cutoff {
			delete(p.entries, k)
			e.tr.CloseIdleConnections()
		}
	}
}

// evictOldestLocked forgets the least recently used identity.
func (p *Pool) evictOldestLocked() {
	var oldestKey string
	var oldest *poolEntry
	for k, e := range p.entries {
		if oldest == nil || e.lastUsed.Load() < oldest.lastUsed.Load() {
			oldestKey, oldest = k, e
		}
	}
	if oldest != nil {
		delete(p.entries, oldestKey)
		oldest.tr.CloseIdleConnections()
	}
}

// Evict forgets the identity stored under key and closes its
// idle connections; requests in flight finish normally. Use it
// when a session or its certificates are deleted.
func (p *Pool) Evict(key string) {
	p.mu.Lock()
	e := p.entries[key]
	delete(p.entries, key)
	p.mu.Unlock()
	if e != nil {
		e.tr.CloseIdleConnections()
	}
}

// Len returns the number of identities in the pool.
func (p *Pool) Len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.entries)
}

// CloseIdleConnections forgets every identity and closes their
// idle connections (call it from a Caddy module's Cleanup). The
// pool stays usable: identities are made again on demand.
func (p *Pool) CloseIdleConnections() {
	p.mu.Lock()
	entries := p.entries
	p.entries = make(map[string]*poolEntry)
	p.mu.Unlock()
	for _, e := range entries {
		e.tr.CloseIdleConnections()
	}
}

// newTransport makes the transport for id.
func (p *Pool) newTransport(id *Identity) (*http.Transport, error) {
	dialer := &net.Dialer{
		Timeout: p.opts.DialTimeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Interval: p.opts.KeepAliveInterval,
		},
	}
	tr := &http.Transport{
		// the SUT is dialled directly: no proxy from the
		// environment may see (or break) the identity
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, dialError{err}
			}
			return conn, nil
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   p.opts.MaxIdleConnsPerHost,
		IdleConnTimeout:       p.opts.IdleConnTimeout,
		TLSHandshakeTimeout:   p.opts.TLSHandshakeTimeout,
		ResponseHeaderTimeout: p.opts.ResponseHeaderTimeout,
		// a test proxy forwards what it gets: no added
		// Accept-Encoding, no transparent decompression
		DisableCompression: true,
	}
	if !id.UseEncryption {
		return tr, nil
	}

	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    id.RootCAs,
		// resumption stays within the identity's transport
		ClientSessionCache: tls.NewLRUClientSessionCache(0),
	}
	if len(id.ClientChain) > 0 {
		cert, err := clientCertificate(id)
		if err != nil {
			return nil, err
		}
		// always present the certificate, even when the SUT
		// names acceptable CAs that do not include its issuer
		// (Go's default would then send none, and the SUT's
		// complaint would be "certificate required" instead of
		// the real fault)
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
	}
	tr.TLSClientConfig = cfg
	return tr, nil
}

// clientCertificate assembles and checks id's client
// certificate.
func clientCertificate(id *Identity) (*tls.Certificate, error) {
	leaf, err := x509.ParseCertificate(id.ClientChain[0])
	if err != nil {
		return nil, fmt.Errorf("proxy: parsing the upstream client certificate: %w", err)
	}
	signer, ok := id.ClientKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("proxy: upstream client certificate CN=%s has no usable private key", leaf.Subject.CommonName)
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(signer.Public()) {
		return nil, fmt.Errorf("proxy: upstream client certificate CN=%s is not for the platform's upstream key", leaf.Subject.CommonName)
	}
	return &tls.Certificate{Certificate: id.ClientChain, PrivateKey: id.ClientKey, Leaf: leaf}, nil
}

// dialError marks an error of dialing the SUT. It matches
// reverseproxy.DialError in errors.As, so Caddy's reverse proxy
// treats it as a failure to connect (safe to retry).
type dialError struct{ err error }

func (e dialError) Error() string { return e.err.Error() }
func (e dialError) Unwrap() error { return e.err }

// As lets errors.As find a reverseproxy.DialError.
func (e dialError) As(target any) bool {
	if t, ok := target.(*reverseproxy.DialError); ok {
		*t = reverseproxy.NewDialError(e.err)
		return true
	}
	return false
}

// upstreamError is an error of a round trip through the Pool;
// it remembers the identity for ClassifyUpstreamError.
type upstreamError struct {
	err error
	id  *Identity
}

func (e *upstreamError) Error() string { return e.err.Error() }
func (e *upstreamError) Unwrap() error { return e.err }

// Timeout implements net.Error, as Caddy's reverse proxy
// answers 504 for a timeout error.
func (e *upstreamError) Timeout() bool {
	var ne net.Error
	return errors.As(e.err, &ne) && ne.Timeout()
}

// Temporary implements net.Error.
func (e *upstreamError) Temporary() bool { return false }

// Interface guards
var (
	_ http.RoundTripper = (*Pool)(nil)
	_ net.Error         = (*upstreamError)(nil)
)
