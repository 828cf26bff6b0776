package ca

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"slices"
	"time"
)

// DefaultServerLifetime is the validity of the platform's own server
// certificates; Caddy's certificate automation renews them well before.
const DefaultServerLifetime = 7 * 24 * time.Hour

// IssueServer signs a server certificate for a CSR made by Caddy's
// certificate automation. The names come from the CSR's SANs (Caddy puts
// the site's names there), plus extraNames (DNS names or IP addresses, such
// as the host of the platform's public URL); nothing else of the CSR is
// kept.
func (a *Authority) IssueServer(csr *x509.CertificateRequest, lifetime time.Duration, extraNames ...string) ([]byte, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("itp ca: server CSR signature: %w", err)
	}
	if len(csr.DNSNames) == 0 && len(csr.IPAddresses) == 0 {
		return nil, fmt.Errorf("itp ca: server CSR names no host")
	}
	if lifetime <= 0 {
		lifetime = DefaultServerLifetime
	}
	serial, err := RandomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Add(-time.Minute)
	// during a root's transition the server certificates still come from
	// the previous root, which participants who have not fetched the new
	// RootCA.crt yet trust, until the transition is nearly over
	issuer, issuerKey, limit := a.Root, a.key, a.Root.NotAfter
	if len(a.previous) > 0 && a.previous[0].until.Sub(now) > lifetime/2 {
		issuer, issuerKey, limit = a.previous[0].cert, a.previous[0].key, a.previous[0].until
	}
	notAfter := now.Add(lifetime)
	if notAfter.After(limit) {
		notAfter = limit
	}
	dnsNames, ips := slices.Clone(csr.DNSNames), slices.Clone(csr.IPAddresses)
	for _, n := range extraNames {
		if ip := net.ParseIP(n); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if n != "" && !slices.Contains(dnsNames, n) {
			dnsNames = append(dnsNames, n)
		}
	}
	cn := ""
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	keyUsage := x509.KeyUsageDigitalSignature
	if _, ok := csr.PublicKey.(*rsa.PublicKey); ok {
		keyUsage |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              dnsNames,
		IPAddresses:           ips,
		NotBefore:             now,
		NotAfter:              notAfter,
		KeyUsage:              keyUsage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, csr.PublicKey, issuerKey)
	if err != nil {
		return nil, fmt.Errorf("itp ca: signing server certificate: %w", err)
	}
	return EncodeCertPEM(der), nil
}
