package proxy

import (
	"net/http"
	"testing"
)

func TestStripClientIdentityHeaders(t *testing.T) {
	removed := []string{
		"X-Client-Cert", "X-Client-Cert-Chain", "X-Client-Certificate",
		"X-SSL-Client-Cert", "X-Ssl-Client-Verify", "X-SSL-CLIENT-S-DN",
		"X-Forwarded-Client-Cert", "Ssl-Client-Cert", "Ssl-Client-Verify",
		"X-Client-Verify", "X-Client-Dn", "Client-Cert", "Client-Cert-Chain",
		"X-Arr-Clientcert", "X-Amzn-Mtls-Clientcert", "X-Amzn-Mtls-Clientcert-Leaf",
		"X-Forwarded-Tls-Client-Cert", "X-Forwarded-Tls-Client-Cert-Info", "X-Ssl-Cert",
	}
	kept := []string{
		"Content-Type", "Authorization", "X-Forwarded-For", "X-Client", "Client", "X-Client-Id",
		"Client-Certificate-Hint", "X-Ssl", "Ssl", "Fspiop-Source", "X-Amzn-Trace-Id", "Cookie", "X",
	}
	h := http.Header{}
	for _, n := range removed {
		h.Set(n, "forged")
	}
	for _, n := range kept {
		h.Set(n, "ok")
	}
	// non-canonical keys written straight into the map
	h["x-client-cert"] = []string{"forged"}
	h["CLIENT-CERT"] = []string{"forged"}
	h["x-forwarded-client-cert"] = []string{"forged"}

	StripClientIdentityHeaders(h)
	for name := range h {
		if h.Get(name) == "forged" || h[name][0] == "forged" {
			t.Errorf("%s was kept", name)
		}
	}
	for _, n := range kept {
		if h.Get(n) != "ok" {
			t.Errorf("%s was removed", n)
		}
	}
	if len(h) != len(kept) {
		t.Errorf("%d headers left, want %d: %v", len(h), len(kept), h)
	}
	StripClientIdentityHeaders(nil) // must not panic
	StripClientIdentityHeaders(http.Header{"": {"x"}})
}

func BenchmarkStripClientIdentityHeadersNone(b *testing.B) {
	h := http.Header{
		"Content-Type": {"application/json"}, "Accept": {"*/*"}, "User-Agent": {"curl/8"},
		"Fspiop-Source": {"payer"}, "Fspiop-Destination": {"payee"}, "Date": {"x"},
		"X-Forwarded-For": {"127.0.0.1"}, "Content-Length": {"1024"}, "Signature": {"x"},
	}
	b.ReportAllocs()
	for b.Loop() {
		StripClientIdentityHeaders(h)
	}
	if len(h) != 9 {
		b.Fatal("removed a header")
	}
}
