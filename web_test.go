package itp_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/caddy-itp/caddy-itp/internal/itptest"
)

// webPlatform is a platform with the quickstart's demo session and a
// simulated server answered by respond.
func webPlatform() string {
	return itptest.Platform(`		session demo {
			name "web demo"
			component client
			component server {
				simulated
			}
		}`, `	itp
	respond "hello from {http.itp.target}"`)
}

// newCSR returns a PEM CSR for a fresh P-256 key.
func newCSR(t testing.TB, cn string) []byte {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return csrWithCN(t, key, cn)
}

// insecureClient is an HTTPS client that does not verify the server, as
// a participant's browser before it trusts RootCA.crt.
func insecureClient() *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

func get(t *testing.T, c *http.Client, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// multipartCSR is a browser-like form upload of the index page's form.
func multipartCSR(t testing.TB, csr []byte) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("html", "1")
	fw, _ := mw.CreateFormFile("file", "client.csr")
	fw.Write(csr)
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// checkHTML is an offline HTML validity check of a participant page: a
// doctype and lang, balanced elements (every non-void element closed in
// order, nothing stray), a non-empty title, exactly one h1, no duplicate
// ids, every form control labelled by a label that exists, every label
// pointing at a control, and no inline script or style (the pages'
// Content-Security-Policy forbids them).
func checkHTML(t *testing.T, page string) {
	t.Helper()
	void := map[string]bool{"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true,
		"img": true, "input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true}
	if !strings.HasPrefix(page, "<!DOCTYPE html>") {
		t.Errorf("no <!DOCTYPE html> first")
	}
	z := html.NewTokenizer(strings.NewReader(page))
	var stack []string
	ids := map[string]int{}
	labelsFor := map[string]bool{}
	controls := map[string]bool{} // id → needs a label
	var controlsNoID int
	h1, titles := 0, 0
	inLabel := 0
	titleText := ""
	inTitle := false
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if z.Err() != io.EOF {
				t.Errorf("tokenizing: %v", z.Err())
			}
			break
		}
		tok := z.Token()
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				if _, dup := attrs[a.Key]; dup {
					t.Errorf("<%s> has attribute %q twice", tok.Data, a.Key)
				}
				attrs[a.Key] = a.Val
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("<%s> has an inline event handler %s", tok.Data, a.Key)
				}
			}
			if id, ok := attrs["id"]; ok {
				ids[id]++
			}
			switch tok.Data {
			case "html":
				if attrs["lang"] == "" {
					t.Errorf("<html> has no lang")
				}
			case "h1":
				h1++
			case "title":
				titles++
				inTitle = true
			case "label":
				inLabel++
				if f, ok := attrs["for"]; ok {
					labelsFor[f] = true
				}
			case "input", "select", "textarea":
				if attrs["type"] == "hidden" || attrs["type"] == "submit" {
					break
				}
				if id, ok := attrs["id"]; ok {
					controls[id] = inLabel == 0
				} else if inLabel == 0 && attrs["aria-label"] == "" {
					controlsNoID++
				}
			case "script":
				if attrs["src"] == "" {
					t.Errorf("inline <script>")
				}
			case "style":
				t.Errorf("inline <style>")
			case "img":
				if _, ok := attrs["alt"]; !ok {
					t.Errorf("<img> without alt")
				}
			}
			if _, ok := attrs["style"]; ok {
				t.Errorf("<%s> has an inline style attribute", tok.Data)
			}
			if tt == html.StartTagToken && !void[tok.Data] {
				stack = append(stack, tok.Data)
			}
		case html.EndTagToken:
			if void[tok.Data] {
				t.Errorf("end tag of void element </%s>", tok.Data)
				continue
			}
			if len(stack) == 0 || stack[len(stack)-1] != tok.Data {
				t.Errorf("</%s> does not close the open element (open: %v)", tok.Data, stack)
				continue
			}
			stack = stack[:len(stack)-1]
			switch tok.Data {
			case "label":
				inLabel--
			case "title":
				inTitle = false
			}
		case html.TextToken:
			if inTitle {
				titleText += tok.Data
			}
		}
	}
	if len(stack) != 0 {
		t.Errorf("elements never closed: %v", stack)
	}
	if h1 != 1 {
		t.Errorf("%d h1 elements, want 1", h1)
	}
	if titles != 1 || strings.TrimSpace(titleText) == "" {
		t.Errorf("want one non-empty title, got %d %q", titles, titleText)
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("id %q used %d times", id, n)
		}
	}
	for id, needsLabel := range controls {
		if needsLabel && !labelsFor[id] {
			t.Errorf("form control #%s has no label", id)
		}
	}
	if controlsNoID > 0 {
		t.Errorf("%d form controls without id or label", controlsNoID)
	}
	for id := range labelsFor {
		if ids[id] == 0 {
			t.Errorf("label for %q points at no element", id)
		}
	}
	// the standard parser must also accept it and find the same h1
	if _, err := html.Parse(strings.NewReader(page)); err != nil {
		t.Errorf("html.Parse: %v", err)
	}
}

func TestParticipantPages(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, webPlatform())
	c := insecureClient()

	// the index page: the form, the openssl commands, the RootCA.crt link
	resp, page := get(t, c, env.SecureURL()+"/itp/", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /itp/: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	checkHTML(t, page)
	for _, want := range []string{
		"<h1>Download Certificates</h1>",
		"openssl genrsa -out client.key 2048",
		"openssl req -new -key client.key -out client.csr",
		`action="/itp/certificates"`, `enctype="multipart/form-data"`, `name="file"`,
		`href="/itp/RootCA.crt"`,
		"curl --cacert RootCA.crt -F file=@client.csr -o certificates.zip " + env.SecureURL() + "/itp/certificates",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("index page lacks %q", want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if rp := resp.Header.Get("Referrer-Policy"); rp != "no-referrer" {
		t.Errorf("Referrer-Policy %q: the session id in page URLs must not leak", rp)
	}
	// /itp redirects to /itp/; the assets are served; other paths go on
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if resp, _ := get(t, c, env.SecureURL()+"/itp", nil); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/itp/" {
		t.Errorf("GET /itp: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for asset, ct := range map[string]string{"itp.css": "text/css", "itp.js": "text/javascript"} {
		if resp, _ := get(t, c, env.SecureURL()+"/itp/assets/"+asset, nil); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ct) {
			t.Errorf("asset %s: %d %s", asset, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	if resp, body := get(t, c, env.SecureURL()+"/itp/assets/nope.js", nil); resp.StatusCode != 200 || !strings.HasPrefix(body, "hello from") {
		t.Errorf("an unknown path under the prefix must go to the next handler: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, c, env.SecureURL()+"/itp/sessions?id=demo", nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/itp/sessions/demo" {
		t.Errorf("open-session form: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// a bad CSR from the browser form: the page with the error, 400
	ct, body := multipartCSR(t, []byte("-----BEGIN CERTIFICATE REQUEST-----\nbm9wZQ==\n-----END CERTIFICATE REQUEST-----\n"))
	req, _ := http.NewRequest("POST", env.SecureURL()+"/itp/certificates", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	r2, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	errPage, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != 400 || !strings.HasPrefix(r2.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(errPage), `role="alert"`) {
		t.Fatalf("bad CSR from a browser: %d %s\n%s", r2.StatusCode, r2.Header.Get("Content-Type"), errPage)
	}
	checkHTML(t, string(errPage))
	// the same from curl: plain text, as before
	req, _ = http.NewRequest("POST", env.SecureURL()+"/itp/certificates", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", "*/*")
	rp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(rp.Body)
	rp.Body.Close()
	if rp.StatusCode != 400 || !strings.HasPrefix(rp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("bad CSR from an API client: %d %s %q", rp.StatusCode, rp.Header.Get("Content-Type"), plain)
	}
	if !strings.Contains(string(errPage), html.EscapeString(strings.TrimSpace(string(plain)))) {
		t.Errorf("the page does not show the refusal %q", plain)
	}
	// a good CSR from the form: the zip
	ct, body = multipartCSR(t, newCSR(t, "browser"))
	req, _ = http.NewRequest("POST", env.SecureURL()+"/itp/certificates", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", "text/html")
	r3, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	zipData, _ := io.ReadAll(r3.Body)
	r3.Body.Close()
	if r3.StatusCode != 200 {
		t.Fatalf("good CSR from the form: %d %s", r3.StatusCode, zipData)
	}
	unzipBundle(t, zipData)

	// the session page, before any result
	resp, page = get(t, c, env.SecureURL()+"/itp/sessions/demo", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("session page: %d %s", resp.StatusCode, page)
	}
	checkHTML(t, page)
	for _, want := range []string{
		"<h1>Session web demo</h1>",
		fmt.Sprintf("https://localhost:%d/testing/client/server/demo", env.Secure),
		fmt.Sprintf("http://localhost:%d/testing-insecure/client/server/demo", env.Insecure),
		"simulated", "No results yet",
		`data-url="/itp/sessions/demo/results"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("session page lacks %q", want)
		}
	}

	// a request over plain HTTP records results
	status, got := itptest.Do(t, http.DefaultClient, "GET", env.InsecureURL()+"/testing-insecure/client/server/demo/hello?x=1", "", nil)
	if status != 200 {
		t.Fatalf("insecure testing route: %d %s", status, got)
	}
	var list []map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for len(list) == 0 && time.Now().Before(deadline) {
		_, js := get(t, c, env.SecureURL()+"/itp/sessions/demo/results?since=0", nil)
		json.Unmarshal([]byte(js), &list)
	}
	if len(list) == 0 {
		t.Fatal("no results after a request")
	}
	// the same records as the admin API's
	_, adminJSON := itptest.Do(t, http.DefaultClient, "GET", env.AdminURL()+"/itp/sessions/demo/results", "", nil)
	_, pageJSON := get(t, c, env.SecureURL()+"/itp/sessions/demo/results", nil)
	if strings.TrimSpace(string(adminJSON)) != strings.TrimSpace(pageJSON) {
		t.Errorf("results differ from the admin API's:\n%s\n%s", adminJSON, pageJSON)
	}
	last := int64(list[len(list)-1]["id"].(float64))
	if _, js := get(t, c, fmt.Sprintf("%s/itp/sessions/demo/results?since=%d", env.SecureURL(), last), nil); strings.TrimSpace(js) != "[]" {
		t.Errorf("since=last: %s", js)
	}
	if resp, js := get(t, c, env.SecureURL()+"/itp/sessions/demo/results?since=x", nil); resp.StatusCode != 400 || !strings.Contains(js, `"error"`) {
		t.Errorf("since=x: %d %s", resp.StatusCode, js)
	}

	_, page = get(t, c, env.SecureURL()+"/itp/sessions/demo", nil)
	checkHTML(t, page)
	for _, want := range []string{"Was encrypted?", `<span class="badge fail">fail</span>`, "<details>", "/testing-insecure/client/server/demo/hello?x=1", `data-since="` + fmt.Sprint(last) + `"`} {
		if !strings.Contains(page, want) {
			t.Errorf("session page with results lacks %q", want)
		}
	}
	// filters work without JavaScript
	_, page = get(t, c, env.SecureURL()+"/itp/sessions/demo?status=pass&check=Was+encrypted%3F", nil)
	checkHTML(t, page)
	if strings.Contains(page, `<span class="badge fail">`) || !strings.Contains(page, "0 of ") {
		t.Errorf("status=pass filter still shows failures")
	}
	if !strings.Contains(page, `<option value="Was encrypted?" selected>`) {
		t.Errorf("the check filter does not keep its selection")
	}

	// unknown sessions: a 404 page and a JSON 404
	resp, page = get(t, c, env.SecureURL()+"/itp/sessions/nope", nil)
	if resp.StatusCode != 404 || !strings.Contains(page, "Session not found") {
		t.Errorf("unknown session: %d", resp.StatusCode)
	}
	checkHTML(t, page)
	if resp, js := get(t, c, env.SecureURL()+"/itp/sessions/nope/results", nil); resp.StatusCode != 404 || !strings.Contains(js, "not found") {
		t.Errorf("unknown session results: %d %s", resp.StatusCode, js)
	}
	for _, hostile := range []string{"..%2f..%2fetc", "a%00b", strings.Repeat("x", 65)} {
		if resp, body := get(t, c, env.SecureURL()+"/itp/sessions/"+hostile+"/results", nil); resp.StatusCode == 200 && strings.HasPrefix(body, "[") {
			t.Errorf("hostile id %q answered results: %s", hostile, body)
		}
	}
	// no admin operation: writes are refused
	if status, _ := itptest.Do(t, c, "DELETE", env.SecureURL()+"/itp/sessions/demo", "", nil); status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE on the session page: %d", status)
	}
}

// TestSessionPageShowsNoSecrets creates a session with an environment
// holding a private key and a secret and checks that neither, nor any
// environment value, reaches the page or its JSON.
func TestSessionPageShowsNoSecrets(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, webPlatform())
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	sess := map[string]any{
		"id":   "secretive",
		"name": "secretive <b>session</b>",
		"components": []map[string]any{
			{"slug": "payer"}, {"slug": "hub", "simulated": true},
		},
		"environment": map[string]string{
			"HUB_JWS_PRIVATE_KEY": privPEM,
			"HUB_JWS_PUBLIC_KEY":  pubPEM,
			"SOME_SETTING":        "environment-value-that-must-not-show",
		},
		"jws": []map[string]any{{
			"source": "payer", "target": "hub", "direction": "response", "header": "X-Sig",
			"format": "compact", "alg": "ES256",
			"public_key": "{{ env.HUB_JWS_PUBLIC_KEY }}", "private_key": "{{ env.HUB_JWS_PRIVATE_KEY }}",
		}},
	}
	body, _ := json.Marshal(sess)
	status, out := itptest.Do(t, http.DefaultClient, "POST", env.AdminURL()+"/itp/sessions", "application/json", body)
	if status != 201 {
		t.Fatalf("creating the session: %d %s", status, out)
	}
	_, page := get(t, insecureClient(), env.SecureURL()+"/itp/sessions/secretive", nil)
	checkHTML(t, page)
	if !strings.Contains(page, "secretive &lt;b&gt;session&lt;/b&gt;") {
		t.Errorf("the session name is not escaped")
	}
	privBody := strings.Split(privPEM, "\n")[1]
	for _, secret := range []string{"PRIVATE KEY", privBody, "environment-value-that-must-not-show", "SOME_SETTING", "BEGIN PUBLIC KEY"} {
		if strings.Contains(page, secret) {
			t.Errorf("the session page shows %q", secret)
		}
	}
}
