package session

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/caddy-itp/caddy-itp/internal/ids"
	"github.com/caddy-itp/caddy-itp/jws"
)

// Limits on the size of a session or group.
const (
	maxComponents     = 100
	maxRules          = 100
	maxAllowedClients = 100
	maxEnv            = 256
	maxNameLen        = 256
	maxURLLen         = 2048
)

var (
	// envName is the alphabet of environment variable names.
	envName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	// envRef matches {{ env.NAME }} and {{ file_env.NAME }}.
	envRef = regexp.MustCompile(`\{\{\s*(?:env|file_env)\.([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})\s*\}\}`)
	// pureEnvRef matches a value that is nothing but one reference.
	pureEnvRef = regexp.MustCompile(`^\s*\{\{\s*(?:env|file_env)\.([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})\s*\}\}\s*$`)
	// headerToken is an HTTP field name (RFC 9110 token).
	headerToken = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
)

// ValidID reports whether id is a valid session, group, certificate id or
// component slug: 1 to 64 characters of [a-zA-Z0-9_-], not starting with
// '_' or '-'.
func ValidID(id string) bool { return ids.Valid(id) }

// compiler validates and compiles sessions and groups. strict is true for
// uploads (creation, replacement, static sessions): then an expired
// certificate, a client certificate for another key or a failing JWS check
// is an error. Records read back from storage are compiled with strict false,
// which turns those time- or platform-dependent faults into warnings, so
// that a certificate expiring after upload does not make a session vanish.
type compiler struct {
	opts        *Options
	upstreamDER []byte
	strict      bool
	now         time.Time
}

// env looks names up in the session environment, then the group's.
type env struct {
	session, group map[string]string
}

func (e env) lookup(name string) (string, bool) {
	if v, ok := e.session[name]; ok {
		return v, true
	}
	v, ok := e.group[name]
	return v, ok
}

// substitute replaces the env references of value.
func (e env) substitute(field, value string) (string, error) {
	if !strings.Contains(value, "{{") {
		return value, nil
	}
	var missing string
	out := envRef.ReplaceAllStringFunc(value, func(m string) string {
		name := envRef.FindStringSubmatch(m)[1]
		v, ok := e.lookup(name)
		if !ok && missing == "" {
			missing = name
		}
		return v
	})
	if missing != "" {
		return "", fieldErr(field, "references %s, which is not defined in the session or group environment", missing)
	}
	if strings.Contains(envRef.ReplaceAllString(value, ""), "{{") {
		return "", fieldErr(field, "has a malformed reference: use {{ env.NAME }} or {{ file_env.NAME }}")
	}
	return out, nil
}

// warnf appends a warning.
func warnf(w *[]string, format string, args ...any) {
	*w = append(*w, fmt.Sprintf(format, args...))
}

// checkEnv validates environment names.
func checkEnv(field string, m map[string]string) error {
	if len(m) > maxEnv {
		return fieldErr(field, "has %d variables, more than %d", len(m), maxEnv)
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !envName.MatchString(k) {
			return fieldErr(field, "variable name %q is not valid: use letters, digits, '_', '.' and '-'", k)
		}
	}
	return nil
}

// parseCerts parses a PEM text that must hold only certificates.
func parseCerts(field, text string) ([]*x509.Certificate, error) {
	rest := []byte(text)
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fieldErr(field, "holds a private key: give only certificates (the key never leaves its owner)")
		}
		if block.Type != "CERTIFICATE" {
			return nil, fieldErr(field, "holds a PEM block of type %q, want CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fieldErr(field, "certificate %d cannot be parsed: %v", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		if len(certs) == 0 {
			return nil, fieldErr(field, "is not PEM: want one or more -----BEGIN CERTIFICATE----- blocks")
		}
		return nil, fieldErr(field, "has unparsable text after certificate %d", len(certs))
	}
	if len(certs) == 0 {
		return nil, fieldErr(field, "holds no PEM certificate")
	}
	return certs, nil
}

func day(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// upstreamCerts is the compiled form of a ca_cert / client_cert pair.
type upstreamCerts struct {
	caPEM    string
	caDER    [][]byte
	pool     *x509.CertPool
	chain    [][]byte
	notAfter time.Time
}

// checkUpstream validates the resolved PEMs of a ca_cert / client_cert pair.
func (c *compiler) checkUpstream(prefix, caPEM, clientPEM string, warnings *[]string) (upstreamCerts, error) {
	var u upstreamCerts
	var cas []*x509.Certificate
	if strings.TrimSpace(caPEM) != "" {
		var err error
		field := prefix + "ca_cert"
		if cas, err = parseCerts(field, caPEM); err != nil {
			return u, err
		}
		u.caPEM = caPEM
		u.pool = x509.NewCertPool()
		for _, ca := range cas {
			u.pool.AddCert(ca)
			u.caDER = append(u.caDER, ca.Raw)
			switch {
			case c.now.After(ca.NotAfter):
				if c.strict {
					return u, fieldErr(field, "certificate %q expired on %s", ca.Subject.String(), day(ca.NotAfter))
				}
				warnf(warnings, "%s: certificate %q expired on %s", field, ca.Subject.String(), day(ca.NotAfter))
			case ca.NotAfter.Sub(c.now) < c.opts.ExpiryWarning:
				warnf(warnings, "%s: certificate %q expires soon, on %s", field, ca.Subject.String(), day(ca.NotAfter))
			}
		}
	}
	if strings.TrimSpace(clientPEM) == "" {
		return u, nil
	}
	field := prefix + "client_cert"
	chain, err := parseCerts(field, clientPEM)
	if err != nil {
		return u, err
	}
	leaf := chain[0]
	if c.upstreamDER != nil {
		der, err := x509.MarshalPKIXPublicKey(leaf.PublicKey)
		if err != nil || !bytes.Equal(der, c.upstreamDER) {
			msg := "is not for the platform's upstream key: sign the CSR from GET /itp/upstream/client.csr with your CA and upload the result"
			if c.strict {
				return u, fieldErr(field, "%s", msg)
			}
			warnf(warnings, "%s: %s", field, msg)
		}
	}
	switch {
	case c.now.After(leaf.NotAfter):
		if c.strict {
			return u, fieldErr(field, "expired on %s", day(leaf.NotAfter))
		}
		warnf(warnings, "%s: expired on %s", field, day(leaf.NotAfter))
	case leaf.NotAfter.Sub(c.now) < c.opts.ExpiryWarning:
		warnf(warnings, "%s: expires soon, on %s", field, day(leaf.NotAfter))
	}
	if c.now.Before(leaf.NotBefore) {
		warnf(warnings, "%s: not valid before %s", field, day(leaf.NotBefore))
	}
	if len(leaf.ExtKeyUsage) > 0 && !hasUsage(leaf, x509.ExtKeyUsageClientAuth) {
		warnf(warnings, "%s: has no clientAuth extended key usage; the SUT may refuse it", field)
	}
	if u.pool != nil {
		inter := x509.NewCertPool()
		for _, ic := range chain[1:] {
			inter.AddCert(ic)
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots:         u.pool,
			Intermediates: inter,
			CurrentTime:   c.now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			warnf(warnings, "%s: does not chain to ca_cert: %v", field, err)
		}
	}
	for _, cert := range chain {
		u.chain = append(u.chain, cert.Raw)
	}
	u.notAfter = leaf.NotAfter
	return u, nil
}

func hasUsage(c *x509.Certificate, want x509.ExtKeyUsage) bool {
	for _, u := range c.ExtKeyUsage {
		if u == want || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

// checkBaseURL parses and validates a base_url.
func checkBaseURL(field, raw string) (*url.URL, error) {
	if len(raw) > maxURLLen {
		return nil, fieldErr(field, "is longer than %d bytes", maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fieldErr(field, "is not a URL: %v", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fieldErr(field, "must be an http:// or https:// URL")
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return nil, fieldErr(field, "must name a host, as in https://sut.example:9443/api")
	case u.User != nil:
		return nil, fieldErr(field, "must not hold user information")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fieldErr(field, "must not have a fragment")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fieldErr(field, "must not have a query: the query of each request is kept")
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 1 || n > 65535 {
			return nil, fieldErr(field, "has an invalid port %q", p)
		}
	}
	return u, nil
}

// normalizeAllowed turns an allowed_clients entry into a CN or a lowercase
// hex SHA-256 fingerprint.
func normalizeAllowed(s string) string {
	s = strings.TrimSpace(s)
	h := s
	if len(h) > 7 && strings.EqualFold(h[:7], "sha256:") {
		h = h[7:]
	}
	h = strings.ReplaceAll(h, ":", "")
	if len(h) == 64 {
		if _, err := hex.DecodeString(h); err == nil {
			return strings.ToLower(h)
		}
	}
	return s
}

// compileGroup validates g and resolves its certificates.
func (c *compiler) compileGroup(g Group) (*groupEntry, error) {
	g.Warnings = nil
	if !ids.Valid(g.ID) {
		return nil, fieldErr("id", "must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit")
	}
	if len(g.Name) > maxNameLen {
		return nil, fieldErr("name", "is longer than %d bytes", maxNameLen)
	}
	if err := checkEnv("environment", g.Environment); err != nil {
		return nil, err
	}
	if g.DefaultSession != "" && !ids.Valid(g.DefaultSession) {
		return nil, fieldErr("default_session", "is not a valid session id")
	}
	e := env{group: g.Environment}
	var warnings []string
	entry := &groupEntry{certs: make(map[string]upstreamCerts, len(g.Certificates))}
	for i, cert := range g.Certificates {
		prefix := fmt.Sprintf("certificates[%d].", i)
		if !ids.Valid(cert.ID) {
			return nil, fieldErr(prefix+"id", "must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit")
		}
		if _, dup := entry.certs[cert.ID]; dup {
			return nil, fieldErr(prefix+"id", "duplicates certificate id %q", cert.ID)
		}
		if len(cert.Name) > maxNameLen {
			return nil, fieldErr(prefix+"name", "is longer than %d bytes", maxNameLen)
		}
		caPEM, err := e.substitute(prefix+"ca_cert", cert.CACert)
		if err != nil {
			return nil, err
		}
		clientPEM, err := e.substitute(prefix+"client_cert", cert.ClientCert)
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(caPEM) == "" && strings.TrimSpace(clientPEM) == "" {
			return nil, fieldErr(prefix+"ca_cert", "a certificate needs a ca_cert, a client_cert or both")
		}
		u, err := c.checkUpstream(prefix, caPEM, clientPEM, &warnings)
		if err != nil {
			return nil, err
		}
		entry.certs[cert.ID] = u
	}
	g.Warnings = warnings
	entry.group = g
	return entry, nil
}

// compileSession validates s against its group (nil when the group is
// unknown) and compiles it.
func (c *compiler) compileSession(s Session, group *groupEntry) (*Resolved, error) {
	s.Warnings = nil
	var warnings []string
	if !ids.Valid(s.ID) {
		return nil, fieldErr("id", "must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit")
	}
	if len(s.Name) > maxNameLen {
		return nil, fieldErr("name", "is longer than %d bytes", maxNameLen)
	}
	var groupEnv map[string]string
	if s.Group != "" {
		if !ids.Valid(s.Group) {
			return nil, fieldErr("group", "is not a valid group id")
		}
		if group == nil {
			return nil, fieldErr("group", "unknown group %q", s.Group)
		}
		groupEnv = group.group.Environment
	}
	if err := checkEnv("environment", s.Environment); err != nil {
		return nil, err
	}
	e := env{session: s.Environment, group: groupEnv}
	if s.Expires != nil && c.strict && !s.Expires.After(c.now) {
		return nil, fieldErr("expires", "is in the past")
	}
	if len(s.Components) == 0 {
		return nil, fieldErr("components", "a session needs at least one component")
	}
	if len(s.Components) > maxComponents {
		return nil, fieldErr("components", "has %d components, more than %d", len(s.Components), maxComponents)
	}
	res := &Resolved{Components: make(map[string]*ResolvedComponent, len(s.Components))}
	for i, comp := range s.Components {
		rc, err := c.compileComponent(fmt.Sprintf("components[%d].", i), comp, s.Group, group, e, &warnings)
		if err != nil {
			return nil, err
		}
		if _, dup := res.Components[rc.Slug]; dup {
			return nil, fieldErr(fmt.Sprintf("components[%d].slug", i), "duplicates slug %q", rc.Slug)
		}
		res.Components[rc.Slug] = rc
	}
	if len(s.JWS) > maxRules {
		return nil, fieldErr("jws", "has %d rules, more than %d", len(s.JWS), maxRules)
	}
	for i, rule := range s.JWS {
		rr, err := c.compileRule(fmt.Sprintf("jws[%d].", i), i, rule, res.Components, e, &warnings)
		if err != nil {
			return nil, err
		}
		res.JWS = append(res.JWS, rr)
	}
	if s.Expires != nil {
		res.Expires = *s.Expires
	}
	s.Warnings = warnings
	res.Session = s
	return res, nil
}

func (c *compiler) compileComponent(prefix string, comp Component, groupID string, group *groupEntry, e env, warnings *[]string) (*ResolvedComponent, error) {
	if !ids.Valid(comp.Slug) {
		return nil, fieldErr(prefix+"slug", "must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit")
	}
	rc := &ResolvedComponent{Slug: comp.Slug, Simulated: comp.Simulated}
	if comp.BaseURL != "" {
		u, err := checkBaseURL(prefix+"base_url", comp.BaseURL)
		if err != nil {
			return nil, err
		}
		rc.BaseURL = u
		rc.UseEncryption = u.Scheme == "https"
		if comp.UseEncryption != nil && *comp.UseEncryption != rc.UseEncryption {
			return nil, fieldErr(prefix+"use_encryption", "is %t but base_url is %s://: make them agree", *comp.UseEncryption, u.Scheme)
		}
		if comp.Simulated {
			warnf(warnings, "%sbase_url: ignored, the component is simulated", prefix)
		}
	} else if comp.UseEncryption != nil {
		rc.UseEncryption = *comp.UseEncryption
	}

	caPEM, clientPEM := comp.CACert, comp.ClientCert
	var u upstreamCerts
	if comp.Certificate != "" {
		if comp.CACert != "" || comp.ClientCert != "" {
			return nil, fieldErr(prefix+"certificate", "give either a group certificate or inline ca_cert/client_cert, not both")
		}
		if groupID == "" {
			return nil, fieldErr(prefix+"certificate", "names a group certificate but the session has no group")
		}
		gu, ok := group.certs[comp.Certificate]
		if !ok {
			return nil, fieldErr(prefix+"certificate", "group %q has no certificate %q", groupID, comp.Certificate)
		}
		// The group checked its certificates when it was stored; check the
		// time-dependent parts again now.
		var err error
		if u, err = c.recheck(prefix, gu, warnings); err != nil {
			return nil, err
		}
	} else {
		var err error
		if caPEM, err = e.substitute(prefix+"ca_cert", caPEM); err != nil {
			return nil, err
		}
		if clientPEM, err = e.substitute(prefix+"client_cert", clientPEM); err != nil {
			return nil, err
		}
		if u, err = c.checkUpstream(prefix, caPEM, clientPEM, warnings); err != nil {
			return nil, err
		}
	}
	if rc.UseEncryption || rc.BaseURL == nil {
		rc.CACertPEM = u.caPEM
		rc.CAPool = u.pool
		rc.ClientChain = u.chain
		rc.ClientCertNotAfter = u.notAfter
	} else if u.caPEM != "" || u.chain != nil {
		warnf(warnings, "%sca_cert, client_cert: ignored, the component does not use encryption", prefix)
	}
	if rc.UseEncryption {
		rc.IdentityKey = identityKey(true, u.caDER, u.chain)
	} else {
		rc.IdentityKey = identityKey(false, nil, nil)
	}

	if len(comp.AllowedClients) > maxAllowedClients {
		return nil, fieldErr(prefix+"allowed_clients", "has %d entries, more than %d", len(comp.AllowedClients), maxAllowedClients)
	}
	if len(comp.AllowedClients) > 0 {
		rc.AllowedClients = make(map[string]struct{}, len(comp.AllowedClients))
		for j, a := range comp.AllowedClients {
			n := normalizeAllowed(a)
			if n == "" || len(n) > maxNameLen {
				return nil, fieldErr(fmt.Sprintf("%sallowed_clients[%d]", prefix, j), "must be a common name or a SHA-256 fingerprint")
			}
			rc.AllowedClients[n] = struct{}{}
		}
	}
	return rc, nil
}

// recheck applies the time- and key-dependent checks to a group
// certificate that a session component picks.
func (c *compiler) recheck(prefix string, u upstreamCerts, warnings *[]string) (upstreamCerts, error) {
	var caPEM, clientPEM string
	caPEM = u.caPEM
	if u.chain != nil {
		var b strings.Builder
		for _, der := range u.chain {
			_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
		}
		clientPEM = b.String()
	}
	out, err := c.checkUpstream(prefix+"certificate.", caPEM, clientPEM, warnings)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Field = prefix + "certificate"
		}
	}
	return out, err
}

func (c *compiler) compileRule(prefix string, index int, rule JWSRule, comps map[string]*ResolvedComponent, e env, warnings *[]string) (ResolvedJWSRule, error) {
	rr := ResolvedJWSRule{JWSRule: rule, Index: index}
	src, ok := comps[rule.Source]
	if !ok {
		return rr, fieldErr(prefix+"source", "names no component of the session: %q", rule.Source)
	}
	tgt, ok := comps[rule.Target]
	if !ok {
		return rr, fieldErr(prefix+"target", "names no component of the session: %q", rule.Target)
	}
	var sender *ResolvedComponent
	switch rule.Direction {
	case DirectionRequest:
		sender = src
	case DirectionResponse:
		sender = tgt
	default:
		return rr, fieldErr(prefix+"direction", "must be %q or %q", DirectionRequest, DirectionResponse)
	}
	switch rule.Format {
	case FormatMojaloop, FormatCompact, FormatDetached:
	default:
		return rr, fieldErr(prefix+"format", "must be %q, %q or %q", FormatMojaloop, FormatCompact, FormatDetached)
	}
	if !headerToken.MatchString(rule.Header) {
		return rr, fieldErr(prefix+"header", "must be an HTTP header name, e.g. FSPIOP-Signature")
	}
	if !slices.Contains(jws.Algorithms(), rule.Alg) {
		return rr, fieldErr(prefix+"alg", "must be one of %s", strings.Join(jws.Algorithms(), ", "))
	}
	switch rule.Mode {
	case "":
		if sender.Simulated {
			rr.Mode = ModeSign
		} else {
			rr.Mode = ModeVerify
		}
	case ModeSign, ModeVerify:
		if rule.Mode == ModeSign && !sender.Simulated {
			warnf(warnings, "%smode: the platform signs for %s, which is not simulated", prefix, sender.Slug)
		}
	default:
		return rr, fieldErr(prefix+"mode", "must be %q or %q", ModeVerify, ModeSign)
	}
	for j, h := range rule.ProtectedHeaders {
		if !headerToken.MatchString(h) {
			return rr, fieldErr(fmt.Sprintf("%sprotected_headers[%d]", prefix, j), "must be an HTTP header name")
		}
	}
	for k := range rule.Crit {
		if !headerToken.MatchString(k) {
			return rr, fieldErr(prefix+"crit", "%q is not a valid header parameter name", k)
		}
	}
	var err error
	if rr.PublicKey, err = e.substitute(prefix+"public_key", rule.PublicKey); err != nil {
		return rr, err
	}
	if rr.PrivateKey, err = e.substitute(prefix+"private_key", rule.PrivateKey); err != nil {
		return rr, err
	}
	if rr.Secret, err = e.substitute(prefix+"secret", rule.Secret); err != nil {
		return rr, err
	}
	if strings.HasPrefix(rule.Alg, "HS") {
		if rr.Secret == "" {
			return rr, fieldErr(prefix+"secret", "is required for %s", rule.Alg)
		}
	} else {
		if rr.Secret != "" {
			return rr, fieldErr(prefix+"secret", "is only for HS256, HS384 and HS512, not %s", rule.Alg)
		}
		if rr.PublicKey == "" {
			return rr, fieldErr(prefix+"public_key", "is required for %s", rule.Alg)
		}
		// the parsers the rule is compiled with, so that what is
		// accepted here is what works
		if _, err := jws.ParsePublicKeyPEM([]byte(rr.PublicKey)); err != nil {
			return rr, fieldErr(prefix+"public_key", "%v", err)
		}
		if rr.PrivateKey != "" {
			if _, err := jws.ParsePrivateKeyPEM([]byte(rr.PrivateKey)); err != nil {
				return rr, fieldErr(prefix+"private_key", "%v", err)
			}
		} else if rr.Mode == ModeSign {
			return rr, fieldErr(prefix+"private_key", "is required to sign for %s", sender.Slug)
		}
	}
	if c.opts.CompileJWSRule != nil {
		compiled, err := c.opts.CompileJWSRule(rr)
		if err := c.ruleHookError(prefix, err, warnings); err != nil {
			return rr, err
		}
		rr.Compiled = compiled
	}
	return rr, nil
}

// ruleHookError turns the error of a JWS rule hook into a *FieldError
// relative to the rule: returned when strict, a warning otherwise (a record
// read back from storage is kept, with the rule left uncompiled).
func (c *compiler) ruleHookError(prefix string, err error, warnings *[]string) error {
	if err == nil {
		return nil
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		err = &FieldError{Field: prefix + fe.Field, Msg: fe.Msg}
	} else {
		err = &FieldError{Field: strings.TrimSuffix(prefix, "."), Msg: err.Error()}
	}
	if c.strict {
		return err
	}
	warnf(warnings, "%s", err.Error())
	return nil
}
