package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestClassifyUpstreamError provokes each upstream failure
// against a real loopback server, with the Pool as the client.
func TestClassifyUpstreamError(t *testing.T) {
	sutCA := newCert(t, certSpec{CN: "SUT CA", CA: true}, nil)
	foreignCA := newCert(t, certSpec{CN: "Foreign CA", CA: true}, nil)
	good := newCert(t, certSpec{CN: "localhost", EKU: serverAuth, DNS: []string{"localhost"}}, sutCA)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

	serve := func(cert *testCert, auth tls.ClientAuthType, maxVersion uint16) *url.URL {
		s := httptest.NewUnstartedServer(ok)
		s.Config.ErrorLog = log.New(io.Discard, "", 0)
		s.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS()}, ClientAuth: auth, ClientCAs: sutCA.Pool(), MaxVersion: maxVersion}
		s.StartTLS()
		t.Cleanup(s.Close)
		u, _ := url.Parse(s.URL)
		u.Host = "localhost:" + u.Port()
		u.Path = "/api"
		return u
	}
	// timeouts long enough for a loaded CI machine; only the silent servers reach them
	p := NewPool(PoolOptions{TLSHandshakeTimeout: 3 * time.Second, ResponseHeaderTimeout: 3 * time.Second})
	defer p.CloseIdleConnections()
	trusting := func(key string) *Identity { return &Identity{Key: key, UseEncryption: true, RootCAs: sutCA.Pool()} }
	withCert := func(key string, signer *testCert) *Identity {
		return platformIdentity(t, key, sutCA.Pool(), "platform", signer)
	}

	plain := httptest.NewServer(ok)
	defer plain.Close()
	plainURL, _ := url.Parse(plain.URL)
	plainURL.Host = "localhost:" + plainURL.Port()

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	refused, _ := url.Parse("https://" + l.Addr().String())
	l.Close()

	// a server that accepts connections and never says a word
	silent, _ := net.Listen("tcp", "127.0.0.1:0")
	defer silent.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	silentURL, _ := url.Parse("https://" + silent.Addr().String())
	silentPlainURL, _ := url.Parse("http://" + silent.Addr().String())

	expiredCert := newCert(t, certSpec{CN: "localhost", EKU: serverAuth, DNS: []string{"localhost"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}, sutCA)
	clientOnly := newCert(t, certSpec{CN: "localhost", EKU: clientAuth, DNS: []string{"localhost"}}, sutCA)

	for _, tc := range []struct {
		name  string
		base  *url.URL
		id    *Identity
		check string
		msg   string
	}{
		{"foreign CA", serve(newCert(t, certSpec{CN: "localhost", EKU: serverAuth, DNS: []string{"localhost"}}, foreignCA), tls.NoClientCert, 0),
			trusting("a"), CheckUpstreamTLS, "SUT certificate is not signed by the CA uploaded for component payee (it is issued by CN=Foreign CA"},
		{"system roots", serve(good, tls.NoClientCert, 0),
			&Identity{Key: "sys", UseEncryption: true}, CheckUpstreamTLS, "not signed by a CA the system trusts, and no CA is uploaded for component payee"},
		{"wrong name", serve(newCert(t, certSpec{CN: "example.org", EKU: serverAuth, DNS: []string{"example.org"}}, sutCA), tls.NoClientCert, 0),
			trusting("b"), CheckUpstreamTLS, "SUT certificate is for example.org, not localhost"},
		{"expired", serve(expiredCert, tls.NoClientCert, 0),
			trusting("c"), CheckUpstreamTLS, "SUT certificate CN=localhost,O=ITP test expired on " + expiredCert.Cert.NotAfter.UTC().Format(time.RFC3339)},
		{"no serverAuth", serve(clientOnly, tls.NoClientCert, 0),
			trusting("c2"), CheckUpstreamTLS, "SUT certificate lacks the serverAuth extended key usage"},
		{"platform cert from another CA (TLS 1.3)", serve(good, tls.RequireAndVerifyClientCert, 0),
			withCert("d", foreignCA), CheckUpstreamTLS, "SUT rejected the platform's client certificate (tls: unknown certificate authority)"},
		{"platform cert from another CA (TLS 1.2)", serve(good, tls.RequireAndVerifyClientCert, tls.VersionTLS12),
			withCert("e", foreignCA), CheckUpstreamTLS, "SUT rejected the platform's client certificate (tls: unknown certificate authority)"},
		{"no platform cert (TLS 1.3)", serve(good, tls.RequireAndVerifyClientCert, 0),
			trusting("f"), CheckUpstreamTLS, "SUT requires a client certificate, and none is uploaded for component payee (tls: certificate required)"},
		{"no platform cert (TLS 1.2)", serve(good, tls.RequireAndVerifyClientCert, tls.VersionTLS12),
			trusting("g"), CheckUpstreamTLS, "none is uploaded for component payee"},
		{"plain HTTP SUT", plainURL, trusting("h"), CheckUpstreamTLS, "SUT spoke plain HTTP where TLS was expected, at localhost:" + plainURL.Port()},
		{"refused", refused, trusting("i"), CheckUpstreamConnection, "connection refused by the SUT at " + refused.Host},
		{"handshake timeout", silentURL, trusting("j"), CheckUpstreamTLS, "TLS handshake with the SUT at " + silentURL.Host + " timed out"},
		{"response timeout", silentPlainURL, &Identity{Key: "k"}, CheckUpstreamConnection, "SUT at " + silentURL.Host + " did not answer in time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := roundTrip(t, p, tc.base, tc.id, "/x")
			if err == nil {
				t.Fatal("no error")
			}
			check, msg := ClassifyUpstreamError(err, "payee", tc.base)
			if check != tc.check || !strings.Contains(msg, tc.msg) {
				t.Errorf("got %q: %q\nwant %q: %q\nerror: %v", check, msg, tc.check, tc.msg, err)
			}
		})
	}

	// the reverse mix-up: TLS where plain HTTP was expected
	// (Go answers "400 Client sent an HTTP request to an HTTPS
	// server", other servers answer a TLS alert)
	alertSrv, _ := net.Listen("tcp", "127.0.0.1:0")
	defer alertSrv.Close()
	go func() {
		for {
			c, err := alertSrv.Accept()
			if err != nil {
				return
			}
			// read the request first: answering before it is written
			// makes the client's error a race, not the alert
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			c.Read(make([]byte, 4096))
			c.Write([]byte("\x15\x03\x01\x00\x02\x02\x46"))
			c.Close()
		}
	}()
	alertURL, _ := url.Parse("http://" + alertSrv.Addr().String())
	_, err := roundTrip(t, p, alertURL, &Identity{Key: "plain"}, "/")
	if check, msg := ClassifyUpstreamError(err, "payee", alertURL); check != CheckUpstreamTLS || !strings.Contains(msg, "SUT spoke TLS where plain HTTP was expected") {
		t.Errorf("TLS answer to plain HTTP: %q: %q (%v)", check, msg, err)
	}

	if c, m := ClassifyUpstreamError(nil, "x", nil); c != "" || m != "" {
		t.Errorf("nil error: %q %q", c, m)
	}
	if c, _ := ClassifyUpstreamError(ErrNoIdentity, "x", nil); c != "" {
		t.Errorf("ErrNoIdentity classified as %q", c)
	}
	if c, m := ClassifyUpstreamError(&net.DNSError{Name: "sut.invalid", Err: "no such host", IsNotFound: true}, "x", nil); c != CheckUpstreamConnection || !strings.Contains(m, "sut.invalid was not found") {
		t.Errorf("DNS: %q %q", c, m)
	}
	if c, _ := ClassifyUpstreamError(errors.New("some error"), "x", refused); c != CheckUpstreamConnection {
		t.Errorf("other: %q", c)
	}
}

func TestHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"https://sut.example/api": "sut.example:443", "http://sut.example": "sut.example:80",
		"https://sut.example:9443/x": "sut.example:9443", "https://[::1]/": "[::1]:443",
	} {
		u, _ := url.Parse(in)
		if got := HostPort(u); got != want {
			t.Errorf("HostPort(%s) = %s, want %s", in, got, want)
		}
	}
}
