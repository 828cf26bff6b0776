package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	ca := newCert(t, certSpec{CN: "ITP Root CA", CA: true, NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(72 * time.Hour)}, nil)
	inter := newCert(t, certSpec{CN: "ITP Intermediate", CA: true}, ca)
	foreign := newCert(t, certSpec{CN: "Foreign CA", CA: true}, nil)
	oldInter := newCert(t, certSpec{CN: "Old Intermediate", CA: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(time.Hour)}, ca)

	good := newCert(t, certSpec{CN: "alice", EKU: clientAuth}, ca)
	viaInter := newCert(t, certSpec{CN: "bob", EKU: clientAuth}, inter)
	serverOnly := newCert(t, certSpec{CN: "srv", EKU: serverAuth}, ca)
	noEKU := newCert(t, certSpec{CN: "noeku"}, ca)
	foreignLeaf := newCert(t, certSpec{CN: "mallory", EKU: clientAuth}, foreign)
	expired := newCert(t, certSpec{CN: "old", EKU: clientAuth, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}, ca)
	expiredForeign := newCert(t, certSpec{CN: "oldmallory", EKU: clientAuth, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}, foreign)
	future := newCert(t, certSpec{CN: "future", EKU: clientAuth, NotBefore: time.Now().Add(24 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour)}, ca)
	revoked := newCert(t, certSpec{CN: "revoked", EKU: clientAuth}, ca)
	underOld := newCert(t, certSpec{CN: "carol", EKU: clientAuth, NotAfter: time.Now().Add(24 * time.Hour)}, oldInter)

	pool := ca.Pool()
	var mu sync.Mutex
	revokedSet := map[string]bool{revoked.Cert.SerialNumber.Text(16): true}
	isRevoked := func(s *big.Int) bool {
		mu.Lock()
		defer mu.Unlock()
		return revokedSet[s.Text(16)]
	}
	now := time.Now()
	j := NewJudge(func() *x509.CertPool { return pool }, isRevoked, JudgeOptions{Now: func() time.Time { return now }})

	fp := func(c *testCert) string { s := sha256.Sum256(c.Cert.Raw); return hex.EncodeToString(s[:]) }

	for _, tc := range []struct {
		name    string
		cs      *tls.ConnectionState
		allowed map[string]struct{}
		status  int
		reason  string
	}{
		{name: "plain HTTP", cs: nil, status: 496, reason: "no client certificate was presented; get one"},
		{name: "TLS without certificate", cs: &tls.ConnectionState{}, status: 496, reason: "no client certificate was presented"},
		{name: "good", cs: state(good)},
		{name: "good, superfluous root sent", cs: state(good, ca)},
		{name: "via intermediate", cs: state(viaInter, inter)},
		{name: "foreign CA", cs: state(foreignLeaf), status: 403, reason: "client certificate is not signed by the ITP CA (its issuer is CN=Foreign CA"},
		{name: "foreign CA with its root", cs: state(foreignLeaf, foreign), status: 403, reason: "not signed by the ITP CA"},
		{name: "serverAuth only", cs: state(serverOnly), status: 403, reason: "client certificate lacks the clientAuth extended key usage"},
		{name: "no EKU", cs: state(noEKU), status: 403, reason: "client certificate lacks the clientAuth extended key usage"},
		{name: "the CA itself", cs: state(ca), status: 403, reason: "clientAuth"},
		{name: "expired", cs: state(expired), status: 403, reason: "client certificate expired on " + expired.Cert.NotAfter.UTC().Format(time.RFC3339)},
		{name: "expired foreign", cs: state(expiredForeign), status: 403, reason: "not signed by the ITP CA"},
		{name: "not yet valid", cs: state(future), status: 403, reason: "client certificate is not valid before"},
		{name: "revoked", cs: state(revoked), status: 403, reason: "client certificate was revoked"},
		{name: "allowed by CN", cs: state(good), allowed: allowedSet("alice")},
		{name: "allowed by fingerprint", cs: state(good), allowed: allowedSet(fp(good))},
		{name: "not allowed", cs: state(good), allowed: allowedSet("bob", fp(viaInter)), status: 403,
			reason: "client certificate CN=alice (sha256 " + fp(good) + ") is not allowed to call as component payer"},
		{name: "intermediate still valid", cs: state(underOld, oldInter)},
	} {
		for round := range 2 { // the second round is served from the cache
			v := j.Judge(tc.cs, "payer", tc.allowed)
			if v.Status != tc.status || v.OK != (tc.status == 0) {
				t.Errorf("%s (round %d): status %d ok %v, want %d (%s)", tc.name, round, v.Status, v.OK, tc.status, v.Reason)
			}
			if !strings.Contains(v.Reason, tc.reason) || (tc.reason == "") != (v.Reason == "") {
				t.Errorf("%s (round %d): reason %q, want it to contain %q", tc.name, round, v.Reason, tc.reason)
			}
			if tc.cs != nil && len(tc.cs.PeerCertificates) > 0 {
				leaf := tc.cs.PeerCertificates[0]
				if !v.Present || v.Subject != leaf.Subject.String() || v.Serial != leaf.SerialNumber.Text(16) || v.Issuer != leaf.Issuer.String() {
					t.Errorf("%s: certificate not described: %+v", tc.name, v)
				}
			} else if v.Present || v.Subject != "" {
				t.Errorf("%s: present without a certificate: %+v", tc.name, v)
			}
		}
	}

	// a leaf whose intermediate is not sent cannot be verified
	// (until the same leaf was verified once with it: then the
	// cache knows it chains to the root)
	j2 := NewJudge(func() *x509.CertPool { return pool }, nil, JudgeOptions{})
	if v := j2.Judge(state(viaInter), "payer", nil); v.OK || !strings.Contains(v.Reason, "not signed by the ITP CA") {
		t.Errorf("intermediate not sent: %+v", v)
	}
	if v := j.Judge(state(viaInter), "payer", nil); !v.OK {
		t.Errorf("intermediate not sent, leaf cached: %+v", v)
	}

	// an expired leaf whose CA was not yet valid when the leaf
	// expired is still reported as expired
	young := newCert(t, certSpec{CN: "Young CA", CA: true}, nil)
	j3 := NewJudge(young.Pool, nil, JudgeOptions{})
	if v := j3.Judge(state(newCert(t, certSpec{CN: "x", EKU: clientAuth, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}, young)), "payer", nil); v.OK ||
		!strings.HasPrefix(v.Reason, "client certificate expired on ") {
		t.Errorf("expired leaf under a young CA: %+v", v)
	}

	// time moves on: the intermediate expires, the cached chain is refused
	now = now.Add(2 * time.Hour)
	if v := j.Judge(state(underOld, oldInter), "payer", nil); v.OK || !strings.Contains(v.Reason, "CN=Old Intermediate") || !strings.Contains(v.Reason, "expired on") {
		t.Errorf("expired intermediate: %+v", v)
	}
	// and a leaf expires while cached
	now = now.Add(48 * time.Hour)
	if v := j.Judge(state(good), "payer", nil); v.OK || !strings.Contains(v.Reason, "client certificate expired on") {
		t.Errorf("leaf expired while cached: %+v", v)
	}
}

func TestJudgeCachesAndRevokesImmediately(t *testing.T) {
	ca := newCert(t, certSpec{CN: "ITP Root CA", CA: true}, nil)
	leaf := newCert(t, certSpec{CN: "alice", EKU: clientAuth}, ca)
	var revoked bool
	pool := ca.Pool()
	j := NewJudge(func() *x509.CertPool { return pool }, func(*big.Int) bool { return revoked }, JudgeOptions{})
	cs := state(leaf)
	for range 5 {
		if v := j.Judge(cs, "payer", nil); !v.OK {
			t.Fatal(v.Reason)
		}
	}
	if n := j.verifies.Load(); n != 1 {
		t.Errorf("%d chain verifications for 5 judgements, want 1", n)
	}
	revoked = true
	if v := j.Judge(cs, "payer", nil); v.OK || v.Reason != "client certificate was revoked" {
		t.Errorf("revocation not seen on the next judgement: %+v", v)
	}
	revoked = false

	// a new root pool (CA renewal) invalidates the cache
	other := newCert(t, certSpec{CN: "New ITP Root CA", CA: true}, nil)
	pool = other.Pool()
	if v := j.Judge(cs, "payer", nil); v.OK || !strings.Contains(v.Reason, "not signed by the ITP CA") {
		t.Errorf("old leaf accepted after a root change: %+v", v)
	}
	pool = nil
	if v := j.Judge(cs, "payer", nil); v.OK || v.Status != 403 {
		t.Errorf("nil pool: %+v", v)
	}
	// the cache stays bounded
	pool = ca.Pool()
	j2 := NewJudge(func() *x509.CertPool { return pool }, nil, JudgeOptions{CacheSize: 8})
	for range 30 {
		l := newCert(t, certSpec{CN: "x", EKU: clientAuth}, ca)
		if v := j2.Judge(state(l), "", nil); !v.OK {
			t.Fatal(v.Reason)
		}
	}
	if n := len(j2.cache); n > 8 {
		t.Errorf("cache holds %d entries, cap 8", n)
	}
}

// TestJudgeTLSHandshake feeds the judge the connection state of
// real TLS handshakes on loopback, with client auth in "request"
// mode as Caddy's is configured (DESIGN.md §2).
func TestJudgeTLSHandshake(t *testing.T) {
	ca := newCert(t, certSpec{CN: "ITP Root CA", CA: true}, nil)
	srvCert := newCert(t, certSpec{CN: "localhost", EKU: serverAuth, DNS: []string{"localhost"}}, ca)
	good := newCert(t, certSpec{CN: "alice", EKU: clientAuth}, ca)
	foreign := newCert(t, certSpec{CN: "Foreign CA", CA: true}, nil)
	bad := newCert(t, certSpec{CN: "mallory", EKU: clientAuth}, foreign)

	pool := ca.Pool()
	j := NewJudge(func() *x509.CertPool { return pool }, nil, JudgeOptions{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := j.Judge(r.TLS, "payer", nil)
		if !v.OK {
			http.Error(w, v.Reason, v.Status)
			return
		}
		io.WriteString(w, "hello "+v.Subject)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{srvCert.TLS()},
		ClientAuth:   tls.RequestClientCert,
		ClientCAs:    pool,
	}
	srv.StartTLS()
	defer srv.Close()

	get := func(cert *testCert) (int, string) {
		cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
		if cert != nil {
			c := cert.TLS()
			cfg.Certificates = []tls.Certificate{c}
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		defer client.CloseIdleConnections()
		res, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get(good); code != 200 || !strings.Contains(body, "CN=alice") {
		t.Errorf("good: %d %s", code, body)
	}
	if code, body := get(nil); code != 496 || !strings.Contains(body, "no client certificate") {
		t.Errorf("none: %d %s", code, body)
	}
	if code, body := get(bad); code != 403 || !strings.Contains(body, "not signed by the ITP CA") {
		t.Errorf("foreign: %d %s", code, body)
	}
}

func BenchmarkJudgeCached(b *testing.B) {
	ca := newCert(b, certSpec{CN: "ITP Root CA", CA: true}, nil)
	leaf := newCert(b, certSpec{CN: "alice", EKU: clientAuth}, ca)
	pool := ca.Pool()
	revoked := map[uint64]bool{}
	j := NewJudge(func() *x509.CertPool { return pool }, func(s *big.Int) bool { return revoked[s.Uint64()] }, JudgeOptions{})
	cs := state(leaf)
	allowed := allowedSet("alice")
	b.ReportAllocs()
	for b.Loop() {
		if v := j.Judge(cs, "payer", allowed); !v.OK {
			b.Fatal(v.Reason)
		}
	}
}

func BenchmarkJudgeCachedParallel(b *testing.B) {
	ca := newCert(b, certSpec{CN: "ITP Root CA", CA: true}, nil)
	leaf := newCert(b, certSpec{CN: "alice", EKU: clientAuth}, ca)
	pool := ca.Pool()
	j := NewJudge(func() *x509.CertPool { return pool }, func(*big.Int) bool { return false }, JudgeOptions{})
	cs := state(leaf)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v := j.Judge(cs, "payer", nil); !v.OK {
				b.Fatal(v.Reason)
			}
		}
	})
}

func BenchmarkJudgeUncached(b *testing.B) {
	ca := newCert(b, certSpec{CN: "ITP Root CA", CA: true}, nil)
	leaf := newCert(b, certSpec{CN: "alice", EKU: clientAuth}, ca)
	pool := ca.Pool()
	j := NewJudge(func() *x509.CertPool { return pool }, func(*big.Int) bool { return false }, JudgeOptions{})
	cs := state(leaf)
	b.ReportAllocs()
	for b.Loop() {
		j.Reset()
		if v := j.Judge(cs, "payer", nil); !v.OK {
			b.Fatal(v.Reason)
		}
	}
}

func TestJudgeConcurrent(t *testing.T) {
	ca := newCert(t, certSpec{CN: "ITP Root CA", CA: true}, nil)
	ca2 := newCert(t, certSpec{CN: "ITP Root CA 2", CA: true}, nil)
	p1, p2 := ca.Pool(), ca2.Pool()
	var mu sync.Mutex
	cur := p1
	roots := func() *x509.CertPool { mu.Lock(); defer mu.Unlock(); return cur }
	j := NewJudge(roots, func(*big.Int) bool { return false }, JudgeOptions{CacheSize: 4})
	leaves := make([]*tls.ConnectionState, 10)
	for i := range leaves {
		leaves[i] = state(newCert(t, certSpec{CN: "x", EKU: clientAuth}, ca))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				j.Judge(leaves[(g+i)%len(leaves)], "c", nil)
				if i%50 == 0 && g == 0 {
					mu.Lock()
					if cur == p1 {
						cur = p2
					} else {
						cur = p1
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	mu.Lock()
	cur = p1
	mu.Unlock()
	for _, cs := range leaves {
		if v := j.Judge(cs, "c", nil); !v.OK {
			t.Errorf("after the churn: %s", v.Reason)
		}
	}
	mu.Lock()
	cur = p2
	mu.Unlock()
	if v := j.Judge(leaves[0], "c", nil); v.OK {
		t.Errorf("accepted under another root")
	}
}

// allowedSet is an allowed_clients set as the session registry builds it
// (CNs, and fingerprints in lowercase hex).
func allowedSet(entries ...string) map[string]struct{} {
	set := make(map[string]struct{}, len(entries))
	for _, e := range entries {
		set[e] = struct{}{}
	}
	return set
}
