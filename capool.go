package itp

import (
	"crypto/x509"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
)

func init() {
	caddy.RegisterModule(CAPool{})
}

// CAPool is the `tls.ca_pool.source.itp` trust pool: the ITP root as the
// client-auth trust pool of a TLS connection policy. Use it with client
// auth mode `request`, so that the handshake asks for a certificate and
// advertises the ITP root, and the `itp` handler judges the certificate per
// request and records the verdict:
//
//	client_auth {
//		mode request
//		trust_pool itp
//	}
type CAPool struct {
	app *App
}

// CaddyModule returns the Caddy module information.
func (CAPool) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tls.ca_pool.source.itp",
		New: func() caddy.Module { return new(CAPool) },
	}
}

// Provision finds the itp app, loading it with defaults when the config
// does not have one.
func (p *CAPool) Provision(ctx caddy.Context) error {
	app, err := ctx.App("itp")
	if err != nil {
		return fmt.Errorf("itp trust pool: loading the itp app: %w", err)
	}
	p.app = app.(*App)
	return nil
}

// CertPool returns a pool holding the ITP root (and, after a renewal, the
// previous root during its transition). Caddy reads it when it loads the
// config, for the CA names the handshake advertises; the itp handler
// judges certificates against the live roots.
func (p *CAPool) CertPool() *x509.CertPool { return p.app.Authority().Pool() }

// Certificates returns the ITP root, so the pool combines with others.
func (p *CAPool) Certificates() []*x509.Certificate {
	return p.app.Authority().Roots()
}

// UnmarshalCaddyfile sets up the pool from Caddyfile tokens. Syntax:
//
//	trust_pool itp
func (p *CAPool) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // pool name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("the itp trust pool takes no options")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner            = (*CAPool)(nil)
	_ caddytls.CA                  = (*CAPool)(nil)
	_ caddytls.CertificateProvider = (*CAPool)(nil)
	_ caddyfile.Unmarshaler        = (*CAPool)(nil)
)
