package itp_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-itp/caddy-itp/internal/itptest"
)

// TestJWSMaxBodyConfigurable: the bound on bodies a session JWS rule reads
// is the app's jws_max_body; past it, a clear 413 and a recorded failure.
func TestJWSMaxBodyConfigurable(t *testing.T) {
	p := startPlatformWith(t, "\t\tjws_max_body 100")
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	p.createSession(t, map[string]any{"id": "small", "components": []map[string]any{{"slug": "a"}, {"slug": "b", "simulated": true}},
		"jws": []map[string]any{{"source": "a", "target": "b", "direction": "request", "header": "x-jws-signature",
			"format": "detached", "alg": "RS256", "public_key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))}}})
	c := p.env.Client(t, p.roots, &p.participant)
	status, body := itptest.Do(t, c, "POST", p.env.SecureURL()+"/testing/a/b/small/x", "application/json", []byte(strings.Repeat("x", 101)))
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "larger than 100 bytes") {
		t.Fatalf("%d %s", status, body)
	}
	rs := p.results(t, "small", 0)
	got := checks(t, rs)
	if got["Request: JWS Signature"].Status != "fail" || !strings.Contains(got["Request: JWS Signature"].Message, "larger than 100 bytes") {
		t.Fatalf("results %+v", rs)
	}
	// a body within the bound is read and checked (no signature: a fail,
	// but the request goes on: the rule does not enforce)
	if status, _ := itptest.Do(t, c, "POST", p.env.SecureURL()+"/testing/a/b/small/x", "application/json", []byte("{}")); status != 200 {
		t.Fatalf("small body: %d", status)
	}
}
