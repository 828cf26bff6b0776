package itp

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-itp/caddy-itp/internal/itptest"
	"github.com/caddy-itp/caddy-itp/results"
)

const expirySite = `	itp
	respond "simulated"`

// TestExpiredSessionAnswers410AndIsPurged: an expired session's routes
// answer 410, and after the retention the session and its results go.
func TestExpiredSessionAnswers410AndIsPurged(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform("\t\tsession_retention 1h", expirySite))
	expires := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	body := fmt.Sprintf(`{"id":"short","expires":%q,"components":[{"slug":"a"},{"slug":"b","simulated":true}]}`, expires)
	if status, resp := itptest.Do(t, http.DefaultClient, "POST", env.AdminURL()+"/itp/sessions", "application/json", []byte(body)); status != 201 {
		t.Fatalf("%d %s", status, resp)
	}
	url := env.InsecureURL() + "/testing-insecure/a/b/short/x"
	if status, _ := itptest.Do(t, http.DefaultClient, "GET", url, "", nil); status != 200 {
		t.Fatalf("before expiry: %d", status)
	}
	defer func() { timeNow = time.Now }()
	timeNow = func() time.Time { return time.Now().Add(90 * time.Minute) }
	if status, resp := itptest.Do(t, http.DefaultClient, "GET", url, "", nil); status != http.StatusGone || !strings.Contains(string(resp), "expired") {
		t.Fatalf("after expiry: %d %s", status, resp)
	}
	app := activeApp()
	app.state.results.Flush(context.Background())
	// not yet past the retention
	app.state.purgeExpired(context.Background(), time.Hour, time.Now().Add(90*time.Minute))
	if _, ok := app.state.registry.Session("short"); !ok {
		t.Fatal("purged before the retention ended")
	}
	app.state.purgeExpired(context.Background(), time.Hour, time.Now().Add(3*time.Hour))
	if _, ok := app.state.registry.Session("short"); ok {
		t.Fatal("not purged after the retention")
	}
	if rs := app.state.results.Query("short", 0, "", ""); len(rs) != 0 {
		t.Fatalf("results kept: %d", len(rs))
	}
	if status, _ := itptest.Do(t, http.DefaultClient, "GET", env.AdminURL()+"/itp/sessions/short", "", nil); status != 404 {
		t.Fatalf("purged session still in the API: %d", status)
	}
}

// TestUpstreamCertificateExpiredSinceUpload: a client certificate valid at
// upload that has expired since is reported as a failed result.
func TestUpstreamCertificateExpiredSinceUpload(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform("", expirySite))
	sutCA := itptest.NewCA(t, "SUT CA")
	_, csr := itptest.Do(t, http.DefaultClient, "GET", env.AdminURL()+"/itp/upstream/client.csr", "", nil)
	pub := parseCSRKey(t, csr)
	cert := sutCA.Sign(t, pub, "itp", x509.ExtKeyUsageClientAuth, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	body, _ := json.Marshal(map[string]any{"id": "exp", "components": []map[string]any{
		{"slug": "a"}, {"slug": "sut", "base_url": "https://localhost:1/api", "ca_cert": sutCA.PEM, "client_cert": cert},
	}})
	if status, resp := itptest.Do(t, http.DefaultClient, "POST", env.AdminURL()+"/itp/sessions", "application/json", body); status != 201 {
		t.Fatalf("%d %s", status, resp)
	}
	defer func() { timeNow = time.Now }()
	timeNow = func() time.Time { return time.Now().Add(2 * time.Hour) }
	itptest.Do(t, http.DefaultClient, "GET", env.InsecureURL()+"/testing-insecure/a/sut/exp/x", "", nil)
	rs := activeApp().state.results.Query("exp", 0, results.StatusFail, checkUpstreamCertificate)
	if len(rs) != 1 || !strings.Contains(rs[0].Message, "expired on") {
		t.Fatalf("results: %+v", rs)
	}
}
