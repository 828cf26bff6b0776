package itp

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"

	"github.com/caddy-itp/caddy-itp/ca"
)

func init() {
	caddy.RegisterModule(Issuer{})
}

// Issuer is the `tls.issuance.itp` certificate issuer: the platform's own
// server certificates, signed by the ITP root and obtained and renewed by
// Caddy's certificate automation (`tls { issuer itp }`). Participants
// verify them with the RootCA.crt they download with their client
// certificate.
type Issuer struct {
	// Lifetime of the server certificates. Caddy renews them when a third
	// of it is left. Default: 7 days (168h).
	Lifetime caddy.Duration `json:"lifetime,omitempty"`

	app *App
}

// CaddyModule returns the Caddy module information.
func (Issuer) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tls.issuance.itp",
		New: func() caddy.Module { return new(Issuer) },
	}
}

// Provision finds the itp app, loading it with defaults when the config
// does not have one.
func (iss *Issuer) Provision(ctx caddy.Context) error {
	if iss.Lifetime < 0 {
		return fmt.Errorf("itp issuer: lifetime must not be negative")
	}
	if iss.Lifetime == 0 {
		iss.Lifetime = caddy.Duration(ca.DefaultServerLifetime)
	}
	app, err := ctx.App("itp")
	if err != nil {
		return fmt.Errorf("itp issuer: loading the itp app: %w", err)
	}
	iss.app = app.(*App)
	return nil
}

// IssuerKey identifies this issuer's certificates in storage.
func (iss *Issuer) IssuerKey() string { return "itp" }

// Issue signs the CSR Caddy's certificate automation made for the site,
// adding the public_url host to its names.
func (iss *Issuer) Issue(_ context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	// the certificate also covers the host of the app's public_url, which
	// participants are given in every session URL
	secure, _ := iss.app.PublicURLs()
	certPEM, err := iss.app.Authority().IssueServer(csr, time.Duration(iss.Lifetime), secure.Hostname())
	if err != nil {
		return nil, err
	}
	return &certmagic.IssuedCertificate{Certificate: certPEM}, nil
}

// UnmarshalCaddyfile sets up the issuer from Caddyfile tokens. Syntax:
//
//	issuer itp {
//		lifetime <duration>
//	}
func (iss *Issuer) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // issuer name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "lifetime":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			iss.Lifetime = dur
		default:
			return d.Errf("unrecognized itp issuer option %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Issuer)(nil)
	_ certmagic.Issuer      = (*Issuer)(nil)
	_ caddyfile.Unmarshaler = (*Issuer)(nil)
)
