package jws

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type mojaloopMsg struct {
	Alg     string            `json:"alg"`
	Method  string            `json:"method"`
	URI     string            `json:"uri"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

func (m mojaloopMsg) message() Message {
	h := http.Header{}
	for k, v := range m.Headers {
		h.Set(k, v)
	}
	return Message{HeaderValue: h.Get("FSPIOP-Signature"), Body: []byte(m.Body), Headers: h, Method: m.Method, URI: m.URI}
}

func mojaloopKeys(t testing.TB, alg string) Config {
	t.Helper()
	pubFile, privFile := "rsa_pub.pem", "rsa_key.pem"
	if alg == "ES256" {
		pubFile, privFile = "ec_pub.pem", "ec_key.pem"
	}
	pubPEM, err := os.ReadFile(filepath.Join("testdata", "mojaloop", pubFile))
	if err != nil {
		t.Fatal(err)
	}
	privPEM, err := os.ReadFile(filepath.Join("testdata", "mojaloop", privFile))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKeyPEM(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParsePrivateKeyPEM(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	return Config{Format: FormatMojaloop, Alg: alg, PublicKey: pub, PrivateKey: priv,
		ProtectedHeaders: []string{"FSPIOP-URI", "FSPIOP-HTTP-Method", "FSPIOP-Source", "FSPIOP-Destination", "Date"}}
}

// TestMojaloopSDKSigned verifies messages signed by Mojaloop's own
// JwsSigner (testdata/mojaloop/sdk_signed.json, made by mojaloop_sdk.js).
func TestMojaloopSDKSigned(t *testing.T) {
	data, err := os.ReadFile("testdata/mojaloop/sdk_signed.json")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []mojaloopMsg
	if err := json.Unmarshal(data, &msgs); err != nil {
		t.Fatal(err)
	}
	if len(msgs) == 0 {
		t.Fatal("empty SDK fixture")
	}
	for _, m := range msgs {
		t.Run(m.Alg, func(t *testing.T) {
			alg, latin1 := strings.CutSuffix(m.Alg, "-latin1")
			cfg := mojaloopKeys(t, alg)
			cfg.PrivateKey = nil
			v := mustVerifier(t, cfg)
			res, err := v.Verify(m.message())
			if latin1 {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "UTF-8") {
					t.Fatalf("Latin-1 protected header: got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.SignedHeaders["FSPIOP-Source"] != "payerfsp" {
				t.Errorf("signed headers: %v", res.SignedHeaders)
			}
			// The same message forwarded to another path is refused.
			msg := m.message()
			msg.URI = "/transfers/other"
			_, err = v.Verify(msg)
			var ve *VerifyError
			if !errors.As(err, &ve) || !errors.Is(err, ErrHTTPHeader) || ve.Expected != "/transfers/other" {
				t.Errorf("other URI: %v", err)
			}
			// Our signer produces the same body bytes as the SDK.
			s, err := NewSigner(mojaloopKeys(t, alg))
			if err != nil {
				t.Fatal(err)
			}
			var parsed any
			_ = json.Unmarshal([]byte(m.Body), &parsed)
			pretty, _ := json.MarshalIndent(parsed, "", "  ")
			out := m.message()
			out.Body = pretty
			_, body, err := s.Sign(out)
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != m.Body {
				t.Errorf("body:\n got %s\nwant %s", body, m.Body)
			}
		})
	}
}

// TestMojaloopSDKValidatesOurs signs messages with this package and has
// Mojaloop's JwsValidator check them. It runs when node can resolve
// @mojaloop/sdk-standard-components (set NODE_PATH), and skips otherwise.
func TestMojaloopSDKValidatesOurs(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		skipOrRequire(t, "ITP_REQUIRE_MOJALOOP", "node not installed")
	}
	if exec.Command(node, "-e", "require.resolve('@mojaloop/sdk-standard-components')").Run() != nil {
		skipOrRequire(t, "ITP_REQUIRE_MOJALOOP", "@mojaloop/sdk-standard-components not resolvable by node (set NODE_PATH)")
	}
	var msgs []mojaloopMsg
	for _, alg := range []string{"RS256", "ES256"} {
		s, err := NewSigner(mojaloopKeys(t, alg))
		if err != nil {
			t.Fatal(err)
		}
		for _, body := range []string{`{"b": 1.0, "a": "<&>", "n": [1e21, 0.0000001, "é😀"]}`, `{"transferState":"COMMITTED"}`} {
			h := http.Header{}
			h.Set("FSPIOP-Source", "payerfsp")
			if alg == "ES256" {
				h.Set("FSPIOP-Source", "payerfspec")
			}
			h.Set("FSPIOP-Destination", "payeefsp")
			h.Set("Date", "Tue, 23 May 2017 21:12:31 GMT")
			sig, out, err := s.Sign(Message{Body: []byte(body), Headers: h, Method: "PUT", URI: "/transfers/123?a=b"})
			if err != nil {
				t.Fatal(err)
			}
			m := mojaloopMsg{Alg: alg, Headers: map[string]string{"fspiop-signature": sig}, Body: string(out)}
			for k := range h {
				m.Headers[strings.ToLower(k)] = h.Get(k)
			}
			msgs = append(msgs, m)
		}
	}
	in, _ := json.Marshal(msgs)
	cmd := exec.Command(node, filepath.Join("testdata", "mojaloop", "mojaloop_sdk.js"), "validate")
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok ") {
		t.Fatalf("JwsValidator refused our signatures: %v\n%s", err, out)
	}
}

func TestMojaloopRules(t *testing.T) {
	cfg := mojaloopKeys(t, "RS256")
	s, err := NewSigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := mustVerifier(t, Config{Format: FormatMojaloop, Alg: "RS256", PublicKey: cfg.PublicKey, ProtectedHeaders: cfg.ProtectedHeaders})
	signed := func() Message {
		h := http.Header{}
		h.Set("FSPIOP-Source", "payerfsp")
		h.Set("FSPIOP-Destination", "payeefsp")
		h.Set("Date", "Tue, 23 May 2017 21:12:31 GMT")
		msg := Message{Body: []byte(`{"b":2, "a":1}`), Headers: h, Method: "POST", URI: "/quotes"}
		sig, body, err := s.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		msg.HeaderValue, msg.Body = sig, body
		return msg
	}
	if _, err := v.Verify(signed()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Message)
		kind   error
		reason string
	}{
		{"method differs", func(m *Message) { m.Method = "PUT" }, ErrHTTPHeader, "FSPIOP-HTTP-Method"},
		{"uri differs", func(m *Message) { m.URI = "/quotes/1" }, ErrHTTPHeader, `FSPIOP-URI "/quotes" is not the forwarded`},
		{"http header differs", func(m *Message) { m.Headers.Set("FSPIOP-Destination", "evil") }, ErrHTTPHeader, `FSPIOP-Destination is "evil"`},
		{"signed header removed", func(m *Message) { m.Headers.Del("Date") }, ErrHTTPHeader, "Date is absent"},
		{"body byte changed", func(m *Message) { m.Body = bytes.Replace(m.Body, []byte("1"), []byte("3"), 1) }, ErrSignature, "does not verify"},
		{"body re-serialised", func(m *Message) { m.Body = []byte(`{"b":2,"a":1}`) }, ErrSignature, "safe-stable-stringify"},
		{"signature stripped", func(m *Message) { m.HeaderValue = "" }, ErrMissing, "no signature"},
		{"signature member empty", func(m *Message) {
			var o map[string]string
			_ = json.Unmarshal([]byte(m.HeaderValue), &o)
			o["signature"] = ""
			b, _ := json.Marshal(o)
			m.HeaderValue = string(b)
		}, ErrMalformed, "is empty"},
		{"duplicate member", func(m *Message) {
			m.HeaderValue = strings.TrimSuffix(m.HeaderValue, "}") + `,"signature":"AAAA"}`
		}, ErrMalformed, `"signature" twice`},
		{"unprotected header", func(m *Message) {
			m.HeaderValue = strings.TrimSuffix(m.HeaderValue, "}") + `,"header":{"crit":["x"]}}`
		}, ErrHeader, "unprotected"},
		{"case-folded member", func(m *Message) {
			m.HeaderValue = strings.Replace(m.HeaderValue, `"signature"`, `"Signature"`, 1)
		}, ErrMalformed, "unexpected member"},
		{"unsigned configured header", func(m *Message) { m.Headers.Set("Date", "x") }, ErrHTTPHeader, "Date"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := signed()
			tc.change(&msg)
			_, err := v.Verify(msg)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got %v, want %v containing %q", err, tc.kind, tc.reason)
			}
		})
	}
	// A configured header on the message that the signer did not sign.
	s2, _ := NewSigner(Config{Format: FormatMojaloop, Alg: "RS256", PrivateKey: cfg.PrivateKey})
	h := http.Header{}
	h.Set("FSPIOP-Source", "payerfsp")
	h.Set("FSPIOP-Destination", "payeefsp")
	sig, body, _ := s2.Sign(Message{Body: []byte(`{}`), Headers: h, Method: "POST", URI: "/quotes"})
	_, err = v.Verify(Message{HeaderValue: sig, Body: body, Headers: h, Method: "POST", URI: "/quotes"})
	if !errors.Is(err, ErrHTTPHeader) || !strings.Contains(err.Error(), "FSPIOP-Destination is on the message but not in the protected header") {
		t.Fatalf("unsigned destination: %v", err)
	}
}

// skipOrRequire skips the test, unless the environment variable env is set
// (.ci/run sets it where the tool was installed): then it fails. The jws
// package has no Caddy imports, so it does not use internal/itptest.Need.
func skipOrRequire(t *testing.T, env, why string) {
	t.Helper()
	if os.Getenv(env) != "" {
		t.Fatalf("%s is set but: %s", env, why)
	}
	t.Skip(why)
}
