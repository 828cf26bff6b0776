package itp_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-itp/caddy-itp/internal/itptest"
	"github.com/caddy-itp/caddy-itp/jws"
)

// jwsKey is a test signing key with its PEM forms.
type jwsKey struct {
	priv    crypto.Signer
	privPEM string
	pubPEM  string
}

func newJWSKey(t testing.TB, alg string) jwsKey {
	t.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	if strings.HasPrefix(alg, "ES") {
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return jwsKey{
		priv:    priv,
		privPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})),
		pubPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
	}
}

// mojaloopSign signs a request as a Mojaloop participant does, setting
// FSPIOP-Signature (and FSPIOP-URI, FSPIOP-HTTP-Method) on hdr, and
// returns the body to send.
func mojaloopSign(t testing.TB, k jwsKey, hdr http.Header, method, uri string, body []byte) []byte {
	t.Helper()
	s, err := jws.NewSigner(jws.Config{Format: jws.FormatMojaloop, Alg: "RS256", PrivateKey: k.priv,
		ProtectedHeaders: []string{"FSPIOP-Destination", "Date"}})
	if err != nil {
		t.Fatal(err)
	}
	value, out, err := s.Sign(jws.Message{Body: body, Headers: hdr, Method: method, URI: uri})
	if err != nil {
		t.Fatal(err)
	}
	hdr.Set("FSPIOP-Signature", value)
	return out
}

// jwsDo sends a request with headers and returns the response and body.
func jwsDo(t testing.TB, c *http.Client, method, url string, hdr http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

func wantJSONError(t testing.TB, what string, status int, body []byte, wantStatus int, wantMsg string) {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if status != wantStatus || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, wantMsg) {
		t.Fatalf("%s: %d %s, want %d with a JSON error containing %q", what, status, body, wantStatus, wantMsg)
	}
}

// gatewayBackend is a backend behind an itp_jws signing gateway: it
// verifies the platform's FSPIOP-Signature with the jws package against
// the request it received.
type gatewayBackend struct {
	verifier *jws.Verifier
	mu       sync.Mutex
	bodies   [][]byte
}

func (b *gatewayBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.bodies = append(b.bodies, body)
	b.mu.Unlock()
	_, err := b.verifier.Verify(jws.Message{
		HeaderValue: r.Header.Get("FSPIOP-Signature"), Body: body, Headers: r.Header,
		Method: r.Method, URI: r.URL.RequestURI(),
	})
	if err != nil {
		http.Error(w, "backend: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Write([]byte("backend verified"))
}

// TestJWSHandler runs itp_jws on the platform's TLS site: verify
// (recorded in placeholders, then enforced with 401), the body bound
// (413), signing requests before reverse_proxy to a backend that checks
// them with the jws package, and signing and verifying responses.
func TestJWSHandler(t *testing.T) {
	payer := newJWSKey(t, "RS256")
	gw := newJWSKey(t, "RS256")
	es := newJWSKey(t, "ES256")
	dir := t.TempDir()
	payerPub := filepath.Join(dir, "payer.pub.pem")
	os.WriteFile(payerPub, []byte(payer.pubPEM), 0o600)
	esPriv := filepath.Join(dir, "es.key")
	os.WriteFile(esPriv, []byte(es.privPEM), 0o600)
	t.Setenv("ITP_TEST_GW_PRIVATE_KEY", gw.privPEM)

	gwVerifier, err := jws.NewVerifier(jws.Config{Format: jws.FormatMojaloop, Alg: "RS256", PublicKey: gw.priv.Public()})
	if err != nil {
		t.Fatal(err)
	}
	backend := &gatewayBackend{verifier: gwVerifier}
	backendSrv := httptest.NewServer(backend)
	defer backendSrv.Close()
	// a backend whose responses the handler verifies: signed with the
	// payer key unless ?bad is given
	respSigner, err := jws.NewSigner(jws.Config{Format: jws.FormatDetached, Alg: "RS256", PrivateKey: payer.priv})
	if err != nil {
		t.Fatal(err)
	}
	signingSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := []byte(`{"status":"ok"}`)
		value, _, err := respSigner.Sign(jws.Message{Body: body, Headers: w.Header()})
		if err != nil {
			t.Error(err)
		}
		w.Header().Set("X-JWS-Signature", value)
		if r.URL.Query().Has("bad") {
			body = []byte(`{"status":"ko"}`)
		}
		w.Write(body)
	}))
	defer signingSrv.Close()

	site := `	handle /verify/* {
		itp_jws verify {
			format mojaloop
			alg RS256
			public_key_file ` + payerPub + `
			max_body 1KiB
		}
		respond "status={http.itp_jws.status} reason={http.itp_jws.reason}"
	}
	handle /enforce/* {
		itp_jws {
			format mojaloop
			alg RS256
			public_key {file.` + payerPub + `}
			enforce
		}
		respond "accepted"
	}
	handle /gateway/* {
		itp_jws sign {
			format mojaloop
			alg RS256
			private_key {env.ITP_TEST_GW_PRIVATE_KEY}
			protected_headers FSPIOP-Destination Date
		}
		reverse_proxy ` + strings.TrimPrefix(backendSrv.URL, "http://") + `
	}
	handle /signed-response/* {
		itp_jws sign {
			direction response
			format detached
			alg ES256
			private_key_file ` + esPriv + `
			unencoded
		}
		respond ` + "`" + `{"b": 2, "a": 1}` + "`" + `
	}
	handle /checked-response/* {
		itp_jws verify {
			direction response
			format detached
			alg RS256
			header X-JWS-Signature
			public_key_file ` + payerPub + `
			enforce
		}
		reverse_proxy ` + strings.TrimPrefix(signingSrv.URL, "http://") + `
	}`
	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform("", site))
	roots, _ := env.RootPool(t)
	c := env.Client(t, roots, nil)
	base := env.SecureURL()

	// verify, record only: a valid signature passes, a changed byte
	// fails with the reason in the placeholders and the request goes on
	body := []byte(`{"transferId":"1","amount":{"amount":"100","currency":"EUR"}}`)
	hdr := http.Header{"Content-Type": {"application/json"}, "Fspiop-Source": {"payerfsp"}}
	sent := mojaloopSign(t, payer, hdr, "POST", "/verify/transfers", body)
	resp, got := jwsDo(t, c, "POST", base+"/verify/transfers", hdr, sent)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(got), "status=pass reason=valid RS256 signature") {
		t.Fatalf("valid signature: %d %s", resp.StatusCode, got)
	}
	tampered := bytes.Replace(sent, []byte("100"), []byte("101"), 1)
	resp, got = jwsDo(t, c, "POST", base+"/verify/transfers", hdr, tampered)
	if resp.StatusCode != 200 || !strings.Contains(string(got), "status=fail reason=FSPIOP-Signature: the RS256 signature does not verify") {
		t.Fatalf("tampered body: %d %s", resp.StatusCode, got)
	}
	// the signed FSPIOP-URI is checked against the request's path
	resp, got = jwsDo(t, c, "POST", base+"/verify/quotes", hdr, sent)
	if resp.StatusCode != 200 || !strings.Contains(string(got), `the signed FSPIOP-URI \"/verify/transfers\" is not the forwarded request's URI \"/verify/quotes\"`) &&
		!strings.Contains(string(got), `the signed FSPIOP-URI "/verify/transfers" is not the forwarded request's URI "/verify/quotes"`) {
		t.Fatalf("other URI: %d %s", resp.StatusCode, got)
	}
	// past max_body: 413
	big := bytes.Repeat([]byte("x"), 2<<10)
	resp, got = jwsDo(t, c, "POST", base+"/verify/transfers", hdr, big)
	wantJSONError(t, "body past max_body", resp.StatusCode, got, 413, "larger than 1024 bytes")

	// enforce: 401 with a JSON error; a valid one is accepted
	ehdr := http.Header{"Fspiop-Source": {"payerfsp"}}
	esent := mojaloopSign(t, payer, ehdr, "PUT", "/enforce/transfers/1", body)
	resp, got = jwsDo(t, c, "PUT", base+"/enforce/transfers/1", ehdr, esent)
	if resp.StatusCode != 200 || string(got) != "accepted" {
		t.Fatalf("enforce, valid: %d %s", resp.StatusCode, got)
	}
	resp, got = jwsDo(t, c, "PUT", base+"/enforce/transfers/1", ehdr, bytes.Replace(esent, []byte("100"), []byte("101"), 1))
	wantJSONError(t, "enforce, tampered", resp.StatusCode, got, 401, "does not verify")
	resp, got = jwsDo(t, c, "PUT", base+"/enforce/transfers/1", http.Header{"Fspiop-Source": {"payerfsp"}}, esent)
	wantJSONError(t, "enforce, no signature", resp.StatusCode, got, 401, "no signature")

	// sign requests going upstream: the backend verifies with the
	// gateway's public key over the canonical body it receives
	ghdr := http.Header{"Fspiop-Source": {"payerfsp"}, "Fspiop-Destination": {"payeefsp"}, "Content-Type": {"application/json"}}
	resp, got = jwsDo(t, c, "POST", base+"/gateway/quotes?x=1", ghdr, []byte(`{"z": 1.0, "a": "<&>"}`))
	if resp.StatusCode != 200 || string(got) != "backend verified" {
		t.Fatalf("signed request: %d %s", resp.StatusCode, got)
	}
	backend.mu.Lock()
	if len(backend.bodies) != 1 || string(backend.bodies[0]) != `{"a":"<&>","z":1}` {
		t.Fatalf("backend received %q, want the canonical body", backend.bodies)
	}
	backend.mu.Unlock()
	// a request the gateway cannot sign (no FSPIOP-Source): 400
	resp, got = jwsDo(t, c, "POST", base+"/gateway/quotes", nil, []byte(`{}`))
	wantJSONError(t, "unsignable request", resp.StatusCode, got, 400, "FSPIOP-Source")

	// sign responses of the handlers after it (RFC 7797 unencoded)
	resp, got = jwsDo(t, c, "GET", base+"/signed-response/x", nil, nil)
	esVerifier, err := jws.NewVerifier(jws.Config{Format: jws.FormatDetached, Alg: "ES256", PublicKey: es.priv.Public()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := esVerifier.Verify(jws.Message{HeaderValue: resp.Header.Get("X-Jws-Signature"), Body: got, Headers: resp.Header})
	if resp.StatusCode != 200 || err != nil || !res.Unencoded || string(got) != `{"b": 2, "a": 1}` {
		t.Fatalf("signed response: %d %q %v %+v", resp.StatusCode, got, err, res)
	}

	// verify responses from upstream, enforcing: 502 when it fails
	resp, got = jwsDo(t, c, "GET", base+"/checked-response/ok", nil, nil)
	if resp.StatusCode != 200 || string(got) != `{"status":"ok"}` {
		t.Fatalf("verified response: %d %s", resp.StatusCode, got)
	}
	resp, got = jwsDo(t, c, "GET", base+"/checked-response/ok?bad", nil, nil)
	wantJSONError(t, "bad response", resp.StatusCode, got, 502, "does not verify")
}

// TestJWSHandlerProvisionErrors checks that bad configurations are refused
// when the config loads, naming the field.
func TestJWSHandlerProvisionErrors(t *testing.T) {
	k := newJWSKey(t, "RS256")
	other := newJWSKey(t, "RS256")
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(data), 0o600)
		return p
	}
	pub, priv, otherPriv := write("pub", k.pubPEM), write("priv", k.privPEM), write("other", other.privPEM)
	for _, tc := range []struct{ block, want string }{
		{"format mojaloop\n\t\talg RS256", "public_key: required"},
		{"alg RS256\n\t\tpublic_key_file " + pub, "format: required"},
		{"format mojaloop\n\t\talg none\n\t\tpublic_key_file " + pub, "alg"},
		{"format compact\n\t\talg RS256\n\t\tpublic_key_file " + pub, "header: required"},
		{"mode sign\n\t\tformat mojaloop\n\t\talg RS256\n\t\tpublic_key_file " + pub + "\n\t\tprivate_key_file " + otherPriv, "private_key: does not match public_key"},
		{"mode sign\n\t\tformat mojaloop\n\t\talg RS256\n\t\tprivate_key_file " + priv + "\n\t\tenforce", "enforce"},
		{"format mojaloop\n\t\talg HS256\n\t\tsecret {env.ITP_TEST_UNSET_SECRET}", "secret"},
		{"format mojaloop\n\t\talg RS256\n\t\tpublic_key_file " + filepath.Join(dir, "absent"), "public_key_file"},
		{"format mojaloop\n\t\talg RS256\n\t\tpublic_key_file " + priv, "public_key"},
	} {
		env := itptest.NewEnv(t)
		cfg := env.Adapt(t, `{
	admin localhost:{ADMIN}
	persist_config off
}
http://localhost:{INSECURE} {
	itp_jws {
		`+tc.block+`
	}
}
`)
		err := jwsLoadError(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.block, err, tc.want)
		}
	}
}

// jwsLoadError loads a config expected to fail, stopping it if it does not.
func jwsLoadError(cfg []byte) error {
	err := caddy.Load(cfg, true)
	if err == nil {
		caddy.Stop()
	}
	return err
}
