package session

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap/zaptest"
)

// pki is a set of real keys and certificates for tests.
type pki struct {
	upstreamKey *ecdsa.PrivateKey // the platform's upstream key
	caKey       *ecdsa.PrivateKey
	caCert      *x509.Certificate
	caPEM       string
	otherCAPEM  string
	clientPEM   string // for the upstream key, signed by ca, valid a year
	soonPEM     string // for the upstream key, signed by ca, expires in 3 days
	expiredPEM  string // for the upstream key, expired
	// expiredCAPEM is a CA certificate that has expired
	expiredCAPEM string
	foreignPEM   string // for the upstream key, signed by another CA
	wrongKeyPEM  string // for another key, signed by ca
	jwsPubPEM    string
	jwsPrivPEM   string
	jwsPubPEM2   string
}

var testPKI *pki

func getPKI(t testing.TB) *pki {
	t.Helper()
	if testPKI != nil {
		return testPKI
	}
	p := &pki{}
	p.upstreamKey = newKey(t)
	p.caKey = newKey(t)
	now := time.Now()
	p.caCert = makeCert(t, "SUT CA", true, p.caKey.Public(), nil, p.caKey, now.Add(-time.Hour), now.Add(5*365*24*time.Hour))
	p.caPEM = pemCert(p.caCert)
	otherKey := newKey(t)
	otherCA := makeCert(t, "Other CA", true, otherKey.Public(), nil, otherKey, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	p.otherCAPEM = pemCert(otherCA)
	p.expiredCAPEM = pemCert(makeCert(t, "Old CA", true, otherKey.Public(), nil, otherKey, now.Add(-48*time.Hour), now.Add(-24*time.Hour)))
	up := p.upstreamKey.Public()
	p.clientPEM = pemCert(makeCert(t, "platform", false, up, p.caCert, p.caKey, now.Add(-time.Hour), now.Add(365*24*time.Hour)))
	p.soonPEM = pemCert(makeCert(t, "platform", false, up, p.caCert, p.caKey, now.Add(-time.Hour), now.Add(3*24*time.Hour)))
	p.expiredPEM = pemCert(makeCert(t, "platform", false, up, p.caCert, p.caKey, now.Add(-48*time.Hour), now.Add(-24*time.Hour)))
	p.foreignPEM = pemCert(makeCert(t, "platform", false, up, otherCA, otherKey, now.Add(-time.Hour), now.Add(365*24*time.Hour)))
	p.wrongKeyPEM = pemCert(makeCert(t, "someone", false, newKey(t).Public(), p.caCert, p.caKey, now.Add(-time.Hour), now.Add(365*24*time.Hour)))
	jk := newKey(t)
	p.jwsPubPEM = pemPub(t, jk.Public())
	p.jwsPrivPEM = pemPriv(t, jk)
	p.jwsPubPEM2 = pemPub(t, newKey(t).Public())
	testPKI = p
	return p
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var serial int64

func makeCert(t testing.TB, cn string, isCA bool, pub crypto.PublicKey, parent *x509.Certificate, signer crypto.Signer, from, to time.Time) *x509.Certificate {
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             from,
		NotAfter:              to,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemCert(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func pemPub(t testing.TB, k crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func pemPriv(t testing.TB, k crypto.PrivateKey) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func newStorage(t testing.TB) *certmagic.FileStorage {
	return &certmagic.FileStorage{Path: t.TempDir()}
}

func newRegistry(t testing.TB, storage certmagic.Storage, opts Options) *Registry {
	t.Helper()
	if opts.UpstreamPublicKey == nil {
		opts.UpstreamPublicKey = getPKI(t).upstreamKey.Public()
	}
	r, err := New(storage, zaptest.NewLogger(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func boolp(b bool) *bool { return &b }

// validSession is a session that passes validation.
func validSession(t testing.TB, id string) Session {
	p := getPKI(t)
	return Session{
		ID:   id,
		Name: "p2p demo",
		Components: []Component{
			{Slug: "payer", BaseURL: "https://payer.example:9443/api", CACert: p.caPEM, ClientCert: p.clientPEM},
			{Slug: "hub", Simulated: true},
		},
		Environment: map[string]string{
			"PAYER_JWS_PUBLIC_KEY": p.jwsPubPEM,
			"HUB_JWS_PRIVATE_KEY":  p.jwsPrivPEM,
			"HUB_JWS_PUBLIC_KEY":   p.jwsPubPEM,
		},
		JWS: []JWSRule{
			{Source: "payer", Target: "hub", Direction: "request", Header: "FSPIOP-Signature", Format: "mojaloop", Alg: "ES256",
				PublicKey: "{{ env.PAYER_JWS_PUBLIC_KEY }}", ProtectedHeaders: []string{"FSPIOP-URI", "FSPIOP-Source"}},
			{Source: "payer", Target: "hub", Direction: "response", Header: "FSPIOP-Signature", Format: "mojaloop", Alg: "ES256",
				PublicKey: "{{env.HUB_JWS_PUBLIC_KEY}}", PrivateKey: "{{ file_env.HUB_JWS_PRIVATE_KEY }}"},
		},
	}
}
