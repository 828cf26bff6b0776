package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// sut is a loopback system under test: an mTLS server that
// answers with what it saw of the client.
type sut struct {
	*httptest.Server
	ca   *testCert // signs the SUT's certificate and the clients it accepts
	port string
}

func newSUT(t *testing.T, clientAuth tls.ClientAuthType, h2 bool) *sut {
	t.Helper()
	ca := newCert(t, certSpec{CN: "SUT CA", CA: true}, nil)
	cert := newCert(t, certSpec{CN: "localhost", EKU: serverAuth, DNS: []string{"localhost"}}, ca)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := "-"
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "cn=%s conn=%s proto=%d sni=%s host=%s path=%s query=%s forged=%v", cn, r.RemoteAddr, r.ProtoMajor,
			r.TLS.ServerName, r.Host, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("X-Ssl-Client-Cert") != "")
	}))
	s.EnableHTTP2 = h2
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS()}, ClientAuth: clientAuth, ClientCAs: ca.Pool()}
	s.StartTLS()
	t.Cleanup(s.Close)
	u, _ := url.Parse(s.URL)
	return &sut{Server: s, ca: ca, port: u.Port()}
}

// base is the SUT's base_url, by name, so SNI and verification
// use "localhost".
func (s *sut) base() *url.URL {
	u, _ := url.Parse("https://localhost:" + s.port + "/api")
	return u
}

// platformIdentity returns an identity whose client certificate
// (CN=cn) is signed by signer.
func platformIdentity(t *testing.T, key string, roots *x509.CertPool, cn string, signer *testCert) *Identity {
	t.Helper()
	id := &Identity{Key: key, UseEncryption: true, RootCAs: roots}
	if signer != nil {
		c := newCert(t, certSpec{CN: cn, EKU: clientAuth}, signer)
		id.ClientChain, id.ClientKey = [][]byte{c.Cert.Raw}, c.Key
	}
	return id
}

// roundTrip sends a GET for base+rest through p with id and
// returns the body or the error.
func roundTrip(t *testing.T, p *Pool, base *url.URL, id *Identity, rest string) (string, error) {
	t.Helper()
	u := *base
	var err error
	u.Path, u.RawPath, err = JoinPath(base, rest)
	if err != nil {
		t.Fatal(err)
	}
	u.Scheme = "" // as Caddy's reverse proxy leaves it
	req := httptest.NewRequest("GET", "/", nil).WithContext(WithIdentity(t.Context(), id))
	req.RequestURI = ""
	req.URL = &u
	req.Host = base.Hostname()
	res, err := p.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

func field(body, name string) string {
	for _, f := range strings.Fields(body) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
	}
	return ""
}

func TestPoolIdentities(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			s := newSUT(t, tls.RequireAndVerifyClientCert, h2)
			p := NewPool(PoolOptions{})
			defer p.CloseIdleConnections()
			a := platformIdentity(t, "a", s.ca.Pool(), "session-a", s.ca)
			b := platformIdentity(t, "b", s.ca.Pool(), "session-b", s.ca)

			conns := map[string]map[string]bool{"session-a": {}, "session-b": {}}
			for i := range 6 {
				id := a
				if i%2 == 1 {
					id = b
				}
				body, err := roundTrip(t, p, s.base(), id, "/quotes/x%2Fy")
				if err != nil {
					t.Fatal(err)
				}
				cn := field(body, "cn")
				if want := "session-" + id.Key; cn != want {
					t.Fatalf("SUT saw %s, want %s", cn, want)
				}
				conns[cn][field(body, "conn")] = true
				wantProto := "1"
				if h2 {
					wantProto = "2"
				}
				if got := field(body, "proto"); got != wantProto {
					t.Errorf("HTTP/%s, want HTTP/%s", got, wantProto)
				}
				if got := field(body, "sni"); got != "localhost" {
					t.Errorf("SNI %q, want localhost", got)
				}
				if got := field(body, "path"); got != "/api/quotes/x%2Fy" {
					t.Errorf("path %q", got)
				}
			}
			for cn, set := range conns {
				if len(set) != 1 {
					t.Errorf("%s used %d connections, want 1 (reuse)", cn, len(set))
				}
				for c := range set {
					for other, set2 := range conns {
						if other != cn && set2[c] {
							t.Errorf("connection %s shared by %s and %s", c, cn, other)
						}
					}
				}
			}
			if p.Len() != 2 {
				t.Errorf("pool holds %d identities, want 2", p.Len())
			}

			// the same identity in a new *Identity value shares
			// the transport; a changed certificate under the same
			// key does not
			a2 := *a
			if _, err := roundTrip(t, p, s.base(), &a2, "/"); err != nil {
				t.Fatal(err)
			}
			if p.Len() != 2 {
				t.Errorf("an equal identity made a new transport")
			}
			a3 := platformIdentity(t, "a", s.ca.Pool(), "session-a-renewed", s.ca)
			body, err := roundTrip(t, p, s.base(), a3, "/")
			if err != nil {
				t.Fatal(err)
			}
			if cn := field(body, "cn"); cn != "session-a-renewed" {
				t.Errorf("after a certificate change under the same key the SUT saw %s", cn)
			}
		})
	}
}

func TestPoolSchemeAndErrors(t *testing.T) {
	p := NewPool(PoolOptions{})
	defer p.CloseIdleConnections()

	// encryption off: plain HTTP whatever the URL said
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls=%v", r.TLS != nil)
	}))
	defer plain.Close()
	u, _ := url.Parse(plain.URL)
	u.Scheme = "https"
	body, err := roundTrip(t, p, u, &Identity{Key: "plain"}, "/")
	if err != nil || body != "tls=false" {
		t.Errorf("encryption off: %q, %v", body, err)
	}

	// no identity: refused, never a default transport
	req := httptest.NewRequest("GET", plain.URL, nil)
	req.RequestURI = ""
	if _, err := p.RoundTrip(req); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("no identity: %v", err)
	}
	if _, err := roundTrip(t, p, u, &Identity{}, "/"); err == nil {
		t.Errorf("identity without a key accepted")
	}

	// a client certificate for another key is refused before dialing
	s := newSUT(t, tls.RequireAndVerifyClientCert, false)
	id := platformIdentity(t, "k", s.ca.Pool(), "p", s.ca)
	other := newCert(t, certSpec{CN: "other", EKU: clientAuth}, s.ca)
	id.ClientKey = other.Key
	_, err = roundTrip(t, p, s.base(), id, "/")
	check, msg := ClassifyUpstreamError(err, "payee", s.base())
	if err == nil || check != CheckUpstreamTLS || !strings.Contains(msg, "is not for the platform's upstream key") {
		t.Errorf("mismatched key: %v / %s: %s", err, check, msg)
	}

	// a refused dial is a reverseproxy.DialError (Caddy may
	// retry), a TLS failure is not
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed, _ := url.Parse("https://" + l.Addr().String())
	l.Close()
	_, err = roundTrip(t, p, closed, &Identity{Key: "x", UseEncryption: true}, "/")
	var de reverseproxy.DialError
	if !errors.As(err, &de) {
		t.Errorf("refused dial is not a DialError: %v", err)
	}
	_, err = roundTrip(t, p, s.base(), &Identity{Key: "y", UseEncryption: true}, "/")
	if err == nil || errors.As(err, &de) {
		t.Errorf("TLS failure: %v, DialError %v", err, errors.As(err, &de))
	}
}

func TestPoolEviction(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	p := NewPool(PoolOptions{IdentityIdleTimeout: 4 * time.Minute, MaxIdentities: 3, Now: clock})
	for _, k := range []string{"a", "b", "c"} {
		if _, err := p.Transport(&Identity{Key: k}); err != nil {
			t.Fatal(err)
		}
		advance(time.Second)
	}
	// the cap evicts the least recently used
	p.Transport(&Identity{Key: "a"})
	p.Transport(&Identity{Key: "d"})
	p.mu.RLock()
	_, hasB := p.entries["b"]
	_, hasA := p.entries["a"]
	p.mu.RUnlock()
	if p.Len() != 3 || hasB || !hasA {
		t.Errorf("after the cap: %d identities, b kept %v, a kept %v", p.Len(), hasB, hasA)
	}
	// idle identities go; used ones stay
	advance(3 * time.Minute)
	p.Transport(&Identity{Key: "d"})
	advance(2 * time.Minute)
	p.Transport(&Identity{Key: "d"})
	if p.Len() != 1 {
		t.Errorf("after idling: %d identities, want 1", p.Len())
	}
	p.Evict("d")
	if p.Len() != 0 {
		t.Errorf("after Evict: %d identities", p.Len())
	}
}

func BenchmarkPoolTransport(b *testing.B) {
	p := NewPool(PoolOptions{})
	ids := make([]*Identity, 100)
	for i := range ids {
		ids[i] = &Identity{Key: fmt.Sprint("id", i), UseEncryption: true}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := p.Transport(ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkPoolTransportParallel(b *testing.B) {
	p := NewPool(PoolOptions{})
	id := &Identity{Key: "id", UseEncryption: true}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Transport(id); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }
