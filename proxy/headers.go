package proxy

import (
	"net/http"
	"strings"
)

// clientIdentityNames are request header names that some
// proxy, load balancer or web server uses to tell an upstream
// who the TLS client was. A client may send any of them to
// impersonate another participant, so they are removed before
// proxying; the ITP itself tells nothing to the SUT this way.
var clientIdentityNames = []string{
	"Client-Cert",             // RFC 9440
	"Client-Cert-Chain",       // RFC 9440
	"X-ARR-ClientCert",        // IIS Application Request Routing
	"X-Forwarded-Client-Cert", // Envoy (XFCC)
	"X-Client-Verify",         // common nginx $ssl_client_verify
	"X-Client-DN",             // common nginx $ssl_client_s_dn
}

// clientIdentityPrefixes are prefixes of request header names
// of the same kind; every header starting with one of them is
// removed.
var clientIdentityPrefixes = []string{
	"X-Client-Cert",           // X-Client-Cert, X-Client-Cert-Chain, X-Client-Certificate
	"X-SSL-Client-",           // X-SSL-Client-Cert, -Verify, -S-DN, -I-DN, -Serial, ...
	"Ssl-Client-",             // Ssl-Client-Cert, Ssl-Client-Verify, ...
	"X-SSL-Cert",              // nginx $ssl_client_cert as X-SSL-Cert
	"X-Amzn-Mtls-",            // AWS ALB mTLS passthrough and verify headers
	"X-Forwarded-Tls-Client-", // Traefik
}

// StripClientIdentityHeaders removes from h every header that
// claims a TLS client identity: Client-Cert and
// Client-Cert-Chain (RFC 9440), X-Client-Cert*, X-SSL-Client-*,
// Ssl-Client-*, X-SSL-Cert*, X-Forwarded-Client-Cert,
// X-Client-Verify, X-Client-DN, X-ARR-ClientCert, X-Amzn-Mtls-*
// and X-Forwarded-Tls-Client-*. Names are matched without
// regard to case, also when h holds non-canonical keys. It
// does not allocate.
func StripClientIdentityHeaders(h http.Header) {
	for name := range h {
		if isClientIdentityHeader(name) {
			delete(h, name)
		}
	}
}

// isClientIdentityHeader reports whether the header name
// claims a TLS client identity.
func isClientIdentityHeader(name string) bool {
	// every name and prefix starts with x, c or s: a cheap
	// first filter for the common headers
	if name == "" {
		return false
	}
	switch name[0] | 0x20 {
	case 'x', 'c', 's':
	default:
		return false
	}
	for _, n := range clientIdentityNames {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	for _, p := range clientIdentityPrefixes {
		if len(name) >= len(p) && strings.EqualFold(name[:len(p)], p) {
			return true
		}
	}
	return false
}
