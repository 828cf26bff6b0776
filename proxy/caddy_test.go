package proxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage"
)

// The two test-only modules below stand in for the itp
// handler: testITP does what the itp handler does before
// proxying, and testPoolTransport hands the round trip to the
// Pool, as the reverse proxy handler embedded in the itp
// handler would.

var (
	testPool       = NewPool(PoolOptions{})
	testIdentityMu sync.Mutex
	testIdentity   *Identity
	testBase       string // the SUT's base_url
)

func init() {
	caddy.RegisterModule(testITP{})
	caddy.RegisterModule(testPoolTransport{})
}

type testITP struct{}

func (testITP) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.itp_proxy_test", New: func() caddy.Module { return new(testITP) }}
}

func (testITP) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rt, err := ParseRoute(r.URL.EscapedPath())
	if err != nil {
		return caddyhttp.Error(http.StatusNotFound, err)
	}
	testIdentityMu.Lock()
	id, baseURL := testIdentity, testBase
	testIdentityMu.Unlock()
	base, _ := parseURL(baseURL)

	StripClientIdentityHeaders(r.Header)
	r = r.WithContext(WithIdentity(r.Context(), id))
	r.URL.Path, r.URL.RawPath, err = JoinPath(base, rt.Rest)
	if err != nil {
		return caddyhttp.Error(http.StatusBadRequest, err)
	}
	r.Host = base.Host
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.itp.upstream", base.Host)

	err = next.ServeHTTP(w, r)
	if err != nil {
		check, msg := ClassifyUpstreamError(err, rt.Target, base)
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, "%s: %s", check, msg)
		return nil
	}
	return nil
}

type testPoolTransport struct{}

func (testPoolTransport) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.reverse_proxy.transport.itp_proxy_test", New: func() caddy.Module { return new(testPoolTransport) }}
}

func (testPoolTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return testPool.RoundTrip(r)
}

// TestPoolInCaddyReverseProxy runs a real Caddy with the
// stock reverse_proxy handler using the Pool as its transport
// and a placeholder upstream, proxying a testing route to an
// mTLS SUT.
func TestPoolInCaddyReverseProxy(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("XDG_DATA_HOME", dir+"/data")
	t.Setenv("XDG_CONFIG_HOME", dir+"/config")

	s := newSUT(t, tls.RequireAndVerifyClientCert, true)
	testIdentityMu.Lock()
	testBase = s.base().String()
	testIdentity = platformIdentity(t, "payee", s.ca.Pool(), "platform-for-payee", s.ca)
	testIdentityMu.Unlock()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf(`{
		"admin": {"disabled": true, "config": {"persist": false}},
		"storage": {"module": "file_system", "root": %q},
		"logging": {"logs": {"default": {"level": "ERROR"}}},
		"apps": {"http": {"servers": {"itp": {
			"listen": [%q],
			"automatic_https": {"disable": true},
			"routes": [{"handle": [
				{"handler": "itp_proxy_test"},
				{"handler": "reverse_proxy",
				 "transport": {"protocol": "itp_proxy_test"},
				 "upstreams": [{"dial": "{http.itp.upstream}"}]}
			]}]
		}}}}
	}`, dir+"/storage", addr)
	if err := caddy.Load([]byte(cfg), true); err != nil {
		t.Fatal(err)
	}
	defer caddy.Stop()

	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("X-Ssl-Client-Cert", "forged")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	code, body := get("/testing-insecure/payer/payee/s1/quotes/x%2Fy?a=1")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	base := s.base()
	for _, want := range []string{"cn=platform-for-payee", "proto=2", "sni=localhost", "host=" + base.Host, "path=/api/quotes/x%2Fy", "query=a=1", "forged=false"} {
		if !strings.Contains(body, want) {
			t.Errorf("SUT answer %q lacks %q", body, want)
		}
	}

	// an upstream TLS failure reaches the itp handler as an
	// error ClassifyUpstreamError explains
	foreign := newCert(t, certSpec{CN: "Foreign CA", CA: true}, nil)
	testIdentityMu.Lock()
	testIdentity = platformIdentity(t, "payee", foreign.Pool(), "platform-for-payee", s.ca)
	testIdentityMu.Unlock()
	code, body = get("/testing-insecure/payer/payee/s1/quotes")
	if code != 502 || !strings.Contains(body, "Upstream TLS: SUT certificate is not signed by the CA uploaded for component payee") {
		t.Errorf("%d %s", code, body)
	}
}
