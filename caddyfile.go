package itp

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("itp", parseGlobalOption)
	// itp_ca, then the JWS gateway, then the testing routes, all before
	// the handlers that answer for simulated components (respond,
	// reverse_proxy, file_server, ...) and after authentication handlers
	// (basic_auth, forward_auth), which can so protect itp_ca.
	httpcaddyfile.RegisterDirectiveOrder("itp_ca", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("itp_jws", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("itp", httpcaddyfile.Before, "respond")
}

// parseGlobalOption sets up the itp app from the `itp` global option.
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "itp", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from Caddyfile tokens. Syntax:
//
//	itp {
//		public_url          <https://host[:port]>
//		public_insecure_url <http://host[:port]>
//		upstream_key_type   ecdsa_p256|ecdsa_p384|rsa2048|rsa3072|rsa4096|ed25519
//		sync_interval       <duration>
//		ca {
//			key_type         ecdsa_p256|ecdsa_p384|rsa2048|rsa3072|rsa4096|ed25519
//			validity         <duration>
//			common_name      <name>
//			import_cert      <cert_file>
//			import_key       <key_file>
//			name_constraints <name|ip|cidr...>
//		}
//		issuance {
//			validity        <duration>
//			max_records     <n>
//			rate_per_minute <n>
//		}
//	}
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "public_url":
			if !d.AllArgs(&a.PublicURL) {
				return d.ArgErr()
			}
		case "public_insecure_url":
			if !d.AllArgs(&a.PublicInsecureURL) {
				return d.ArgErr()
			}
		case "upstream_key_type":
			if !d.AllArgs(&a.UpstreamKeyType) {
				return d.ArgErr()
			}
		case "sync_interval":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			a.SyncInterval = dur
		case "ca":
			if a.CA == nil {
				a.CA = new(CAConfig)
			}
			if err := a.CA.unmarshalCaddyfile(d); err != nil {
				return err
			}
		case "issuance":
			if a.Issuance == nil {
				a.Issuance = new(IssuanceConfig)
			}
			if err := a.Issuance.unmarshalCaddyfile(d); err != nil {
				return err
			}
		default:
			if err := a.unmarshalSessionOption(d); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *CAConfig) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "key_type":
			if !d.AllArgs(&c.KeyType) {
				return d.ArgErr()
			}
		case "validity":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			c.Validity = dur
		case "common_name":
			if !d.AllArgs(&c.CommonName) {
				return d.ArgErr()
			}
		case "import_cert":
			if !d.AllArgs(&c.ImportCert) {
				return d.ArgErr()
			}
		case "import_key":
			if !d.AllArgs(&c.ImportKey) {
				return d.ArgErr()
			}
		case "name_constraints":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			c.NameConstraints = append(c.NameConstraints, args...)
		default:
			return d.Errf("unrecognized itp ca option %q", d.Val())
		}
	}
	return nil
}

func (c *IssuanceConfig) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "validity":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			c.Validity = dur
		case "max_records":
			n, err := intArg(d)
			if err != nil {
				return err
			}
			c.MaxRecords = n
		case "rate_per_minute":
			n, err := intArg(d)
			if err != nil {
				return err
			}
			c.RatePerMinute = n
		default:
			return d.Errf("unrecognized itp issuance option %q", d.Val())
		}
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return 0, d.Errf("%s: %v", d.Val(), err)
	}
	return caddy.Duration(dur), nil
}

func intArg(d *caddyfile.Dispenser) (int, error) {
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, d.Errf("%s: expected a whole number: %v", d.Val(), err)
	}
	return n, nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*App)(nil)
