package session

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
)

// hashed returns the placeholder shown in place of a private value.
func hashed(kind, v string) string {
	sum := sha256.Sum256([]byte(v))
	return "(" + kind + ", sha256:" + hex.EncodeToString(sum[:]) + ")"
}

// redactKey hides a value that holds a private key.
func redactKey(v string) string {
	if strings.Contains(v, "PRIVATE KEY") {
		return hashed("private key", v)
	}
	return v
}

// redactSecret hides a secret unless it is only an env reference (then the
// referenced variable is hidden instead).
func redactSecret(v string) string {
	if v == "" || pureEnvRef.MatchString(v) {
		return v
	}
	return hashed("secret", v)
}

// secretNames returns the environment names that secret fields reference.
func secretNames(rules []JWSRule, into map[string]bool) map[string]bool {
	for _, r := range rules {
		for _, m := range envRef.FindAllStringSubmatch(r.Secret, -1) {
			if into == nil {
				into = map[string]bool{}
			}
			into[m[1]] = true
		}
	}
	return into
}

// redactEnv returns a copy of m with private keys and secrets hidden.
func redactEnv(m map[string]string, secrets map[string]bool) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch {
		case strings.Contains(v, "PRIVATE KEY"):
			out[k] = hashed("private key", v)
		case secrets[k]:
			out[k] = hashed("secret", v)
		default:
			out[k] = v
		}
	}
	return out
}

// Redacted returns a copy of s that is safe to show: every value holding a
// private key PEM becomes "(private key, sha256:<hex>)", and every secret,
// as well as every environment variable a secret references, becomes
// "(secret, sha256:<hex>)", where <hex> is the SHA-256 of the hidden value.
// s itself is not changed.
func (s Session) Redacted() Session {
	s.Environment = redactEnv(s.Environment, secretNames(s.JWS, nil))
	s.Components = slices.Clone(s.Components)
	for i := range s.Components {
		c := &s.Components[i]
		c.CACert = redactKey(c.CACert)
		c.ClientCert = redactKey(c.ClientCert)
		c.AllowedClients = slices.Clone(c.AllowedClients)
	}
	s.JWS = slices.Clone(s.JWS)
	for i := range s.JWS {
		r := &s.JWS[i]
		r.PublicKey = redactKey(r.PublicKey)
		r.PrivateKey = redactKey(r.PrivateKey)
		r.Secret = redactSecret(r.Secret)
		r.ProtectedHeaders = slices.Clone(r.ProtectedHeaders)
		r.Crit = maps.Clone(r.Crit)
	}
	s.Warnings = slices.Clone(s.Warnings)
	if s.Expires != nil {
		t := *s.Expires
		s.Expires = &t
	}
	return s
}

// Redacted returns a copy of g that is safe to show: every value holding a
// private key PEM becomes "(private key, sha256:<hex>)". g itself is not
// changed. The registry's GetGroup also hides the variables that its
// sessions' secrets reference.
func (g Group) Redacted() Group { return g.redacted(nil) }

func (g Group) redacted(secrets map[string]bool) Group {
	g.Environment = redactEnv(g.Environment, secrets)
	g.Certificates = slices.Clone(g.Certificates)
	for i := range g.Certificates {
		c := &g.Certificates[i]
		c.CACert = redactKey(c.CACert)
		c.ClientCert = redactKey(c.ClientCert)
	}
	g.Warnings = slices.Clone(g.Warnings)
	return g
}
