package itp_test

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-itp/caddy-itp/internal/itptest"
)

// TestRootRenewalThroughAdmin renews the root explicitly: participants'
// certificates from the old root keep working during the transition, the
// platform still proves itself to those who only have the old root, the
// download holds both roots, and new certificates come from the new root.
func TestRootRenewalThroughAdmin(t *testing.T) {
	p := startPlatform(t)
	p.createSession(t, map[string]any{"id": "r", "components": []map[string]any{{"slug": "a"}, {"slug": "b", "simulated": true}}})
	oldRoots := p.roots
	for _, bad := range []string{`{"transition":"-1h"}`, `{"key_type":"dsa"}`, `{"nope":1}`} {
		if status, body := itptest.Do(t, http.DefaultClient, "POST", p.env.AdminURL()+"/itp/ca/renew", "", []byte(bad)); status != 400 {
			t.Errorf("renew %s: %d %s", bad, status, body)
		}
	}
	status, body := itptest.Do(t, http.DefaultClient, "POST", p.env.AdminURL()+"/itp/ca/renew", "", []byte(`{"transition":"720h"}`))
	if status != 200 || !strings.Contains(string(body), `"previous"`) {
		t.Fatalf("renew: %d %s", status, body)
	}
	_, bundle := itptest.Do(t, http.DefaultClient, "GET", p.env.AdminURL()+"/itp/ca/root.crt", "", nil)
	if n := strings.Count(string(bundle), "BEGIN CERTIFICATE"); n != 2 {
		t.Fatalf("root.crt holds %d roots during the transition", n)
	}
	// a participant with the old root and the old certificate
	if status, _ := itptest.Do(t, p.env.Client(t, oldRoots, &p.participant), "GET", p.env.SecureURL()+"/testing/a/b/r/x", "", nil); status != 200 {
		t.Fatalf("old certificate during the transition: %d", status)
	}
	// a new participant certificate comes from the new root
	fresh, _ := p.newParticipant(t, "after-renewal")
	leaf, _ := x509.ParseCertificate(fresh.Certificate[0])
	block, _ := pem.Decode(bundle)
	newRoot, _ := x509.ParseCertificate(block.Bytes)
	if leaf.CheckSignatureFrom(newRoot) != nil {
		t.Fatal("certificate issued after renewal is not from the new root")
	}
	bothRoots := x509.NewCertPool()
	bothRoots.AppendCertsFromPEM(bundle)
	if status, _ := itptest.Do(t, p.env.Client(t, bothRoots, &fresh), "GET", p.env.SecureURL()+"/testing/a/b/r/x", "", nil); status != 200 {
		t.Fatalf("new certificate: %d", status)
	}
}
