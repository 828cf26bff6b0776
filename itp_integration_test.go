package itp_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-itp/caddy-itp/internal/itptest"
)

// The site routes of the end-to-end tests: the itp handler, then a
// respond for simulated targets.
const itpSite = `	itp
	respond "simulated {http.itp.target} got {http.request.uri} for {http.itp.source} in {http.itp.session}"`

// sutSeen is what the test SUT reports about a request it received.
type sutSeen struct {
	Path, Query, Host, SNI, ClientCN string
	IdentityHeaders                  []string
}

// newSUT starts a real mTLS server (RequireAndVerifyClientCert) with a
// server certificate for localhost from ca, trusting clientCA for clients.
func newSUT(t *testing.T, ca, clientCA *itptest.CA) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(sutHandler))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.ServerCert(t, "localhost", "127.0.0.1")},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCA.Pool(),
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return srv, "https://localhost:" + u.Port() + "/api"
}

func sutHandler(w http.ResponseWriter, r *http.Request) {
	seen := sutSeen{Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Host: r.Host}
	if r.TLS != nil {
		seen.SNI = r.TLS.ServerName
		if len(r.TLS.PeerCertificates) > 0 {
			seen.ClientCN = r.TLS.PeerCertificates[0].Subject.CommonName
		}
	}
	for name := range r.Header {
		l := strings.ToLower(name)
		if strings.Contains(l, "client") || strings.HasPrefix(l, "x-ssl") {
			seen.IdentityHeaders = append(seen.IdentityHeaders, name)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(seen)
}

// platform is a running in-process platform with a participant.
type platform struct {
	env         *itptest.Env
	roots       *x509.CertPool
	participant tls.Certificate
	serial      string
	upstreamKey crypto.PublicKey
}

func startPlatform(t *testing.T) *platform {
	t.Helper()
	return startPlatformWith(t, "")
}

// startPlatformWith starts a platform with extra itp options.
func startPlatformWith(t *testing.T, itpOptions string) *platform {
	t.Helper()
	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform(itpOptions, itpSite))
	p := &platform{env: env}
	p.roots, _ = env.RootPool(t)
	p.participant, p.serial = p.newParticipant(t, "payer-client")
	_, csr := itptest.Do(t, http.DefaultClient, "GET", env.AdminURL()+"/itp/upstream/client.csr", "", nil)
	p.upstreamKey = parseCSR(t, csr).PublicKey
	return p
}

// newParticipant gets a participant certificate from the platform's CA.
func (p *platform) newParticipant(t *testing.T, cn string) (tls.Certificate, string) {
	return participant(t, p.env, cn)
}

// participant gets a client certificate with common name cn from the
// platform's CA (through the admin API) and returns it with its serial.
func participant(t *testing.T, env *itptest.Env, cn string) (tls.Certificate, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	status, z := itptest.Do(t, http.DefaultClient, "POST", env.AdminURL()+"/itp/ca/sign", "", csrWithCN(t, key, cn))
	if status != 200 {
		t.Fatalf("sign: %d %s", status, z)
	}
	certPEM, _ := unzipBundle(t, z)
	pair := itptest.KeyPair(t, string(certPEM), key)
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	return pair, leaf.SerialNumber.Text(16)
}

// firstOf returns the first of two results, for a participant's
// certificate without its serial.
func firstOf[A, B any](a A, _ B) A { return a }

// platformClientCert signs the platform's upstream key with the SUT's CA,
// as a SUT owner does with the documentation's openssl x509 -req.
func (p *platform) platformClientCert(t *testing.T, ca *itptest.CA, cn string) string {
	return ca.Sign(t, p.upstreamKey, cn, x509.ExtKeyUsageClientAuth, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
}

func (p *platform) admin(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var data []byte
	if body != nil {
		data, _ = json.Marshal(body)
	}
	return itptest.Do(t, http.DefaultClient, method, p.env.AdminURL()+path, "application/json", data)
}

func (p *platform) createSession(t *testing.T, s map[string]any) {
	t.Helper()
	if status, body := p.admin(t, "POST", "/itp/sessions", s); status != 201 {
		t.Fatalf("create session: %d %s", status, body)
	}
}

// results returns the session's results newer than since.
func (p *platform) results(t *testing.T, id string, since int64) []resultRecord {
	t.Helper()
	status, body := p.admin(t, "GET", fmt.Sprintf("/itp/sessions/%s/results?since=%d", id, since), nil)
	if status != 200 {
		t.Fatalf("results: %d %s", status, body)
	}
	var rs []resultRecord
	if err := json.Unmarshal(body, &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

type resultRecord struct {
	ID           int64           `json:"id"`
	Session      string          `json:"session"`
	Source       string          `json:"source"`
	Target       string          `json:"target"`
	Method       string          `json:"method"`
	URI          string          `json:"uri"`
	ForwardedURI string          `json:"forwarded_uri"`
	Check        string          `json:"check"`
	Status       string          `json:"status"`
	Expected     json.RawMessage `json:"expected"`
	Actual       json.RawMessage `json:"actual"`
	Message      string          `json:"message"`
	ClientCert   *struct {
		Subject, Serial, Issuer string
	} `json:"client_cert"`
}

// checks maps check name to status, failing on a check recorded twice.
func checks(t *testing.T, rs []resultRecord) map[string]resultRecord {
	t.Helper()
	m := map[string]resultRecord{}
	for _, r := range rs {
		if _, dup := m[r.Check]; dup {
			t.Fatalf("check %q recorded twice in one request: %+v", r.Check, rs)
		}
		m[r.Check] = r
	}
	return m
}

func wantChecks(t *testing.T, rs []resultRecord, want map[string]string) map[string]resultRecord {
	t.Helper()
	got := checks(t, rs)
	if len(got) != len(want) {
		t.Errorf("recorded %d checks, want %d: %+v", len(got), len(want), rs)
	}
	for check, status := range want {
		if got[check].Status != status {
			t.Errorf("check %q: %q, want %q (%+v)", check, got[check].Status, status, got[check])
		}
	}
	return got
}

func lastID(rs []resultRecord) int64 {
	if len(rs) == 0 {
		return 0
	}
	return rs[len(rs)-1].ID
}

// TestTestingRoutesEndToEnd covers each row of DESIGN.md §4 with real TLS
// on both legs: a real mTLS SUT and real clients, asserting the HTTP
// answer and the recorded results.
func TestTestingRoutesEndToEnd(t *testing.T) {
	p := startPlatform(t)
	sutCA := itptest.NewCA(t, "SUT CA")
	_, sutURL := newSUT(t, sutCA, sutCA)
	plain := httptest.NewServer(http.HandlerFunc(sutHandler))
	defer plain.Close()
	p.createSession(t, map[string]any{
		"id": "e2e",
		"components": []map[string]any{
			{"slug": "payer", "allowed_clients": []string{"payer-client"}},
			{"slug": "payee", "base_url": sutURL, "ca_cert": sutCA.PEM, "client_cert": p.platformClientCert(t, sutCA, "itp-platform")},
			{"slug": "plain", "base_url": plain.URL + "/p"},
			{"slug": "hub", "simulated": true},
			{"slug": "wrongca", "base_url": sutURL, "ca_cert": itptest.NewCA(t, "Other CA").PEM, "client_cert": p.platformClientCert(t, sutCA, "itp-platform")},
			{"slug": "nocert", "base_url": sutURL, "ca_cert": sutCA.PEM},
			{"slug": "badclient", "base_url": sutURL, "ca_cert": sutCA.PEM, "client_cert": p.platformClientCert(t, itptest.NewCA(t, "Not the SUT's CA"), "itp-platform")},
		},
	})
	mtls := p.env.Client(t, p.roots, &p.participant)
	secure, insecure := p.env.SecureURL(), p.env.InsecureURL()
	var since int64

	t.Run("verified client certificate, encrypted upstream", func(t *testing.T) {
		req, _ := http.NewRequest("GET", secure+"/testing/payer/payee/e2e/quotes/q%2F1?amount=10&currency=EUR", nil)
		req.Header.Set("X-Client-Cert", "forged")
		req.Header.Set("X-SSL-Client-S-DN", "CN=admin")
		req.Header.Set("X-Forwarded-Client-Cert", "By=spiffe://x")
		resp, err := mtls.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var seen sutSeen
		json.NewDecoder(resp.Body).Decode(&seen)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		want := sutSeen{Path: "/api/quotes/q%2F1", Query: "amount=10&currency=EUR", Host: strings.TrimPrefix(sutURL[:strings.LastIndex(sutURL, "/")], "https://"), SNI: "localhost", ClientCN: "itp-platform"}
		if fmt.Sprint(seen) != fmt.Sprint(want) {
			t.Fatalf("SUT saw %+v, want %+v", seen, want)
		}
		rs := p.results(t, "e2e", since)
		got := wantChecks(t, rs, map[string]string{"Was encrypted?": "pass", "Client certificate": "pass", "Upstream encryption": "pass", "Upstream TLS": "pass"})
		r := got["Client certificate"]
		if r.ClientCert == nil || r.ClientCert.Subject != "CN=payer-client" || r.ClientCert.Serial != p.serial {
			t.Errorf("result does not say who sent it: %+v", r.ClientCert)
		}
		if r.URI != "/testing/payer/payee/e2e/quotes/q%2F1?amount=10&currency=EUR" || r.ForwardedURI != "/api/quotes/q%2F1?amount=10&currency=EUR" || r.Method != "GET" {
			t.Errorf("uris: %q -> %q", r.URI, r.ForwardedURI)
		}
		since = lastID(rs)
	})

	t.Run("simulated target", func(t *testing.T) {
		status, body := itptest.Do(t, mtls, "POST", secure+"/testing/payer/hub/e2e/transfers?x=1", "", []byte("{}"))
		if status != 200 || string(body) != "simulated hub got /transfers?x=1 for payer in e2e" {
			t.Fatalf("%d %q", status, body)
		}
		rs := p.results(t, "e2e", since)
		wantChecks(t, rs, map[string]string{"Was encrypted?": "pass", "Client certificate": "pass"})
		since = lastID(rs)
	})

	t.Run("secure route without a client certificate", func(t *testing.T) {
		status, body := itptest.Do(t, p.env.Client(t, p.roots, nil), "GET", secure+"/testing/payer/hub/e2e/x", "", nil)
		if status != 496 || !strings.Contains(string(body), "no client certificate") || !strings.Contains(string(body), "/itp/certificates") {
			t.Fatalf("%d %q", status, body)
		}
		rs := p.results(t, "e2e", since)
		wantChecks(t, rs, map[string]string{"Client certificate": "fail", "Was encrypted?": "fail"})
		since = lastID(rs)
	})

	t.Run("secure route with a foreign certificate", func(t *testing.T) {
		foreign := itptest.NewCA(t, "Foreign CA")
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pair := itptest.KeyPair(t, foreign.Sign(t, key.Public(), "intruder", x509.ExtKeyUsageClientAuth, time.Now().Add(-time.Hour), time.Now().Add(time.Hour)), key)
		status, body := itptest.Do(t, p.env.Client(t, p.roots, &pair), "GET", secure+"/testing/payer/hub/e2e/x", "", nil)
		if status != 403 || !strings.Contains(string(body), "not signed by the ITP CA") {
			t.Fatalf("%d %q", status, body)
		}
		rs := p.results(t, "e2e", since)
		got := wantChecks(t, rs, map[string]string{"Client certificate": "fail", "Was encrypted?": "fail"})
		if got["Client certificate"].ClientCert == nil || got["Client certificate"].ClientCert.Subject != "CN=intruder" {
			t.Errorf("refusal does not say who: %+v", got["Client certificate"])
		}
		since = lastID(rs)
	})

	t.Run("certificate not allowed for the source", func(t *testing.T) {
		other, otherSerial := p.newParticipant(t, "someone-else")
		status, body := itptest.Do(t, p.env.Client(t, p.roots, &other), "GET", secure+"/testing/payer/hub/e2e/x", "", nil)
		if status != 403 || !strings.Contains(string(body), "not allowed") {
			t.Fatalf("%d %q", status, body)
		}
		rs := p.results(t, "e2e", since)
		got := wantChecks(t, rs, map[string]string{"Client certificate": "fail", "Was encrypted?": "fail"})
		if cc := got["Client certificate"].ClientCert; cc == nil || cc.Subject != "CN=someone-else" || cc.Serial != otherSerial {
			t.Errorf("refusal does not say who: %+v", cc)
		}
		since = lastID(rs)
		// the same certificate may call as a component without a list
		if status, _ := itptest.Do(t, p.env.Client(t, p.roots, &other), "GET", secure+"/testing/hub/payee/e2e/x", "", nil); status != 200 {
			t.Fatalf("component without allowed_clients: %d", status)
		}
		since = lastID(p.results(t, "e2e", since))
	})

	t.Run("insecure route over TLS without a client certificate", func(t *testing.T) {
		status, _ := itptest.Do(t, p.env.Client(t, p.roots, nil), "GET", secure+"/testing-insecure/payer/hub/e2e/x", "", nil)
		if status != 200 {
			t.Fatalf("%d", status)
		}
		rs := p.results(t, "e2e", since)
		got := wantChecks(t, rs, map[string]string{"Was encrypted?": "fail"})
		if compact(got["Was encrypted?"].Actual) != `{"mtls":false}` {
			t.Errorf("actual %s", got["Was encrypted?"].Actual)
		}
		since = lastID(rs)
	})

	t.Run("insecure route over plain HTTP", func(t *testing.T) {
		status, body := itptest.Do(t, http.DefaultClient, "GET", insecure+"/testing-insecure/payer/hub/e2e/x", "", nil)
		if status != 200 || !strings.Contains(string(body), "simulated hub") {
			t.Fatalf("%d %q", status, body)
		}
		rs := p.results(t, "e2e", since)
		got := wantChecks(t, rs, map[string]string{"Was encrypted?": "fail"})
		r := got["Was encrypted?"]
		if compact(r.Expected) != `{"mtls":true}` || compact(r.Actual) != `{"mtls":false}` || r.ClientCert != nil {
			t.Errorf("insecure result: %+v", r)
		}
		since = lastID(rs)
	})

	t.Run("secure path reached over plain HTTP", func(t *testing.T) {
		status, _ := itptest.Do(t, http.DefaultClient, "GET", insecure+"/testing/payer/hub/e2e/x", "", nil)
		if status != 200 {
			t.Fatalf("%d", status)
		}
		rs := p.results(t, "e2e", since)
		wantChecks(t, rs, map[string]string{"Was encrypted?": "fail"})
		since = lastID(rs)
	})

	t.Run("insecure route over mTLS passes", func(t *testing.T) {
		status, _ := itptest.Do(t, mtls, "GET", secure+"/testing-insecure/payer/hub/e2e/x", "", nil)
		if status != 200 {
			t.Fatalf("%d", status)
		}
		rs := p.results(t, "e2e", since)
		wantChecks(t, rs, map[string]string{"Was encrypted?": "pass", "Client certificate": "pass"})
		since = lastID(rs)
	})

	t.Run("use_encryption off", func(t *testing.T) {
		status, body := itptest.Do(t, mtls, "GET", secure+"/testing/payer/plain/e2e/x", "", nil)
		var seen sutSeen
		json.Unmarshal(body, &seen)
		if status != 200 || seen.Path != "/p/x" || seen.SNI != "" {
			t.Fatalf("%d %+v", status, seen)
		}
		rs := p.results(t, "e2e", since)
		got := wantChecks(t, rs, map[string]string{"Was encrypted?": "pass", "Client certificate": "pass", "Upstream encryption": "fail"})
		if !strings.Contains(got["Upstream encryption"].Message, "plain HTTP") {
			t.Errorf("message %q", got["Upstream encryption"].Message)
		}
		since = lastID(rs)
	})

	for _, tc := range []struct{ target, want string }{
		{"wrongca", "not signed by the CA uploaded for component wrongca"},
		{"nocert", "SUT requires a client certificate, and none is uploaded for component nocert"},
		{"badclient", "SUT rejected the platform's client certificate"},
	} {
		t.Run("upstream TLS failure "+tc.target, func(t *testing.T) {
			status, body := itptest.Do(t, mtls, "GET", secure+"/testing/payer/"+tc.target+"/e2e/x", "", nil)
			if status != 502 || !strings.Contains(string(body), tc.want) {
				t.Fatalf("%d %q, want 502 %q", status, body, tc.want)
			}
			rs := p.results(t, "e2e", since)
			got := checks(t, rs)
			if got["Upstream TLS"].Status != "fail" || !strings.Contains(got["Upstream TLS"].Message, tc.want) {
				t.Fatalf("results %+v", rs)
			}
			since = lastID(rs)
		})
	}

	t.Run("unknown session, group and component", func(t *testing.T) {
		for path, want := range map[string]string{
			"/testing/payer/payee/nope/x":       `unknown session "nope"`,
			"/testing/ghost/payee/e2e/x":        `no component "ghost" (the source)`,
			"/testing/payer/ghost/e2e/x":        `no component "ghost" (the target)`,
			"/testing-group/payer/payee/nope/x": `unknown group "nope"`,
			"/testing/payer/payee/../e2e/x":     "",
		} {
			status, body := itptest.Do(t, mtls, "GET", secure+path, "", nil)
			if status != 404 || !strings.Contains(string(body), want) {
				t.Errorf("%s: %d %q, want 404 %q", path, status, body, want)
			}
		}
	})

	t.Run("revocation on an open connection", func(t *testing.T) {
		pair, serial := p.newParticipant(t, "revokee")
		c := p.env.Client(t, p.roots, &pair)
		if status, _ := itptest.Do(t, c, "GET", secure+"/testing/hub/hub/e2e/x", "", nil); status != 200 {
			t.Fatalf("before revocation: %d", status)
		}
		if status, body := p.admin(t, "POST", "/itp/ca/revoke", map[string]string{"serial": serial}); status != 200 {
			t.Fatalf("revoke: %d %s", status, body)
		}
		// the same client, so the same kept-alive connection
		status, body := itptest.Do(t, c, "GET", secure+"/testing/hub/hub/e2e/x", "", nil)
		if status != 403 || !strings.Contains(string(body), "revoked") {
			t.Fatalf("after revocation: %d %q", status, body)
		}
		rs := p.results(t, "e2e", 0)
		last := rs[len(rs)-2:] // the refusal's two checks are the newest
		got := wantChecks(t, last, map[string]string{"Client certificate": "fail", "Was encrypted?": "fail"})
		if cc := got["Client certificate"].ClientCert; cc == nil || cc.Serial != serial || !strings.Contains(got["Client certificate"].Message, "revoked") {
			t.Errorf("revocation result: %+v", got["Client certificate"])
		}
	})

	t.Run("metrics", func(t *testing.T) {
		_, body := itptest.Do(t, http.DefaultClient, "GET", p.env.AdminURL()+"/metrics", "", nil)
		for _, want := range []string{`caddy_itp_checks_total{check="Was encrypted?",status="fail"}`, `caddy_itp_checks_total{check="Upstream TLS",status="pass"}`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

// TestGroupRoutes reaches a group's default session through the group
// routes, with the group's certificate.
func TestGroupRoutes(t *testing.T) {
	p := startPlatform(t)
	sutCA := itptest.NewCA(t, "SUT CA")
	_, sutURL := newSUT(t, sutCA, sutCA)
	if status, body := p.admin(t, "POST", "/itp/groups", map[string]any{
		"id": "bank", "name": "Bank",
		"certificates": []map[string]string{{"id": "sut", "name": "SUT", "ca_cert": sutCA.PEM, "client_cert": p.platformClientCert(t, sutCA, "group-cert")}},
	}); status != 201 {
		t.Fatalf("create group: %d %s", status, body)
	}
	p.createSession(t, map[string]any{"id": "g1", "group": "bank", "components": []map[string]any{
		{"slug": "payer"}, {"slug": "payee", "base_url": sutURL, "certificate": "sut"},
	}})
	if status, body := p.admin(t, "PUT", "/itp/groups/bank", map[string]any{
		"id": "bank", "name": "Bank", "default_session": "g1",
		"certificates": []map[string]string{{"id": "sut", "name": "SUT", "ca_cert": sutCA.PEM, "client_cert": p.platformClientCert(t, sutCA, "group-cert")}},
	}); status != 200 {
		t.Fatalf("set default session: %d %s", status, body)
	}
	status, body := itptest.Do(t, p.env.Client(t, p.roots, &p.participant), "GET", p.env.SecureURL()+"/testing-group/payer/payee/bank/x", "", nil)
	var seen sutSeen
	json.Unmarshal(body, &seen)
	if status != 200 || seen.ClientCN != "group-cert" || seen.Path != "/api/x" {
		t.Fatalf("%d %s", status, body)
	}
	status, _ = itptest.Do(t, http.DefaultClient, "GET", p.env.InsecureURL()+"/testing-insecure-group/payer/payee/bank/x", "", nil)
	if status != 200 {
		t.Fatalf("insecure group route: %d", status)
	}
	if rs := p.results(t, "g1", 0); len(rs) == 0 {
		t.Fatal("group route recorded nothing in the default session")
	}
}

// TestUpstreamIdentitySwitchWithoutReload changes a session's upstream
// certificate through the API: the SUT sees the new identity on the next
// request, with no config reload, and another session on the same SUT
// keeps its own identity.
func TestUpstreamIdentitySwitchWithoutReload(t *testing.T) {
	p := startPlatform(t)
	sutCA := itptest.NewCA(t, "SUT CA")
	_, sutURL := newSUT(t, sutCA, sutCA)
	session := func(id, cn string) map[string]any {
		return map[string]any{"id": id, "components": []map[string]any{
			{"slug": "payer"}, {"slug": "payee", "base_url": sutURL, "ca_cert": sutCA.PEM, "client_cert": p.platformClientCert(t, sutCA, cn)},
		}}
	}
	p.createSession(t, session("s1", "identity-one"))
	p.createSession(t, session("s2", "identity-two"))
	_, cfgBefore := itptest.Do(t, http.DefaultClient, "GET", p.env.AdminURL()+"/config/", "", nil)
	c := p.env.Client(t, p.roots, &p.participant)
	seenCN := func(id string) string {
		status, body := itptest.Do(t, c, "GET", p.env.SecureURL()+"/testing/payer/payee/"+id+"/x", "", nil)
		var seen sutSeen
		json.Unmarshal(body, &seen)
		if status != 200 {
			t.Fatalf("%s: %d %s", id, status, body)
		}
		return seen.ClientCN
	}
	for range 3 { // both identities over kept-alive upstream connections
		if a, b := seenCN("s1"), seenCN("s2"); a != "identity-one" || b != "identity-two" {
			t.Fatalf("identities mixed: %s %s", a, b)
		}
	}
	if status, body := p.admin(t, "PUT", "/itp/sessions/s1", session("s1", "identity-three")); status != 200 {
		t.Fatalf("put: %d %s", status, body)
	}
	if a, b := seenCN("s1"), seenCN("s2"); a != "identity-three" || b != "identity-two" {
		t.Fatalf("after the change: %s %s", a, b)
	}
	_, cfgAfter := itptest.Do(t, http.DefaultClient, "GET", p.env.AdminURL()+"/config/", "", nil)
	if !bytes.Equal(cfgBefore, cfgAfter) {
		t.Fatal("changing a session changed the Caddy config")
	}
}

// TestSessionsAndResultsSurviveRestart stops the in-process Caddy and
// starts it again on the same storage.
func TestSessionsAndResultsSurviveRestart(t *testing.T) {
	env := itptest.NewEnv(t)
	var before []resultRecord
	t.Run("first", func(t *testing.T) {
		env.Load(t, itptest.Platform("", itpSite))
		p := &platform{env: env}
		p.createSession(t, map[string]any{"id": "keep", "components": []map[string]any{{"slug": "a"}, {"slug": "b", "simulated": true}}})
		for range 3 {
			itptest.Do(t, http.DefaultClient, "GET", env.InsecureURL()+"/testing-insecure/a/b/keep/x", "", nil)
		}
		before = p.results(t, "keep", 0)
		if len(before) != 3 {
			t.Fatalf("%d results", len(before))
		}
	})
	t.Run("restarted", func(t *testing.T) {
		env.Load(t, itptest.Platform("", itpSite))
		p := &platform{env: env}
		after := p.results(t, "keep", 0)
		if len(after) != 3 || after[2].ID != before[2].ID {
			t.Fatalf("results after restart: %+v", after)
		}
		if status, _ := itptest.Do(t, http.DefaultClient, "GET", env.InsecureURL()+"/testing-insecure/a/b/keep/x", "", nil); status != 200 {
			t.Fatal("session lost in the restart")
		}
		if rs := p.results(t, "keep", before[2].ID); len(rs) != 1 || rs[0].ID != before[2].ID+1 {
			t.Fatalf("ids do not continue: %+v", rs)
		}
	})
}

// TestSessionServedBySecondProcess creates a session through the admin API
// of one Caddy process; a second process sharing its storage serves it.
func TestSessionServedBySecondProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	storage := t.TempDir()
	a, b := itptest.NewEnv(t), itptest.NewEnv(t)
	a.Storage, b.Storage = storage, storage
	a.Start(t, itptest.Platform("", itpSite))
	a.WaitReady(t)
	b.Start(t, itptest.Platform("", itpSite))
	b.WaitReady(t)
	pa := &platform{env: a}
	pa.createSession(t, map[string]any{"id": "shared", "components": []map[string]any{{"slug": "a"}, {"slug": "b", "simulated": true}}})
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := itptest.Do(t, http.DefaultClient, "GET", b.InsecureURL()+"/testing-insecure/a/b/shared/x", "", nil)
		if status == 200 && strings.Contains(string(body), "simulated b") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second process never served the session: %d %s", status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// the same id created on the second process is a conflict
	pb := &platform{env: b}
	if status, body := pb.admin(t, "POST", "/itp/sessions", map[string]any{"id": "shared", "components": []map[string]any{{"slug": "a"}}}); status != 409 {
		t.Fatalf("duplicate id on the other process: %d %s", status, body)
	}
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}
