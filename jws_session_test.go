package itp_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-itp/caddy-itp/internal/itptest"
	"github.com/caddy-itp/caddy-itp/jws"
)

// jwsResult is a session result as the admin API returns it.
type jwsResult struct {
	ID           int64           `json:"id"`
	Check        string          `json:"check"`
	Status       string          `json:"status"`
	Expected     json.RawMessage `json:"expected"`
	Actual       json.RawMessage `json:"actual"`
	Message      string          `json:"message"`
	ForwardedURI string          `json:"forwarded_uri"`
}

// jwsResults returns the session's results of one check newer than since.
func jwsResults(t *testing.T, env *itptest.Env, id, check string, since int64) []jwsResult {
	t.Helper()
	status, body := itptest.Do(t, http.DefaultClient, "GET", fmt.Sprintf("%s/itp/sessions/%s/results?since=%d&check=%s", env.AdminURL(), id, since, url.QueryEscape(check)), "", nil)
	if status != 200 {
		t.Fatalf("results: %d %s", status, body)
	}
	var rs []jwsResult
	if err := json.Unmarshal(body, &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

// jwsOneResult expects exactly one new result of check with status and a
// message containing msg, and returns it.
func jwsOneResult(t *testing.T, env *itptest.Env, id, check string, since int64, status, msg string) jwsResult {
	t.Helper()
	rs := jwsResults(t, env, id, check, since)
	if len(rs) != 1 || rs[0].Status != status || !strings.Contains(rs[0].Message, msg) {
		t.Fatalf("%s: got %+v, want one %s result with a message containing %q", check, rs, status, msg)
	}
	return rs[0]
}

// jwsLastID is the id of the session's newest result.
func jwsLastID(t *testing.T, env *itptest.Env, id string) int64 {
	t.Helper()
	status, body := itptest.Do(t, http.DefaultClient, "GET", env.AdminURL()+"/itp/sessions/"+id+"/results", "", nil)
	if status != 200 {
		t.Fatalf("results: %d %s", status, body)
	}
	var rs []jwsResult
	json.Unmarshal(body, &rs)
	if len(rs) == 0 {
		return 0
	}
	return rs[len(rs)-1].ID
}

func jwsCreateSession(t *testing.T, env *itptest.Env, s map[string]any) (int, []byte) {
	t.Helper()
	data, _ := json.Marshal(s)
	return itptest.Do(t, http.DefaultClient, "POST", env.AdminURL()+"/itp/sessions", "application/json", data)
}

// payeeSUT is a system under test behind the platform: it records what
// it receives and answers with a detached RS256 signature over its body
// (a wrong one with ?bad).
type payeeSUT struct {
	signer  *jws.Signer
	mu      sync.Mutex
	got     [][]byte
	headers []http.Header
}

func (p *payeeSUT) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.got = append(p.got, body)
	p.headers = append(p.headers, r.Header.Clone())
	p.mu.Unlock()
	answer := []byte(`{"transferState": "COMMITTED"}`)
	value, _, err := p.signer.Sign(jws.Message{Body: answer, Headers: w.Header()})
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("X-JWS-Signature", value)
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Has("bad") {
		answer = []byte(`{"transferState": "ABORTED"}`)
	}
	w.Write(answer)
}

func (p *payeeSUT) received() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.got...)
}

// TestSessionJWSRules drives session JWS rules through the testing routes
// over mutual TLS: a SUT source signing requests to a simulated target
// (verified over the raw bytes, FSPIOP-URI against the forwarded path),
// the simulated target's responses signed by the platform, and a SUT
// target behind enforcing rules (401 for a request, 502 for a response).
func TestSessionJWSRules(t *testing.T) {
	payer, hub, payee, other := newJWSKey(t, "RS256"), newJWSKey(t, "RS256"), newJWSKey(t, "RS256"), newJWSKey(t, "RS256")
	payeeSigner, err := jws.NewSigner(jws.Config{Format: jws.FormatDetached, Alg: "RS256", PrivateKey: payee.priv})
	if err != nil {
		t.Fatal(err)
	}
	sut := &payeeSUT{signer: payeeSigner}
	sutSrv := httptest.NewServer(sut)
	defer sutSrv.Close()

	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform("", "\titp\n\trespond `{\"quoteId\": \"q1\", \"amount\": 1.0, \"note\": \"<&>\"}` 200\n"))
	roots, _ := env.RootPool(t)
	c := env.Client(t, roots, ptr(firstOf(participant(t, env, "payer-app"))))

	mojaloopRule := func(source, target, direction string) map[string]any {
		return map[string]any{"source": source, "target": target, "direction": direction,
			"header": "FSPIOP-Signature", "format": "mojaloop", "alg": "RS256"}
	}
	with := func(m map[string]any, kv ...any) map[string]any {
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	sess := map[string]any{
		"id": "jws-rules",
		"components": []map[string]any{
			{"slug": "payer"},
			{"slug": "hub", "simulated": true},
			{"slug": "payee", "base_url": sutSrv.URL + "/api"},
		},
		"environment": map[string]string{
			"PAYER_JWS_PUBLIC_KEY": payer.pubPEM,
			"HUB_JWS_PRIVATE_KEY":  hub.privPEM,
			"HUB_JWS_PUBLIC_KEY":   hub.pubPEM,
			"PAYEE_JWS_PUBLIC_KEY": payee.pubPEM,
		},
		"jws": []map[string]any{
			with(mojaloopRule("payer", "hub", "request"), "public_key", "{{ env.PAYER_JWS_PUBLIC_KEY }}",
				"protected_headers", []string{"FSPIOP-Source", "FSPIOP-Destination", "Date"}),
			with(mojaloopRule("payer", "hub", "response"), "public_key", "{{ env.HUB_JWS_PUBLIC_KEY }}",
				"private_key", "{{ env.HUB_JWS_PRIVATE_KEY }}"),
			with(mojaloopRule("payer", "payee", "request"), "public_key", "{{ env.PAYER_JWS_PUBLIC_KEY }}", "enforce", true),
			{"source": "payer", "target": "payee", "direction": "response", "header": "X-JWS-Signature",
				"format": "detached", "alg": "RS256", "public_key": "{{ env.PAYEE_JWS_PUBLIC_KEY }}", "enforce": true},
			// the simulated hub's requests to the SUT are signed by the platform
			with(mojaloopRule("hub", "payee", "request"), "public_key", "{{ env.HUB_JWS_PUBLIC_KEY }}",
				"private_key", "{{ env.HUB_JWS_PRIVATE_KEY }}"),
		},
	}

	// a private key that does not match its public key is refused at
	// creation, naming the field
	bad := map[string]any{}
	for k, v := range sess {
		bad[k] = v
	}
	bad["id"] = "jws-mismatch"
	bad["environment"] = map[string]string{
		"PAYER_JWS_PUBLIC_KEY": payer.pubPEM, "HUB_JWS_PRIVATE_KEY": other.privPEM,
		"HUB_JWS_PUBLIC_KEY": hub.pubPEM, "PAYEE_JWS_PUBLIC_KEY": payee.pubPEM,
	}
	status, body := jwsCreateSession(t, env, bad)
	if status != 400 || !strings.Contains(string(body), "jws[1].private_key") || !strings.Contains(string(body), "does not match public_key") {
		t.Fatalf("mismatched keys: %d %s, want a 400 naming jws[1].private_key", status, body)
	}
	if status, body = jwsCreateSession(t, env, sess); status != 201 {
		t.Fatalf("create session: %d %s", status, body)
	}

	hubURL := env.SecureURL() + "/testing/payer/hub/jws-rules"
	transfer := []byte(`{"transferId": "b51ec534", "amount": {"amount": "100", "currency": "EUR"}}`)
	newHeader := func() http.Header {
		return http.Header{"Content-Type": {"application/json"}, "Fspiop-Source": {"payerfsp"}, "Fspiop-Destination": {"hubfsp"}}
	}

	// a valid FSPIOP-Signature (over /transfers?x=1, the path after the
	// session prefix with its query): pass; the simulated hub's answer
	// is signed by the platform in the form Mojaloop's validator checks
	since := jwsLastID(t, env, "jws-rules")
	hdr := newHeader()
	sent := mojaloopSign(t, payer, hdr, "POST", "/transfers?x=1", transfer)
	resp, got := jwsDo(t, c, "POST", hubURL+"/transfers?x=1", hdr, sent)
	if resp.StatusCode != 200 || string(got) != `{"amount":1,"note":"<&>","quoteId":"q1"}` {
		t.Fatalf("valid request: %d %s", resp.StatusCode, got)
	}
	if resp.Header.Get("Content-Length") != strconv.Itoa(len(got)) {
		t.Fatalf("Content-Length %q for a %d-byte signed body", resp.Header.Get("Content-Length"), len(got))
	}
	hubVerifier, err := jws.NewVerifier(jws.Config{Format: jws.FormatMojaloop, Alg: "RS256", PublicKey: hub.priv.Public()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hubVerifier.Verify(jws.Message{HeaderValue: resp.Header.Get("FSPIOP-Signature"), Body: got, Headers: resp.Header}); err != nil {
		t.Fatalf("the platform's signature on the simulated response: %v", err)
	}
	if resp.Header.Get("FSPIOP-Source") != "hubfsp" || resp.Header.Get("FSPIOP-URI") != "/transfers?x=1" {
		t.Fatalf("signed response headers: %v", resp.Header)
	}
	r := jwsOneResult(t, env, "jws-rules", "Request: JWS Signature", since, "pass", "valid RS256 signature")
	var compacted bytes.Buffer
	json.Compact(&compacted, r.Expected)
	if compacted.String() != `{"alg":"RS256","header":"FSPIOP-Signature","format":"mojaloop"}` {
		t.Errorf("expected: %s", r.Expected)
	}
	var actual struct {
		Header    string
		Value     string
		Protected map[string]any `json:"protected_header"`
	}
	if err := json.Unmarshal(r.Actual, &actual); err != nil || actual.Header != "FSPIOP-Signature" ||
		actual.Value != hdr.Get("FSPIOP-Signature") || actual.Protected["FSPIOP-URI"] != "/transfers?x=1" {
		t.Errorf("actual: %s", r.Actual)
	}
	r = jwsOneResult(t, env, "jws-rules", "Response: JWS Signature", since, "pass", "signed by the platform")
	if err := json.Unmarshal(r.Actual, &actual); err != nil || actual.Protected["alg"] != "RS256" {
		t.Errorf("response actual: %s", r.Actual)
	}

	// one byte changed: fail recorded, the request still answered
	since = jwsLastID(t, env, "jws-rules")
	resp, got = jwsDo(t, c, "POST", hubURL+"/transfers?x=1", hdr, bytes.Replace(sent, []byte("100"), []byte("900"), 1))
	if resp.StatusCode != 200 {
		t.Fatalf("tampered, not enforced: %d %s", resp.StatusCode, got)
	}
	jwsOneResult(t, env, "jws-rules", "Request: JWS Signature", since, "fail", "FSPIOP-Signature: the RS256 signature does not verify")

	// a body re-serialised after signing: the message says so
	since = jwsLastID(t, env, "jws-rules")
	var v any
	json.Unmarshal(sent, &v)
	indented, _ := json.MarshalIndent(v, "", "  ")
	jwsDo(t, c, "POST", hubURL+"/transfers?x=1", hdr, indented)
	jwsOneResult(t, env, "jws-rules", "Request: JWS Signature", since, "fail", "re-serialised")

	// FSPIOP-URI differing from the forwarded path
	since = jwsLastID(t, env, "jws-rules")
	resp, _ = jwsDo(t, c, "POST", hubURL+"/quotes", hdr, sent)
	r = jwsOneResult(t, env, "jws-rules", "Request: JWS Signature", since, "fail", `the signed FSPIOP-URI "/transfers?x=1" is not the forwarded request's URI "/quotes"`)
	if resp.StatusCode != 200 || !strings.Contains(compact(r.Actual), `"mismatch":{"expected":"/quotes","actual":"/transfers?x=1"}`) {
		t.Errorf("URI mismatch: %d, actual %s", resp.StatusCode, r.Actual)
	}

	// no signature at all
	since = jwsLastID(t, env, "jws-rules")
	jwsDo(t, c, "POST", hubURL+"/transfers", newHeader(), transfer)
	r = jwsOneResult(t, env, "jws-rules", "Request: JWS Signature", since, "fail", "no signature")
	if !strings.Contains(compact(r.Actual), `"value":null`) {
		t.Errorf("actual without a signature: %s", r.Actual)
	}

	// a body past the bound: 413, recorded
	since = jwsLastID(t, env, "jws-rules")
	resp, got = jwsDo(t, c, "POST", hubURL+"/transfers", newHeader(), bytes.Repeat([]byte("x"), 2<<20))
	wantJSONError(t, "large body", resp.StatusCode, got, 413, "larger than")
	jwsOneResult(t, env, "jws-rules", "Request: JWS Signature", since, "fail", "larger than")

	// the SUT payee, enforcing: a tampered request is answered 401 and
	// never reaches it; a valid one reaches it byte for byte, and its
	// signed response verifies
	payeeURL := env.SecureURL() + "/testing/payer/payee/jws-rules"
	since = jwsLastID(t, env, "jws-rules")
	phdr := newHeader()
	psent := mojaloopSign(t, payer, phdr, "PUT", "/transfers/b51ec534", transfer)
	resp, got = jwsDo(t, c, "PUT", payeeURL+"/transfers/b51ec534", phdr, bytes.Replace(psent, []byte("EUR"), []byte("USD"), 1))
	wantJSONError(t, "enforced request", resp.StatusCode, got, 401, "does not verify")
	jwsOneResult(t, env, "jws-rules", "Request: JWS Signature", since, "fail", "does not verify")
	if n := len(sut.received()); n != 0 {
		t.Fatalf("the SUT received %d requests refused by an enforcing rule", n)
	}
	since = jwsLastID(t, env, "jws-rules")
	resp, got = jwsDo(t, c, "PUT", payeeURL+"/transfers/b51ec534", phdr, psent)
	if resp.StatusCode != 200 || string(got) != `{"transferState": "COMMITTED"}` {
		t.Fatalf("valid request to the SUT: %d %s", resp.StatusCode, got)
	}
	if rec := sut.received(); len(rec) != 1 || !bytes.Equal(rec[0], psent) {
		t.Fatalf("the SUT received %q, want the bytes sent", rec)
	}
	jwsOneResult(t, env, "jws-rules", "Request: JWS Signature", since, "pass", "valid")
	jwsOneResult(t, env, "jws-rules", "Response: JWS Signature", since, "pass", "valid RS256 signature in X-JWS-Signature")

	// a SUT response whose signature fails: replaced by a 502
	since = jwsLastID(t, env, "jws-rules")
	resp, got = jwsDo(t, c, "PUT", payeeURL+"/transfers/b51ec534?bad", phdr, mojaloopSign(t, payer, phdr, "PUT", "/transfers/b51ec534?bad", transfer))
	wantJSONError(t, "enforced response", resp.StatusCode, got, 502, "does not verify")
	if resp.Header.Get("X-JWS-Signature") != "" {
		t.Errorf("the refused response's headers were kept: %v", resp.Header)
	}
	jwsOneResult(t, env, "jws-rules", "Response: JWS Signature", since, "fail", "does not verify")

	// a request from the simulated hub to the SUT: signed by the platform
	// over the canonical body it forwards, FSPIOP-URI the path after the
	// session prefix; the SUT verifies it with the hub's public key
	since = jwsLastID(t, env, "jws-rules")
	before := len(sut.received())
	resp, got = jwsDo(t, c, "POST", env.SecureURL()+"/testing/hub/payee/jws-rules/transfers", http.Header{"Fspiop-Source": {"hubfsp"}}, transfer)
	if resp.StatusCode != 200 {
		t.Fatalf("hub request: %d %s", resp.StatusCode, got)
	}
	sut.mu.Lock()
	fwdBody, fwdHeader := sut.got[before], sut.headers[before]
	sut.mu.Unlock()
	if string(fwdBody) != `{"amount":{"amount":"100","currency":"EUR"},"transferId":"b51ec534"}` || fwdHeader.Get("Content-Length") != strconv.Itoa(len(fwdBody)) {
		t.Fatalf("the SUT received %q (Content-Length %q)", fwdBody, fwdHeader.Get("Content-Length"))
	}
	if _, err := hubVerifier.Verify(jws.Message{HeaderValue: fwdHeader.Get("FSPIOP-Signature"), Body: fwdBody, Headers: fwdHeader, Method: "POST", URI: "/transfers"}); err != nil {
		t.Fatalf("the platform's signature on the hub's request: %v", err)
	}
	jwsOneResult(t, env, "jws-rules", "Request: JWS Signature", since, "pass", "signed by the platform")
}

func ptr[T any](v T) *T { return &v }
