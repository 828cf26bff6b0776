package itp_test

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	itp "github.com/caddy-itp/caddy-itp"
	"github.com/caddy-itp/caddy-itp/internal/itptest"
	"github.com/caddy-itp/caddy-itp/results"
)

// admSession is the part of a session view the tests read.
type admSession struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Group       string            `json:"group"`
	Environment map[string]string `json:"environment"`
	Warnings    []string          `json:"warnings"`
	Static      bool              `json:"static"`
	URLs        []itp.SessionURL  `json:"urls"`
}

// admGroup is the part of a group view the tests read.
type admGroup struct {
	ID             string           `json:"id"`
	Name           string           `json:"name"`
	DefaultSession string           `json:"default_session"`
	Warnings       []string         `json:"warnings"`
	Sessions       []string         `json:"sessions"`
	URLs           []itp.SessionURL `json:"urls"`
}

// admCall makes an admin API request with body (marshalled to JSON unless
// it is a string or []byte) and returns the status and the response body.
func admCall(t *testing.T, env *itptest.Env, method, path string, body any) (int, []byte) {
	t.Helper()
	var data []byte
	switch b := body.(type) {
	case nil:
	case string:
		data = []byte(b)
	case []byte:
		data = b
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	ct := ""
	if data != nil {
		ct = "application/json"
	}
	return itptest.Do(t, http.DefaultClient, method, env.AdminURL()+path, ct, data)
}

// admWant checks the status of a call and decodes its JSON body into v
// when v is not nil.
func admWant(t *testing.T, status int, body []byte, want int, v any) {
	t.Helper()
	if status != want {
		t.Fatalf("status %d, want %d: %s", status, want, body)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("decoding %s: %v", body, err)
		}
	}
}

// admWantError checks that a call failed with status and a JSON error
// containing each of wants.
func admWantError(t *testing.T, status int, body []byte, want int, wants ...string) {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if status != want || json.Unmarshal(body, &e) != nil || e.Error == "" {
		t.Fatalf("status %d, want %d with a JSON error: %s", status, want, body)
	}
	for _, w := range wants {
		if !strings.Contains(e.Error, w) {
			t.Errorf("error %q does not contain %q", e.Error, w)
		}
	}
}

// admCA is a test certificate authority.
type admCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  string
}

var admSerial = big.NewInt(1000)

func admNewCA(t *testing.T, cn string) *admCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	admSerial.Add(admSerial, big.NewInt(1))
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).Set(admSerial),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &admCA{cert: cert, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// sign issues a client certificate for pub valid from notBefore to
// notAfter, as `openssl x509 -req -CA ca.crt -CAkey ca.key` does.
func (c *admCA) sign(t *testing.T, pub crypto.PublicKey, notBefore, notAfter time.Time) string {
	t.Helper()
	admSerial.Add(admSerial, big.NewInt(1))
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).Set(admSerial),
		Subject:      pkix.Name{CommonName: "itp-platform"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// admUpstreamKey downloads the platform's upstream CSR, as a participant
// does before having it signed, and returns its public key.
func admUpstreamKey(t *testing.T, env *itptest.Env) crypto.PublicKey {
	t.Helper()
	status, body := admCall(t, env, "GET", "/itp/upstream/client.csr", nil)
	if status != 200 {
		t.Fatalf("client.csr: %d %s", status, body)
	}
	block, _ := pem.Decode(body)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("client.csr is not a PEM CSR: %s", body)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("client.csr signature: %v", err)
	}
	return csr.PublicKey
}

// admKeyPEM returns a new ECDSA P-256 key as PKCS#8 PEM and its public key
// as PKIX PEM.
func admKeyPEM(t *testing.T) (private, public string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pub, _ := x509.MarshalPKIXPublicKey(key.Public())
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
}

// admP2P is a session of a SUT that receives, a simulated hub and a SUT
// that only sends.
func admP2P(id, name string) map[string]any {
	return map[string]any{
		"id":   id,
		"name": name,
		"components": []any{
			map[string]any{"slug": "payer", "base_url": "https://payer.example:9443/api"},
			map[string]any{"slug": "hub", "simulated": true},
			map[string]any{"slug": "app"},
		},
	}
}

// admWantURLs checks the URLs of the admP2P session with the given route
// prefixes and id.
func admWantURLs(t *testing.T, env *itptest.Env, got []itp.SessionURL, secure, insecure, id string) {
	t.Helper()
	pairs := [][2]string{{"payer", "hub"}, {"hub", "payer"}, {"app", "payer"}, {"app", "hub"}}
	if len(got) != len(pairs) {
		t.Fatalf("%d urls, want %d: %+v", len(got), len(pairs), got)
	}
	for i, p := range pairs {
		want := itp.SessionURL{
			Source:   p[0],
			Target:   p[1],
			Secure:   fmt.Sprintf("%s/%s/%s/%s/%s", env.SecureURL(), secure, p[0], p[1], id),
			Insecure: fmt.Sprintf("%s/%s/%s/%s/%s", env.InsecureURL(), insecure, p[0], p[1], id),
		}
		if got[i] != want {
			t.Errorf("url %d: %+v, want %+v", i, got[i], want)
		}
	}
}

// admPlatformLogging is the test platform with its logs written as JSON to
// a file, for the audit entries.
func admPlatformLogging(logPath string) string {
	return strings.Replace(itptest.Platform("", echoSubject), "output discard", "output file "+logPath+"\n\t\tformat json", 1)
}

// admAudit returns the log entries of logger "itp" with a "by" field.
func admAudit(t *testing.T, logPath string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) == nil && e["logger"] == "itp" && e["by"] != nil && e["action"] != nil {
			out = append(out, e)
		}
	}
	return out
}

func TestAdminSessionsAndGroups(t *testing.T) {
	env := itptest.NewEnv(t)
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	env.Load(t, admPlatformLogging(logPath))

	// create: 201 with the URLs of every pair that can talk
	status, body := admCall(t, env, "POST", "/itp/sessions", admP2P("demo-1", "p2p demo"))
	var created admSession
	admWant(t, status, body, http.StatusCreated, &created)
	if created.ID != "demo-1" || created.Name != "p2p demo" || created.Static {
		t.Fatalf("created %+v", created)
	}
	admWantURLs(t, env, created.URLs, "testing", "testing-insecure", "demo-1")

	// get and list
	var got admSession
	status, body = admCall(t, env, "GET", "/itp/sessions/demo-1", nil)
	admWant(t, status, body, 200, &got)
	admWantURLs(t, env, got.URLs, "testing", "testing-insecure", "demo-1")
	if got.Name != "p2p demo" {
		t.Fatalf("got %+v", got)
	}

	// an id is chosen, random, when absent
	anon := admP2P("", "anonymous")
	delete(anon, "id")
	var random admSession
	status, body = admCall(t, env, "POST", "/itp/sessions", anon)
	admWant(t, status, body, http.StatusCreated, &random)
	if len(random.ID) != 36 || strings.Count(random.ID, "-") != 4 {
		t.Fatalf("random id %q is not a UUID", random.ID)
	}
	admWantURLs(t, env, random.URLs, "testing", "testing-insecure", random.ID)

	var list []admSession
	status, body = admCall(t, env, "GET", "/itp/sessions", nil)
	admWant(t, status, body, 200, &list)
	ids := map[string]bool{}
	for _, s := range list {
		ids[s.ID] = true
		if len(s.URLs) != 4 {
			t.Errorf("listed session %s has %d urls", s.ID, len(s.URLs))
		}
	}
	if len(list) != 2 || !ids["demo-1"] || !ids[random.ID] {
		t.Fatalf("list: %s", body)
	}

	// an existing id: 409
	status, body = admCall(t, env, "POST", "/itp/sessions", admP2P("demo-1", "again"))
	admWantError(t, status, body, http.StatusConflict, "demo-1", "already exists")

	// put
	changed := admP2P("demo-1", "renamed")
	status, body = admCall(t, env, "PUT", "/itp/sessions/demo-1", changed)
	admWant(t, status, body, 200, &got)
	if got.Name != "renamed" || len(got.URLs) != 4 {
		t.Fatalf("put answered %s", body)
	}
	status, body = admCall(t, env, "GET", "/itp/sessions/demo-1", nil)
	admWant(t, status, body, 200, &got)
	if got.Name != "renamed" {
		t.Fatalf("after put: %s", body)
	}
	status, body = admCall(t, env, "PUT", "/itp/sessions/demo-1", admP2P("other", "x"))
	admWantError(t, status, body, http.StatusBadRequest, "id:", "other")
	status, body = admCall(t, env, "PUT", "/itp/sessions/nope", admP2P("", "x"))
	admWantError(t, status, body, http.StatusNotFound, "nope")

	// groups: create, list, get, put with a default session, in use
	status, body = admCall(t, env, "POST", "/itp/groups", map[string]any{"id": "g1", "name": "hub group", "environment": map[string]string{"HUB": "hub"}})
	var g admGroup
	admWant(t, status, body, http.StatusCreated, &g)
	if g.ID != "g1" || g.Name != "hub group" || len(g.URLs) != 0 || len(g.Sessions) != 0 {
		t.Fatalf("created group %s", body)
	}
	status, body = admCall(t, env, "POST", "/itp/groups", map[string]any{"id": "g1"})
	admWantError(t, status, body, http.StatusConflict, "g1")
	member := admP2P("member-1", "in g1")
	member["group"] = "g1"
	status, body = admCall(t, env, "POST", "/itp/sessions", member)
	admWant(t, status, body, http.StatusCreated, nil)
	status, body = admCall(t, env, "PUT", "/itp/groups/g1", map[string]any{"name": "hub group", "default_session": "member-1"})
	admWant(t, status, body, 200, &g)
	status, body = admCall(t, env, "GET", "/itp/groups/g1", nil)
	admWant(t, status, body, 200, &g)
	if g.DefaultSession != "member-1" || len(g.Sessions) != 1 || g.Sessions[0] != "member-1" {
		t.Fatalf("group %s", body)
	}
	admWantURLs(t, env, g.URLs, "testing-group", "testing-insecure-group", "g1")
	var groups []admGroup
	status, body = admCall(t, env, "GET", "/itp/groups", nil)
	admWant(t, status, body, 200, &groups)
	if len(groups) != 1 || groups[0].ID != "g1" || len(groups[0].URLs) != 4 {
		t.Fatalf("groups %s", body)
	}
	status, body = admCall(t, env, "DELETE", "/itp/groups/g1", nil)
	admWantError(t, status, body, http.StatusConflict, "member-1")

	// delete
	for _, id := range []string{"member-1", "demo-1"} {
		status, body = admCall(t, env, "DELETE", "/itp/sessions/"+id, nil)
		admWant(t, status, body, http.StatusNoContent, nil)
		status, body = admCall(t, env, "GET", "/itp/sessions/"+id, nil)
		admWantError(t, status, body, http.StatusNotFound, id)
	}
	status, body = admCall(t, env, "DELETE", "/itp/sessions/demo-1", nil)
	admWantError(t, status, body, http.StatusNotFound, "demo-1")
	status, body = admCall(t, env, "DELETE", "/itp/groups/g1", nil)
	admWant(t, status, body, http.StatusNoContent, nil)
	status, body = admCall(t, env, "GET", "/itp/groups/g1", nil)
	admWantError(t, status, body, http.StatusNotFound, "g1")

	// ids in paths, methods, bodies
	for _, path := range []string{"/itp/sessions/a.b", "/itp/sessions/-x", "/itp/groups/a%20b", "/itp/sessions/" + strings.Repeat("a", 65) + "/results"} {
		status, body = admCall(t, env, "GET", path, nil)
		admWantError(t, status, body, http.StatusBadRequest, "invalid")
	}
	status, body = admCall(t, env, "GET", "/itp/sessions/..%2F..%2Fca/results", nil)
	if status != http.StatusNotFound && status != http.StatusBadRequest {
		t.Errorf("traversal: %d %s", status, body)
	}
	status, body = admCall(t, env, "PATCH", "/itp/sessions/"+random.ID, "{}")
	admWantError(t, status, body, http.StatusMethodNotAllowed, "GET")
	status, body = admCall(t, env, "POST", "/itp/sessions", `{"id": "x", "components": [], "colour": "red"}`)
	admWantError(t, status, body, http.StatusBadRequest, "colour")
	status, body = admCall(t, env, "POST", "/itp/sessions", `{"id": "x", "name": "`+strings.Repeat("a", 2<<20)+`"}`)
	admWantError(t, status, body, http.StatusRequestEntityTooLarge, "too large")
	status, body = admCall(t, env, "POST", "/itp/groups", `{"id": 7}`)
	admWantError(t, status, body, http.StatusBadRequest, "id")

	// audit: one entry per change, with who and what
	type entry struct{ msg, action, kind, id, name string }
	var entries []entry
	for _, e := range admAudit(t, logPath) {
		kind, id := "session", e["session"]
		if e["group"] != nil {
			kind, id = "group", e["group"]
		}
		if !strings.HasPrefix(fmt.Sprint(e["by"]), "admin 127.0.0.1:") && !strings.HasPrefix(fmt.Sprint(e["by"]), "admin [::1]:") {
			t.Errorf("audit entry without the caller: %v", e)
		}
		name, _ := e["name"].(string)
		entries = append(entries, entry{fmt.Sprint(e["msg"]), fmt.Sprint(e["action"]), kind, fmt.Sprint(id), name})
	}
	want := []entry{
		{"session created", "create", "session", "demo-1", "p2p demo"},
		{"session created", "create", "session", random.ID, "anonymous"},
		{"session changed", "change", "session", "demo-1", "renamed"},
		{"group created", "create", "group", "g1", "hub group"},
		{"session created", "create", "session", "member-1", "in g1"},
		{"group changed", "change", "group", "g1", "hub group"},
		{"session deleted", "delete", "session", "member-1", "in g1"},
		{"session deleted", "delete", "session", "demo-1", "renamed"},
		{"group deleted", "delete", "group", "g1", "hub group"},
	}
	if fmt.Sprint(entries) != fmt.Sprint(want) {
		t.Errorf("audit entries:\n%v\nwant\n%v", entries, want)
	}
}

func TestAdminSessionValidation(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform("", echoSubject))
	upstream := admUpstreamKey(t, env)
	sutCA := admNewCA(t, "SUT CA")
	otherCA := admNewCA(t, "Other CA")
	now := time.Now()
	good := sutCA.sign(t, upstream, now.Add(-time.Hour), now.Add(90*24*time.Hour))
	randomKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreign := sutCA.sign(t, randomKey.Public(), now.Add(-time.Hour), now.Add(90*24*time.Hour))
	expired := sutCA.sign(t, upstream, now.Add(-60*24*time.Hour), now.Add(-24*time.Hour))
	soon := sutCA.sign(t, upstream, now.Add(-time.Hour), now.Add(5*24*time.Hour))
	notChaining := otherCA.sign(t, upstream, now.Add(-time.Hour), now.Add(90*24*time.Hour))

	payee := func(extra map[string]any) map[string]any {
		c := map[string]any{"slug": "payee", "base_url": "https://payee.example:9443", "ca_cert": sutCA.pem}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	sess := func(id string, comps ...any) map[string]any {
		return map[string]any{"id": id, "components": append([]any{map[string]any{"slug": "payer", "simulated": true}}, comps...)}
	}
	cases := []struct {
		name   string
		body   any
		status int
		wants  []string
	}{
		{"bad slug", sess("v1", map[string]any{"slug": "../etc", "simulated": true}), 400, []string{"components[1].slug"}},
		{"bad id", sess("a/b"), 400, []string{"id:"}},
		{"encryption against scheme", sess("v2", payee(map[string]any{"use_encryption": false})), 400, []string{"components[1].use_encryption", "https"}},
		{"plain url with encryption", sess("v3", map[string]any{"slug": "payee", "base_url": "http://payee.example", "use_encryption": true}), 400, []string{"components[1].use_encryption"}},
		{"bad base_url", sess("v4", map[string]any{"slug": "payee", "base_url": "ftp://payee.example"}), 400, []string{"components[1].base_url"}},
		{"client cert for another key", sess("v5", payee(map[string]any{"client_cert": foreign})), 400, []string{"components[1].client_cert", "upstream key"}},
		{"expired client cert", sess("v6", payee(map[string]any{"client_cert": expired})), 400, []string{"components[1].client_cert", "expired"}},
		{"garbage client cert", sess("v7", payee(map[string]any{"client_cert": "not pem"})), 400, []string{"components[1].client_cert"}},
		{"unknown group", map[string]any{"id": "v8", "group": "nope", "components": []any{map[string]any{"slug": "a", "simulated": true}}}, 400, []string{"group", "nope"}},
		{"no components", map[string]any{"id": "v9"}, 400, []string{"components"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := admCall(t, env, "POST", "/itp/sessions", tc.body)
			admWantError(t, status, body, tc.status, tc.wants...)
		})
	}

	// accepted: a good certificate, without warning
	status, body := admCall(t, env, "POST", "/itp/sessions", sess("ok-1", payee(map[string]any{"client_cert": good})))
	var s admSession
	admWant(t, status, body, http.StatusCreated, &s)
	if len(s.Warnings) != 0 {
		t.Errorf("warnings for a good certificate: %v", s.Warnings)
	}

	// accepted with a warning visible in GET: expiring soon, not chaining
	for id, c := range map[string]struct{ cert, warning string }{
		"warn-soon":  {soon, "expires soon"},
		"warn-chain": {notChaining, "does not chain to ca_cert"},
	} {
		status, body := admCall(t, env, "POST", "/itp/sessions", sess(id, payee(map[string]any{"client_cert": c.cert})))
		admWant(t, status, body, http.StatusCreated, nil)
		status, body = admCall(t, env, "GET", "/itp/sessions/"+id, nil)
		admWant(t, status, body, 200, &s)
		if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "components[1].client_cert") || !strings.Contains(s.Warnings[0], c.warning) {
			t.Errorf("%s: warnings %q, want one with %q", id, s.Warnings, c.warning)
		}
	}

	// a group certificate: used by a session, its removal is refused
	// naming the session
	status, body = admCall(t, env, "POST", "/itp/groups", map[string]any{
		"id":           "fsps",
		"certificates": []any{map[string]any{"id": "payee-cert", "ca_cert": sutCA.pem, "client_cert": good}},
	})
	admWant(t, status, body, http.StatusCreated, nil)
	status, body = admCall(t, env, "POST", "/itp/groups", map[string]any{
		"id":           "bad-group",
		"certificates": []any{map[string]any{"id": "c", "client_cert": foreign}},
	})
	admWantError(t, status, body, 400, "certificates[0].client_cert", "upstream key")
	grouped := sess("grouped-1", map[string]any{"slug": "payee", "base_url": "https://payee.example", "certificate": "payee-cert"})
	grouped["group"] = "fsps"
	status, body = admCall(t, env, "POST", "/itp/sessions", grouped)
	admWant(t, status, body, http.StatusCreated, nil)
	unknownCert := sess("grouped-2", map[string]any{"slug": "payee", "base_url": "https://payee.example", "certificate": "nope"})
	unknownCert["group"] = "fsps"
	status, body = admCall(t, env, "POST", "/itp/sessions", unknownCert)
	admWantError(t, status, body, 400, "components[1].certificate", "nope")
	status, body = admCall(t, env, "PUT", "/itp/groups/fsps", map[string]any{"id": "fsps"})
	admWantError(t, status, body, http.StatusConflict, "payee-cert", "grouped-1")
	status, body = admCall(t, env, "GET", "/itp/groups/fsps", nil)
	if status != 200 || !strings.Contains(string(body), "payee-cert") {
		t.Fatalf("the group changed after a refused put: %s", body)
	}
}

func TestAdminSessionRedaction(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform("", echoSubject))
	hubPriv, hubPub := admKeyPEM(t)
	groupPriv, _ := admKeyPEM(t)
	status, body := admCall(t, env, "POST", "/itp/groups", map[string]any{
		"id":          "keys",
		"environment": map[string]string{"GROUP_KEY": groupPriv, "PLAIN": "visible"},
	})
	admWant(t, status, body, http.StatusCreated, nil)
	sess := map[string]any{
		"id":    "secret-1",
		"group": "keys",
		"components": []any{
			map[string]any{"slug": "payer", "base_url": "http://payer.example"},
			map[string]any{"slug": "hub", "simulated": true},
		},
		"environment": map[string]string{"HUB_JWS_PRIVATE_KEY": hubPriv, "HUB_JWS_PUBLIC_KEY": hubPub, "HMAC": "hunter2-hunter2-hunter2-hunter2!"},
		"jws": []any{
			map[string]any{
				"source": "payer", "target": "hub", "direction": "response",
				"header": "X-Signature", "format": "compact", "alg": "ES256",
				"private_key": hubPriv, "public_key": "{{ env.HUB_JWS_PUBLIC_KEY }}",
			},
			map[string]any{
				"source": "payer", "target": "hub", "direction": "request",
				"header": "X-Mac", "format": "compact", "alg": "HS256",
				"secret": "{{ env.HMAC }}",
			},
		},
	}
	status, body = admCall(t, env, "POST", "/itp/sessions", sess)
	admWant(t, status, body, http.StatusCreated, nil)
	bodies := map[string][]byte{"create": body}
	for _, path := range []string{"/itp/sessions/secret-1", "/itp/sessions", "/itp/groups/keys", "/itp/groups"} {
		status, body := admCall(t, env, "GET", path, nil)
		admWant(t, status, body, 200, nil)
		bodies[path] = body
	}
	keyBody := strings.Split(strings.TrimSpace(hubPriv), "\n")[1]
	for what, body := range bodies {
		for _, secret := range []string{"PRIVATE KEY", keyBody, "hunter2"} {
			if bytes.Contains(body, []byte(secret)) {
				t.Errorf("%s shows %q: %s", what, secret, body)
			}
		}
	}
	for _, what := range []string{"create", "/itp/sessions/secret-1"} {
		if !bytes.Contains(bodies[what], []byte("(private key, sha256:")) || !bytes.Contains(bodies[what], []byte("(secret, sha256:")) {
			t.Errorf("%s lacks the redaction placeholders: %s", what, bodies[what])
		}
	}
	if !bytes.Contains(bodies["/itp/groups/keys"], []byte("visible")) || !bytes.Contains(bodies["/itp/groups/keys"], []byte("(private key, sha256:")) {
		t.Errorf("group: %s", bodies["/itp/groups/keys"])
	}
}

// admLoadJSON adapts a Caddyfile, lets mutate change the JSON config and
// runs it in this process until the test ends.
func admLoadJSON(t *testing.T, env *itptest.Env, caddyfile string, mutate func(cfg map[string]any)) {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(env.Adapt(t, caddyfile), &cfg); err != nil {
		t.Fatal(err)
	}
	mutate(cfg)
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(data, true); err != nil {
		t.Fatalf("loading config: %v", err)
	}
	t.Cleanup(func() { caddy.Stop() })
	env.WaitReady(t)
	env.WaitTLS(t)
}

func TestAdminStaticSessions(t *testing.T) {
	env := itptest.NewEnv(t)
	admLoadJSON(t, env, itptest.Platform("", echoSubject), func(cfg map[string]any) {
		app := cfg["apps"].(map[string]any)["itp"].(map[string]any)
		app["sessions"] = []any{admP2P("demo", "quickstart demo")}
	})
	var s admSession
	status, body := admCall(t, env, "GET", "/itp/sessions/demo", nil)
	admWant(t, status, body, 200, &s)
	if !s.Static || s.Name != "quickstart demo" {
		t.Fatalf("static session: %s", body)
	}
	admWantURLs(t, env, s.URLs, "testing", "testing-insecure", "demo")
	status, body = admCall(t, env, "PUT", "/itp/sessions/demo", admP2P("demo", "changed"))
	admWantError(t, status, body, http.StatusConflict, "read-only")
	status, body = admCall(t, env, "DELETE", "/itp/sessions/demo", nil)
	admWantError(t, status, body, http.StatusConflict, "read-only")
	status, body = admCall(t, env, "POST", "/itp/sessions", admP2P("demo", "shadow"))
	admWantError(t, status, body, http.StatusConflict, "demo")
	status, body = admCall(t, env, "GET", "/itp/sessions/demo", nil)
	admWant(t, status, body, 200, &s)
	if s.Name != "quickstart demo" {
		t.Fatalf("static session changed: %s", body)
	}
}

func TestAdminConcurrentCreation(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform("", echoSubject))
	for round := range 5 {
		id := fmt.Sprintf("race-%d", round)
		body, _ := json.Marshal(admP2P(id, "racer"))
		statuses := make([]int, 2)
		errs := make([]error, 2)
		var start, wg sync.WaitGroup
		start.Add(1)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start.Wait()
				resp, err := http.Post(env.AdminURL()+"/itp/sessions", "application/json", bytes.NewReader(body))
				if err != nil {
					errs[i] = err
					return
				}
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			}()
		}
		start.Done()
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if !(statuses[0] == 201 && statuses[1] == 409 || statuses[0] == 409 && statuses[1] == 201) {
			t.Fatalf("round %d: statuses %v, want one 201 and one 409", round, statuses)
		}
	}
}

func TestAdminSessionResults(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform("", echoSubject))
	status, body := admCall(t, env, "POST", "/itp/sessions", admP2P("res-1", "results"))
	admWant(t, status, body, http.StatusCreated, nil)
	checks := []struct{ check, status string }{
		{"Was encrypted?", results.StatusPass},
		{"Client certificate", results.StatusPass},
		{"Was encrypted?", results.StatusFail},
		{"Client certificate", results.StatusFail},
		{"Upstream encryption", results.StatusPass},
	}
	for _, c := range checks {
		r := itp.RecordResultForTest(results.Result{Session: "res-1", Source: "payer", Target: "hub", Method: "GET", URI: "/testing/payer/hub/res-1/x", Check: c.check, Status: c.status})
		if r.ID == 0 {
			t.Fatal("no result recorded")
		}
	}
	itp.RecordResultForTest(results.Result{Session: "other", Check: "Was encrypted?", Status: results.StatusPass})

	query := func(q string) []int64 {
		t.Helper()
		status, body := admCall(t, env, "GET", "/itp/sessions/res-1/results"+q, nil)
		var list []results.Result
		admWant(t, status, body, 200, &list)
		ids := []int64{}
		for _, r := range list {
			if r.Session != "res-1" {
				t.Fatalf("result of session %q", r.Session)
			}
			ids = append(ids, r.ID)
		}
		return ids
	}
	for q, want := range map[string][]int64{
		"":                                    {1, 2, 3, 4, 5},
		"?since=0":                            {1, 2, 3, 4, 5},
		"?since=2":                            {3, 4, 5},
		"?since=5":                            {},
		"?status=fail":                        {3, 4},
		"?status=pass&check=Was+encrypted%3F": {1},
		"?check=Client+certificate&since=2":   {4},
		"?check=nothing":                      {},
	} {
		if got := query(q); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("results%s: ids %v, want %v", q, got, want)
		}
	}
	// the wire form: time in RFC 3339 UTC with a fraction
	status, body = admCall(t, env, "GET", "/itp/sessions/res-1/results?since=4", nil)
	var raw []map[string]any
	admWant(t, status, body, 200, &raw)
	if len(raw) != 1 || !strings.HasSuffix(fmt.Sprint(raw[0]["time"]), "Z") || !strings.Contains(fmt.Sprint(raw[0]["time"]), ".") {
		t.Errorf("wire form: %s", body)
	}

	for _, q := range []string{"?since=x", "?since=-1", "?status=maybe"} {
		status, body := admCall(t, env, "GET", "/itp/sessions/res-1/results"+q, nil)
		admWantError(t, status, body, http.StatusBadRequest, strings.SplitN(q[1:], "=", 2)[0])
	}
	status, body = admCall(t, env, "GET", "/itp/sessions/unknown/results", nil)
	admWantError(t, status, body, http.StatusNotFound, "unknown")
	status, body = admCall(t, env, "POST", "/itp/sessions/res-1/results", "{}")
	admWantError(t, status, body, http.StatusMethodNotAllowed)

	// deleting the session deletes its results
	if err := itp.FlushResultsForTest(); err != nil {
		t.Fatal(err)
	}
	status, body = admCall(t, env, "DELETE", "/itp/sessions/res-1", nil)
	admWant(t, status, body, http.StatusNoContent, nil)
	status, body = admCall(t, env, "GET", "/itp/sessions/res-1/results", nil)
	admWantError(t, status, body, http.StatusNotFound, "res-1")
	status, body = admCall(t, env, "POST", "/itp/sessions", admP2P("res-1", "again"))
	admWant(t, status, body, http.StatusCreated, nil)
	if got := query(""); len(got) != 0 {
		t.Errorf("results of a deleted session came back: %v", got)
	}
}

// TestAdminSessionSurvivesRestart stops the in-process Caddy and starts it
// again on the same storage: sessions, groups and results are still there.
func TestAdminSessionSurvivesRestart(t *testing.T) {
	env := itptest.NewEnv(t)
	t.Run("first", func(t *testing.T) {
		env.Load(t, itptest.Platform("", echoSubject))
		status, body := admCall(t, env, "POST", "/itp/groups", map[string]any{"id": "g-keep", "name": "kept group"})
		admWant(t, status, body, http.StatusCreated, nil)
		s := admP2P("keep-1", "kept")
		s["group"] = "g-keep"
		status, body = admCall(t, env, "POST", "/itp/sessions", s)
		admWant(t, status, body, http.StatusCreated, nil)
		itp.RecordResultForTest(results.Result{Session: "keep-1", Check: "Was encrypted?", Status: results.StatusFail})
	})
	t.Run("second", func(t *testing.T) {
		env.Load(t, itptest.Platform("", echoSubject))
		var s admSession
		status, body := admCall(t, env, "GET", "/itp/sessions/keep-1", nil)
		admWant(t, status, body, 200, &s)
		if s.Name != "kept" || s.Group != "g-keep" || s.Static {
			t.Fatalf("after restart: %s", body)
		}
		admWantURLs(t, env, s.URLs, "testing", "testing-insecure", "keep-1")
		var g admGroup
		status, body = admCall(t, env, "GET", "/itp/groups/g-keep", nil)
		admWant(t, status, body, 200, &g)
		if g.Name != "kept group" || len(g.Sessions) != 1 {
			t.Fatalf("group after restart: %s", body)
		}
		var list []results.Result
		status, body = admCall(t, env, "GET", "/itp/sessions/keep-1/results", nil)
		admWant(t, status, body, 200, &list)
		if len(list) != 1 || list[0].Check != "Was encrypted?" || list[0].Status != results.StatusFail {
			t.Fatalf("results after restart: %s", body)
		}
	})
}

func TestAdminSessionsWithoutItpApp(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, `{
	admin localhost:{ADMIN}
	storage file_system {STORAGE}
	persist_config off
}
http://localhost:{INSECURE} {
	respond "no itp here"
}`)
	for _, c := range []struct{ method, path string }{{"GET", "/itp/sessions"}, {"POST", "/itp/sessions"}, {"GET", "/itp/groups/g1"}} {
		status, body := admCall(t, env, c.method, c.path, nil)
		admWantError(t, status, body, http.StatusServiceUnavailable, "no itp app is configured")
	}
}

// TestAuditOfCertificates: every certificate issued (by a participant or
// through the admin API), revoked, and every root renewal is one audit
// entry saying who and what.
func TestAuditOfCertificates(t *testing.T) {
	env := itptest.NewEnv(t)
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	env.Load(t, admPlatformLogging(logPath))
	roots, _ := env.RootPool(t)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if status, _ := itptest.Do(t, env.Client(t, roots, nil), "POST", env.SecureURL()+"/itp/certificates", "", csrPEM(t, k1)); status != 200 {
		t.Fatalf("participant issuance: %d", status)
	}
	status, z := itptest.Do(t, http.DefaultClient, "POST", env.AdminURL()+"/itp/ca/sign", "", csrPEM(t, k2))
	if status != 200 {
		t.Fatalf("admin issuance: %d", status)
	}
	certPEM, _ := unzipBundle(t, z)
	block, _ := pem.Decode(certPEM)
	cert, _ := x509.ParseCertificate(block.Bytes)
	serial := cert.SerialNumber.Text(16)
	if status, _ := admCall(t, env, "POST", "/itp/ca/revoke", map[string]string{"serial": serial}); status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	if status, _ := admCall(t, env, "POST", "/itp/ca/renew", map[string]string{}); status != 200 {
		t.Fatalf("renew: %d", status)
	}
	var issuedBy []string
	seen := map[string]bool{}
	for _, e := range admAudit(t, logPath) {
		by, _ := e["by"].(string)
		switch e["action"] {
		case "issue":
			issuedBy = append(issuedBy, strings.Fields(by)[0])
			if e["serial"] == nil || e["subject"] == nil {
				t.Errorf("issuance entry without serial or subject: %v", e)
			}
		case "revoke":
			seen["revoke"] = e["serial"] == serial && strings.HasPrefix(by, "admin ")
		case "renew":
			seen["renew"] = e["serial"] != nil && strings.HasPrefix(by, "admin ")
		}
	}
	if strings.Join(issuedBy, ",") != "participant,admin" || !seen["revoke"] || !seen["renew"] {
		t.Fatalf("audit: issued by %v, revoke and renew %v", issuedBy, seen)
	}
}
