package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strings"
	"syscall"
	"time"
)

// Check names of upstream failures (DESIGN.md §4, §6).
const (
	// CheckUpstreamTLS is the check a failed TLS connection to
	// the SUT records: its certificate, name or validity, its
	// refusal of the platform's certificate, or a TLS/plain
	// HTTP mismatch.
	CheckUpstreamTLS = "Upstream TLS"

	// CheckUpstreamConnection is the check any other failure
	// to reach the SUT records: connection refused, unknown
	// host, timeouts, a broken connection.
	CheckUpstreamConnection = "Upstream connection"
)

// TLS alert codes (RFC 8446 §6) that a server sends when it
// refuses the client's certificate.
const (
	alertHandshakeFailure       = 40
	alertBadCertificate         = 42
	alertUnsupportedCertificate = 43
	alertCertificateRevoked     = 44
	alertCertificateExpired     = 45
	alertCertificateUnknown     = 46
	alertUnknownCA              = 48
	alertAccessDenied           = 49
	alertCertificateRequired    = 116
)

// ClassifyUpstreamError explains an error of a round trip to
// the SUT of component, whose base_url is base, in words for a
// participant. check is CheckUpstreamTLS or
// CheckUpstreamConnection, or empty when the error is not the
// SUT's doing (the client went away, or no identity was set).
// Errors from Pool.RoundTrip give the most precise messages (the
// pool knows whether a CA and a client certificate were
// uploaded); others are classified too.
//
// Examples: "SUT certificate is not signed by the CA uploaded
// for component payee", "SUT rejected the platform's client
// certificate (tls: unknown certificate authority)", "SUT
// certificate is for example.org, not localhost", "connection
// refused by the SUT at localhost:9443".
func ClassifyUpstreamError(err error, component string, base *url.URL) (check, message string) {
	if err == nil {
		return "", ""
	}
	addr := HostPort(base)
	var id *Identity
	var ue *upstreamError
	if errors.As(err, &ue) {
		id = ue.id
	}

	switch {
	case errors.Is(err, ErrNoIdentity), errors.Is(err, errNoKey):
		return "", err.Error()
	case errors.Is(err, context.Canceled):
		return "", "the client went away before the SUT at " + addr + " answered"
	}

	// the SUT's certificate
	var he x509.HostnameError
	if errors.As(err, &he) {
		return CheckUpstreamTLS, fmt.Sprintf("SUT certificate is for %s, not %s", certNames(he.Certificate), he.Host)
	}
	var uae x509.UnknownAuthorityError
	if errors.As(err, &uae) {
		issuer := ""
		if uae.Cert != nil {
			issuer = " (it is issued by " + uae.Cert.Issuer.String() + ")"
		}
		if id != nil && id.RootCAs == nil {
			return CheckUpstreamTLS, fmt.Sprintf("SUT certificate is not signed by a CA the system trusts, and no CA is uploaded for component %s%s", component, issuer)
		}
		return CheckUpstreamTLS, fmt.Sprintf("SUT certificate is not signed by the CA uploaded for component %s%s", component, issuer)
	}
	var cie x509.CertificateInvalidError
	if errors.As(err, &cie) {
		return CheckUpstreamTLS, invalidCertMessage(cie)
	}
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return CheckUpstreamTLS, "SUT certificate could not be verified: " + cve.Err.Error()
	}

	// the SUT's refusal of the platform
	if code, text, ok := remoteAlert(err); ok {
		hasCert := id == nil || len(id.ClientChain) > 0
		switch code {
		case alertCertificateRequired:
			if !hasCert {
				return CheckUpstreamTLS, fmt.Sprintf("SUT requires a client certificate, and none is uploaded for component %s (%s)", component, text)
			}
			return CheckUpstreamTLS, "SUT rejected the platform's client certificate (" + text + ")"
		case alertHandshakeFailure:
			if !hasCert {
				return CheckUpstreamTLS, fmt.Sprintf("SUT ended the TLS handshake (%s); it may require a client certificate, and none is uploaded for component %s", text, component)
			}
			return CheckUpstreamTLS, "SUT ended the TLS handshake (" + text + "); it may have rejected the platform's client certificate"
		case alertBadCertificate, alertUnsupportedCertificate, alertCertificateRevoked,
			alertCertificateExpired, alertCertificateUnknown, alertUnknownCA, alertAccessDenied:
			if !hasCert {
				return CheckUpstreamTLS, fmt.Sprintf("SUT rejected the connection (%s); no client certificate is uploaded for component %s", text, component)
			}
			return CheckUpstreamTLS, "SUT rejected the platform's client certificate (" + text + ")"
		}
		return CheckUpstreamTLS, "SUT ended the TLS connection (" + text + ")"
	}

	// TLS and plain HTTP mixed up
	var rhe tls.RecordHeaderError
	if errors.As(err, &rhe) {
		if looksLikeHTTP(rhe.RecordHeader[:]) {
			return CheckUpstreamTLS, fmt.Sprintf("SUT spoke plain HTTP where TLS was expected, at %s (is use_encryption right for component %s?)", addr, component)
		}
		return CheckUpstreamTLS, fmt.Sprintf("SUT at %s did not answer with TLS (%s)", addr, rhe.Msg)
	}
	if msg := err.Error(); strings.Contains(msg, `malformed HTTP response "\x15\x03`) ||
		strings.Contains(msg, `malformed HTTP response "\x16\x03`) {
		return CheckUpstreamTLS, fmt.Sprintf("SUT spoke TLS where plain HTTP was expected, at %s (use_encryption is off for component %s)", addr, component)
	}

	// reaching the SUT at all
	if errors.Is(err, syscall.ECONNREFUSED) {
		return CheckUpstreamConnection, "connection refused by the SUT at " + addr
	}
	var dnse *net.DNSError
	if errors.As(err, &dnse) {
		if dnse.IsNotFound {
			return CheckUpstreamConnection, "SUT host " + dnse.Name + " was not found (DNS)"
		}
		return CheckUpstreamConnection, "SUT host " + dnse.Name + " could not be resolved: " + dnse.Err
	}
	if isTimeout(err) {
		var de dialError
		switch {
		case errors.As(err, &de):
			return CheckUpstreamConnection, "SUT at " + addr + " did not accept the connection in time"
		case strings.Contains(err.Error(), "TLS handshake timeout"):
			return CheckUpstreamTLS, "TLS handshake with the SUT at " + addr + " timed out (is it speaking TLS?)"
		case strings.Contains(err.Error(), "awaiting response headers"):
			return CheckUpstreamConnection, "SUT at " + addr + " did not answer in time"
		}
		return CheckUpstreamConnection, "SUT at " + addr + " timed out: " + err.Error()
	}
	if errors.Is(err, syscall.ECONNRESET) {
		return CheckUpstreamConnection, "SUT at " + addr + " reset the connection"
	}
	if strings.HasPrefix(innermost(err).Error(), "tls: ") {
		return CheckUpstreamTLS, "TLS with the SUT at " + addr + " failed: " + innermost(err).Error()
	}
	var de dialError
	if errors.As(err, &de) {
		return CheckUpstreamConnection, "could not connect to the SUT at " + addr + ": " + err.Error()
	}
	if strings.HasPrefix(err.Error(), "proxy: ") {
		// the identity could not be set up
		return CheckUpstreamTLS, strings.TrimPrefix(err.Error(), "proxy: ")
	}
	return CheckUpstreamConnection, "request to the SUT at " + addr + " failed: " + err.Error()
}

// invalidCertMessage explains an invalid SUT certificate.
func invalidCertMessage(cie x509.CertificateInvalidError) string {
	switch cie.Reason {
	case x509.Expired:
		if c := cie.Cert; c != nil {
			if time.Now().Before(c.NotBefore) {
				return "SUT certificate " + c.Subject.String() + " is not valid before " + c.NotBefore.UTC().Format(time.RFC3339)
			}
			return "SUT certificate " + c.Subject.String() + " expired on " + c.NotAfter.UTC().Format(time.RFC3339)
		}
		return "SUT certificate has expired or is not yet valid"
	case x509.IncompatibleUsage:
		return "SUT certificate lacks the serverAuth extended key usage"
	case x509.NotAuthorizedToSign:
		return "SUT certificate is signed by a certificate that is not a CA"
	}
	return "SUT certificate is not valid: " + cie.Error()
}

// certNames lists the names a certificate is valid for.
func certNames(c *x509.Certificate) string {
	if c == nil {
		return "another host"
	}
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		if c.Subject.CommonName != "" {
			return c.Subject.CommonName + " (common name only, which Go does not accept as a host name)"
		}
		return "no host name"
	}
	return strings.Join(names, ", ")
}

// remoteAlert finds a TLS alert the SUT sent, returning its
// code and text. crypto/tls reports a received alert as a
// *net.OpError with Op "remote error" whose Err is an
// unexported uint8 type; QUIC reports a tls.AlertError.
func remoteAlert(err error) (code uint8, text string, ok bool) {
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return uint8(ae), ae.Error(), true
	}
	var ope *net.OpError
	if errors.As(err, &ope) && ope.Op == "remote error" && ope.Err != nil {
		v := reflect.ValueOf(ope.Err)
		if v.Kind() == reflect.Uint8 {
			return uint8(v.Uint()), ope.Err.Error(), true
		}
		return 0, ope.Err.Error(), true
	}
	return 0, "", false
}

// looksLikeHTTP reports whether the first bytes a server sent
// are plain text (an HTTP response) rather than a TLS record.
func looksLikeHTTP(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// isTimeout reports whether err is a timeout.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// innermost unwraps err as far as it goes.
func innermost(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// HostPort returns base's host:port, with the scheme's default
// port (443 for https, else 80) when base has none: the dial
// address of a base_url.
func HostPort(base *url.URL) string {
	if base == nil {
		return "its address"
	}
	if base.Port() != "" {
		return base.Host
	}
	port := "80"
	if base.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(base.Hostname(), port)
}
