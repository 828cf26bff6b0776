package proxy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// testCert is a certificate made for a test, with its key.
type testCert struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// TLS returns the certificate as a tls.Certificate, with the
// given chain certificates appended.
func (c *testCert) TLS(chain ...*testCert) tls.Certificate {
	tc := tls.Certificate{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key, Leaf: c.Cert}
	for _, x := range chain {
		tc.Certificate = append(tc.Certificate, x.Cert.Raw)
	}
	return tc
}

// Pool returns a pool holding only this certificate.
func (c *testCert) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Cert)
	return p
}

var testSerial atomic.Int64

// certSpec describes a certificate to make.
type certSpec struct {
	CN        string
	CA        bool
	EKU       []x509.ExtKeyUsage
	NotBefore time.Time // default: an hour ago
	NotAfter  time.Time // default: in a day
	DNS       []string
	IPs       []net.IP
}

// newCert makes a certificate signed by parent (self-signed
// when parent is nil).
func newCert(t testing.TB, spec certSpec, parent *testCert) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if spec.NotBefore.IsZero() {
		spec.NotBefore = time.Now().Add(-time.Hour)
	}
	if spec.NotAfter.IsZero() {
		spec.NotAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1000 + testSerial.Add(1)),
		Subject:               pkix.Name{CommonName: spec.CN, Organization: []string{"ITP test"}},
		NotBefore:             spec.NotBefore,
		NotAfter:              spec.NotAfter,
		ExtKeyUsage:           spec.EKU,
		BasicConstraintsValid: true,
		IsCA:                  spec.CA,
		DNSNames:              spec.DNS,
		IPAddresses:           spec.IPs,
	}
	if spec.CA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	signer, parentCert := crypto.Signer(key), tmpl
	if parent != nil {
		signer, parentCert = parent.Key, parent.Cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{Cert: cert, Key: key}
}

var clientAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
var serverAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}

// state returns a connection state presenting the chain.
func state(chain ...*testCert) *tls.ConnectionState {
	cs := &tls.ConnectionState{HandshakeComplete: true}
	for _, c := range chain {
		cs.PeerCertificates = append(cs.PeerCertificates, c.Cert)
	}
	return cs
}
