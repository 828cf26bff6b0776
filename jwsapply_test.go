package itp

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "65536": 65536, "1KiB": 1024, "1 MiB": 1 << 20, "2MB": 2000000, "1GiB": 1 << 30, "10B": 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5MiB", "1TB", "MiB", "9999999999999GiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestJWSResponseBuffer(t *testing.T) {
	rec := httptest.NewRecorder()
	b := newJWSResponseBuffer(rec, 8)
	b.Header().Set("X-A", "1")
	b.WriteHeader(http.StatusEarlyHints) // passes through
	b.WriteHeader(http.StatusCreated)
	b.WriteHeader(http.StatusTeapot) // ignored
	b.Write([]byte("12345"))
	b.Flush()
	if b.status != http.StatusCreated || b.body.String() != "12345" || b.over {
		t.Fatalf("buffer: %d %q over=%v", b.status, b.body.String(), b.over)
	}
	b.Write([]byte("6789"))
	if !b.over || b.body.Len() != 0 {
		t.Fatalf("past the bound: over=%v len=%d", b.over, b.body.Len())
	}
	if n, err := b.Write([]byte("more")); n != 4 || err != nil {
		t.Fatalf("writes past the bound are discarded: %d %v", n, err)
	}
}

func benchOps(b *testing.B) (verify, sign *jwsOp, body []byte) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	privDER, _ := x509.MarshalPKCS8PrivateKey(key)
	pubDER, _ := x509.MarshalPKIXPublicKey(key.Public())
	spec := jwsSpec{Format: "mojaloop", Alg: "RS256", Header: "FSPIOP-Signature",
		PublicKey:  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
		PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))}
	var err error
	if verify, err = compileJWS(spec); err != nil {
		b.Fatal(err)
	}
	spec.Sign = true
	if sign, err = compileJWS(spec); err != nil {
		b.Fatal(err)
	}
	body = []byte(`{"transferId":"b51ec534","note":"` + strings.Repeat("x", 960) + `"}`)
	return verify, sign, body
}

// BenchmarkJWSRequestVerify is the request path of a session verify rule
// over a 1 KB body: read the body within the bound, verify, put it back.
func BenchmarkJWSRequestVerify(b *testing.B) {
	verify, sign, body := benchOps(b)
	hdr := http.Header{"Fspiop-Source": {"payerfsp"}}
	body, _ = sign.sign(body, hdr, "POST", "/transfers")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r := httptest.NewRequest("POST", "/transfers", bytes.NewReader(body))
		r.Header = hdr
		data, err := readRequestBody(r, DefaultJWSMaxBody)
		if err != nil {
			b.Fatal(err)
		}
		if out := verify.verify(data, r.Header, "POST", "/transfers"); !out.ok {
			b.Fatal(out.msg)
		}
		setRequestBody(r, data)
	}
}

// BenchmarkJWSResponseSign is the response path of a session sign rule
// over a 1 KB body: buffer, sign (mojaloop canonical form), write out.
func BenchmarkJWSResponseSign(b *testing.B) {
	_, sign, body := benchOps(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rec := httptest.NewRecorder()
		buf := newJWSResponseBuffer(rec, DefaultJWSMaxBody)
		buf.Header().Set("FSPIOP-Source", "hubfsp")
		buf.Write(body)
		out, o := sign.sign(buf.body.Bytes(), buf.Header(), "POST", "/transfers")
		if !o.ok {
			b.Fatal(o.msg)
		}
		if err := buf.send(out, true); err != nil {
			b.Fatal(err)
		}
	}
}
