package itp

import (
	"encoding/json"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-itp/caddy-itp/session"
)

// unmarshalSessionOption parses the session-related subdirectives of the
// itp global option:
//
//	expiry_warning      <duration>
//	results_per_session <n>
//	session_retention   <duration>
//	jws_max_body        <size>
//	session_file        <file.json>
//	session <id> {
//		name    <name>
//		group   <group_id>
//		expires <RFC 3339 time>
//		env     <NAME> <value>
//		component <slug> {
//			base_url         <url>
//			use_encryption   on|off
//			simulated
//			certificate      <group_certificate_id>
//			ca_cert_file     <pem_file>
//			client_cert_file <pem_file>
//			allowed_clients  <cn|sha256...>
//		}
//		jws {
//			source            <slug>
//			target            <slug>
//			direction         request|response
//			header            <name>
//			format            mojaloop|compact|detached
//			alg               <alg>
//			public_key        <pem|{{ env.NAME }}>
//			public_key_file   <pem_file>
//			private_key       <pem|{{ env.NAME }}>
//			private_key_file  <pem_file>
//			secret            <{{ env.NAME }}>
//			protected_headers <name...>
//			crit              <name> [<value>]
//			mode              verify|sign
//			enforce
//		}
//	}
//
// Files named here are read when the Caddyfile is adapted, and their PEM
// is put into the JSON config. A session_file holds one session's JSON, as
// the admin API takes it.
func (a *App) unmarshalSessionOption(d *caddyfile.Dispenser) error {
	switch d.Val() {
	case "expiry_warning":
		dur, err := durationArg(d)
		if err != nil {
			return err
		}
		a.ExpiryWarning = dur
	case "jws_max_body":
		var v string
		if !d.AllArgs(&v) {
			return d.ArgErr()
		}
		n, err := parseSize(v)
		if err != nil {
			return d.Errf("jws_max_body: %v", err)
		}
		a.JWSMaxBody = n
	case "session_retention":
		dur, err := durationArg(d)
		if err != nil {
			return err
		}
		a.SessionRetention = dur
	case "results_per_session":
		n, err := intArg(d)
		if err != nil {
			return err
		}
		a.ResultsPerSession = n
	case "session_file":
		var file string
		if !d.AllArgs(&file) {
			return d.ArgErr()
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return d.Errf("session_file: %v", err)
		}
		var s session.Session
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return d.Errf("session_file %s: %v", file, err)
		}
		a.Sessions = append(a.Sessions, s)
	case "session":
		var s session.Session
		if !d.NextArg() {
			return d.ArgErr()
		}
		s.ID = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		if err := unmarshalSession(d, &s); err != nil {
			return err
		}
		a.Sessions = append(a.Sessions, s)
	default:
		return d.Errf("unrecognized itp option %q", d.Val())
	}
	return nil
}

func unmarshalSession(d *caddyfile.Dispenser, s *session.Session) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "name":
			if !d.AllArgs(&s.Name) {
				return d.ArgErr()
			}
		case "group":
			if !d.AllArgs(&s.Group) {
				return d.ArgErr()
			}
		case "expires":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return d.Errf("expires: %v", err)
			}
			s.Expires = &t
		case "env":
			var name, value string
			if !d.AllArgs(&name, &value) {
				return d.ArgErr()
			}
			if s.Environment == nil {
				s.Environment = map[string]string{}
			}
			s.Environment[name] = value
		case "component":
			var c session.Component
			if !d.NextArg() {
				return d.ArgErr()
			}
			c.Slug = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
			if err := unmarshalComponent(d, &c); err != nil {
				return err
			}
			s.Components = append(s.Components, c)
		case "jws":
			var rule session.JWSRule
			if d.NextArg() {
				return d.ArgErr()
			}
			if err := unmarshalJWSRule(d, &rule); err != nil {
				return err
			}
			s.JWS = append(s.JWS, rule)
		default:
			return d.Errf("unrecognized session option %q", d.Val())
		}
	}
	return nil
}

func unmarshalComponent(d *caddyfile.Dispenser, c *session.Component) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "base_url":
			if !d.AllArgs(&c.BaseURL) {
				return d.ArgErr()
			}
		case "use_encryption":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			on, err := onOff(d, v)
			if err != nil {
				return err
			}
			c.UseEncryption = &on
		case "simulated":
			if d.NextArg() {
				return d.ArgErr()
			}
			c.Simulated = true
		case "certificate":
			if !d.AllArgs(&c.Certificate) {
				return d.ArgErr()
			}
		case "ca_cert_file":
			pem, err := fileArg(d)
			if err != nil {
				return err
			}
			c.CACert = pem
		case "client_cert_file":
			pem, err := fileArg(d)
			if err != nil {
				return err
			}
			c.ClientCert = pem
		case "allowed_clients":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			c.AllowedClients = append(c.AllowedClients, args...)
		default:
			return d.Errf("unrecognized component option %q", d.Val())
		}
	}
	return nil
}

func unmarshalJWSRule(d *caddyfile.Dispenser, r *session.JWSRule) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "source":
			err = oneArg(d, &r.Source)
		case "target":
			err = oneArg(d, &r.Target)
		case "direction":
			err = oneArg(d, &r.Direction)
		case "header":
			err = oneArg(d, &r.Header)
		case "format":
			err = oneArg(d, &r.Format)
		case "alg":
			err = oneArg(d, &r.Alg)
		case "public_key":
			err = oneArg(d, &r.PublicKey)
		case "public_key_file":
			r.PublicKey, err = fileArg(d)
		case "private_key":
			err = oneArg(d, &r.PrivateKey)
		case "private_key_file":
			r.PrivateKey, err = fileArg(d)
		case "secret":
			err = oneArg(d, &r.Secret)
		case "protected_headers":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			r.ProtectedHeaders = append(r.ProtectedHeaders, args...)
		case "crit":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			if r.Crit == nil {
				r.Crit = map[string]string{}
			}
			r.Crit[args[0]] = strings.Join(args[1:], "")
		case "mode":
			err = oneArg(d, &r.Mode)
		case "enforce":
			if d.NextArg() {
				return d.ArgErr()
			}
			r.Enforce = true
		default:
			return d.Errf("unrecognized jws option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.AllArgs(dst) {
		return d.ArgErr()
	}
	return nil
}

func fileArg(d *caddyfile.Dispenser) (string, error) {
	var file string
	if !d.AllArgs(&file) {
		return "", d.ArgErr()
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", d.Errf("%s: %v", d.Val(), err)
	}
	return string(data), nil
}

func onOff(d *caddyfile.Dispenser, v string) (bool, error) {
	switch v {
	case "on", "true":
		return true, nil
	case "off", "false":
		return false, nil
	}
	return false, d.Errf("expected on or off, got %q", v)
}
