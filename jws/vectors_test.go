package jws

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vectorsDir is shared/vectors, beside the repository (see its README);
// the vectors are read in place, never copied into the repository.
// ITP_VECTORS overrides the folder.
var vectorsDir = func() string {
	if d := os.Getenv("ITP_VECTORS"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "shared", "vectors")
}()

func readVector(t *testing.T, rel string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(vectorsDir, rel))
	if errors.Is(err, os.ErrNotExist) {
		// .ci/run sets ITP_REQUIRE_VECTORS when the folder is there
		if os.Getenv("ITP_REQUIRE_VECTORS") != "" {
			t.Fatalf("test vectors required but not found at %s", vectorsDir)
		}
		t.Skipf("test vectors not found at %s (set ITP_VECTORS)", vectorsDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

// jwkConfig turns a JWK into a Config for alg.
func jwkConfig(t *testing.T, raw json.RawMessage, alg string) (Config, error) {
	t.Helper()
	key, err := ParseJWK(raw)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{Format: FormatCompact, Alg: alg, StandalonePayload: true}
	switch k := key.(type) {
	case []byte:
		cfg.Secret = k
	case interface{ Public() any }:
		cfg.PublicKey = k.Public()
	default:
		cfg.PublicKey = k
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		cfg.PublicKey = &k.PublicKey
	case *ecdsa.PrivateKey:
		cfg.PublicKey = &k.PublicKey
	}
	return cfg, nil
}

func TestWycheproofJWS(t *testing.T) {
	var file struct {
		TestGroups []struct {
			Comment string          `json:"comment"`
			Private json.RawMessage `json:"private"`
			Public  json.RawMessage `json:"public"`
			Tests   []struct {
				TcID    int             `json:"tcId"`
				Comment string          `json:"comment"`
				JWS     json.RawMessage `json:"jws"`
				Result  string          `json:"result"`
			} `json:"tests"`
		} `json:"testGroups"`
	}
	readVector(t, "wycheproof/json_web_signature_test.json", &file)
	// The README lists these as contradictory: unspecified.
	unspecified := map[int]bool{357: true, 367: true, 370: true, 372: true, 373: true}
	// The RFC 7520 groups give their keys a wrong alg (PS256 for a PS384
	// token, and "ES521"); the configured alg is the one the RFC uses.
	algOverride := map[int]string{346: "PS384", 350: "PS384", 347: "ES512", 351: "ES512"}
	var n int
	for _, g := range file.TestGroups {
		key := g.Public
		if key == nil {
			key = g.Private
		}
		var meta struct {
			Alg string `json:"alg"`
		}
		_ = json.Unmarshal(key, &meta)
		for _, tc := range g.Tests {
			alg := meta.Alg
			if a, ok := algOverride[tc.TcID]; ok {
				alg = a
			}
			if alg == "" {
				alg = "RS256" // keys without alg (use/key_ops groups) must fail on their own
				if strings.Contains(string(key), `"EC"`) {
					alg = "ES256"
				}
			}
			var token string
			if err := json.Unmarshal(tc.JWS, &token); err != nil {
				token = string(tc.JWS) // the JSON serialization case: the object itself
			}
			var verr error
			cfg, err := jwkConfig(t, key, alg)
			if err == nil {
				var v *Verifier
				if v, err = NewVerifier(cfg); err == nil {
					_, verr = v.Verify(Message{HeaderValue: token})
				}
			}
			if err != nil {
				verr = err
			}
			n++
			switch {
			case unspecified[tc.TcID]:
				t.Logf("tc %d %s (unspecified): err=%v", tc.TcID, tc.Comment, verr)
			case tc.Result == "valid" && verr != nil:
				t.Errorf("tc %d %s (%s): want valid, got %v", tc.TcID, tc.Comment, g.Comment, verr)
			case tc.Result == "invalid" && verr == nil:
				t.Errorf("tc %d %s (%s): want invalid, got valid", tc.TcID, tc.Comment, g.Comment)
			}
		}
	}
	if n != 401 {
		t.Errorf("ran %d cases, want 401", n)
	}
}

// primitiveCase runs a Wycheproof primitive file through the strict
// verification path (verifySig) with alg.
// want is how many cases of each result the file holds, so that a renamed,
// emptied or partly skipped file fails instead of passing with fewer cases.
func primitiveCases(t *testing.T, rel, alg string, key func(g map[string]json.RawMessage) any, want map[string]int) {
	var file struct {
		TestGroups []struct {
			Raw   map[string]json.RawMessage `json:"-"`
			Tests []struct {
				TcID    int    `json:"tcId"`
				Comment string `json:"comment"`
				Msg     string `json:"msg"`
				Sig     string `json:"sig"`
				Result  string `json:"result"`
			} `json:"tests"`
		} `json:"testGroups"`
	}
	readVector(t, rel, &file)
	var raw struct {
		TestGroups []map[string]json.RawMessage `json:"testGroups"`
	}
	readVector(t, rel, &raw)
	var counts = map[string]int{}
	for gi, g := range file.TestGroups {
		pub := key(raw.TestGroups[gi])
		c, err := newCore(Config{Format: FormatCompact, Alg: alg})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.checkVerifyKey(pub, nil); err != nil {
			t.Errorf("group %d: key refused: %v", gi, err)
			continue
		}
		for _, tc := range g.Tests {
			msg, _ := hex.DecodeString(tc.Msg)
			sig, _ := hex.DecodeString(tc.Sig)
			err := c.verifySig(msg, sig)
			counts[tc.Result]++
			switch {
			case tc.Result == "valid" && err != nil:
				t.Errorf("tc %d %q: want valid, got %v", tc.TcID, tc.Comment, err)
			case tc.Result == "invalid" && err == nil:
				t.Errorf("tc %d %q: want invalid, got valid", tc.TcID, tc.Comment)
			}
		}
	}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("%s: ran %v, want %v", rel, counts, want)
	}
}

func pkixKey(t *testing.T) func(g map[string]json.RawMessage) any {
	return func(g map[string]json.RawMessage) any {
		var der string
		_ = json.Unmarshal(g["publicKeyDer"], &der)
		b, _ := hex.DecodeString(der)
		k, err := x509.ParsePKIXPublicKey(b)
		if err != nil {
			t.Fatalf("publicKeyDer: %v", err)
		}
		return k
	}
}

func TestWycheproofRS256(t *testing.T) {
	primitiveCases(t, "wycheproof/rsa_signature_2048_sha256_test.json", "RS256", pkixKey(t), map[string]int{"acceptable": 1, "invalid": 249, "valid": 9})
}

func TestWycheproofPS256(t *testing.T) {
	primitiveCases(t, "wycheproof/rsa_pss_2048_sha256_mgf1_32_test.json", "PS256", pkixKey(t), map[string]int{"invalid": 45, "valid": 63})
}

func ecKey(t *testing.T, curve elliptic.Curve) func(g map[string]json.RawMessage) any {
	return func(g map[string]json.RawMessage) any {
		var pk struct{ Wx, Wy string }
		_ = json.Unmarshal(g["publicKey"], &pk)
		x, _ := new(big.Int).SetString(pk.Wx, 16)
		y, _ := new(big.Int).SetString(pk.Wy, 16)
		return &ecdsa.PublicKey{Curve: curve, X: x, Y: y}
	}
}

func TestWycheproofES256(t *testing.T) {
	primitiveCases(t, "wycheproof/ecdsa_secp256r1_sha256_p1363_test.json", "ES256", ecKey(t, elliptic.P256()), map[string]int{"invalid": 89, "valid": 173})
}

func TestWycheproofES384(t *testing.T) {
	primitiveCases(t, "wycheproof/ecdsa_secp384r1_sha384_p1363_test.json", "ES384", ecKey(t, elliptic.P384()), map[string]int{"invalid": 87, "valid": 193})
}

type cookbook struct {
	Input struct {
		Payload string          `json:"payload"`
		Key     json.RawMessage `json:"key"`
		Alg     string          `json:"alg"`
	} `json:"input"`
	Signing json.RawMessage `json:"signing"`
	Output  struct {
		Compact  string          `json:"compact"`
		JSON     json.RawMessage `json:"json"`
		JSONFlat json.RawMessage `json:"json_flat"`
	} `json:"output"`
}

func TestCookbookRFC7520(t *testing.T) {
	for _, tc := range []struct {
		file     string
		format   Format
		wantOK   bool   // the compact form verifies
		wantJSON string // expected reason when the JSON serialization is given
	}{
		{"4_1.rsa_v15_signature.json", FormatCompact, true, "JSON serialization"},
		{"4_2.rsa-pss_signature.json", FormatCompact, true, "JSON serialization"},
		{"4_3.ecdsa_signature.json", FormatCompact, true, "JSON serialization"},
		{"4_4.hmac-sha2_integrity_protection.json", FormatCompact, true, "JSON serialization"},
		{"4_5.signature_with_detached_content.json", FormatDetached, true, "JSON serialization"},
		{"4_6.protecting_specific_header_fields.json", FormatCompact, true, "JSON serialization"},
		{"4_7.protecting_content_only.json", FormatCompact, false, "JSON serialization"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var cb cookbook
			readVector(t, "jose-cookbook/jws/"+tc.file, &cb)
			cfg, err := jwkConfig(t, cb.Input.Key, cb.Input.Alg)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Format = tc.format
			v, err := NewVerifier(cfg)
			if err != nil {
				t.Fatal(err)
			}
			body := []byte(cb.Input.Payload)
			token := cb.Output.Compact
			if token == "" { // JSON-only examples: build the compact form
				var s struct {
					Protected string `json:"protected_b64u"`
					Sig       string `json:"sig"`
				}
				_ = json.Unmarshal(cb.Signing, &s)
				token = s.Protected + "." + encodeSegment(body) + "." + s.Sig
			}
			res, err := v.Verify(Message{HeaderValue: token, Body: body})
			if tc.wantOK && err != nil {
				t.Fatalf("compact: %v", err)
			}
			if !tc.wantOK {
				if err == nil {
					t.Fatal("compact without a protected header verified")
				}
				t.Logf("refused as expected: %v", err)
			} else if string(res.Payload) != cb.Input.Payload {
				t.Errorf("payload %q", res.Payload)
			}
			for _, js := range []json.RawMessage{cb.Output.JSON, cb.Output.JSONFlat} {
				_, err := v.Verify(Message{HeaderValue: string(js), Body: body})
				if err == nil || !strings.Contains(err.Error(), tc.wantJSON) {
					t.Errorf("JSON serialization: got %v, want %q", err, tc.wantJSON)
				}
			}
		})
	}
	t.Run("4_8.multiple_signatures", func(t *testing.T) {
		var cb struct {
			Output struct {
				JSON json.RawMessage `json:"json"`
			} `json:"output"`
		}
		readVector(t, "jose-cookbook/jws/4_8.multiple_signatures.json", &cb)
		v := mustVerifier(t, Config{Format: FormatCompact, Alg: "HS256", Secret: make([]byte, 32)})
		_, err := v.Verify(Message{HeaderValue: string(cb.Output.JSON)})
		if err == nil || !strings.Contains(err.Error(), "several signatures") {
			t.Errorf("got %v", err)
		}
	})
}

func TestCookbookRFC7797(t *testing.T) {
	load := func(t *testing.T, name string) (cookbook, []byte) {
		var cb cookbook
		readVector(t, "jose-cookbook/rfc7797/"+name, &cb)
		var k struct{ K string }
		_ = json.Unmarshal(cb.Input.Key, &k)
		secret, _ := base64.RawURLEncoding.DecodeString(k.K)
		return cb, secret
	}
	t.Run("b64 false with crit", func(t *testing.T) {
		cb, secret := load(t, "hmac-sha2_b64_false.json")
		parts := strings.Split(cb.Output.Compact, ".")
		v := mustVerifier(t, Config{Format: FormatDetached, Alg: "HS256", Secret: secret})
		res, err := v.Verify(Message{HeaderValue: parts[0] + ".." + parts[2], Body: []byte(cb.Input.Payload)})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Unencoded {
			t.Error("not reported as unencoded")
		}
		// The compact form with the unencoded payload inline.
		vc := mustVerifier(t, Config{Format: FormatCompact, Alg: "HS256", Secret: secret})
		if _, err := vc.Verify(Message{HeaderValue: cb.Output.Compact, Body: []byte(cb.Input.Payload)}); err != nil {
			t.Fatal(err)
		}
		// One byte of the body changed.
		_, err = v.Verify(Message{HeaderValue: parts[0] + ".." + parts[2], Body: []byte("This is the payload string?")})
		if !errors.Is(err, ErrSignature) {
			t.Errorf("changed body: %v", err)
		}
	})
	t.Run("b64 false without crit is refused", func(t *testing.T) {
		cb, secret := load(t, "4.2.hmac-sha2_b64_false.json")
		var s struct {
			Protected string `json:"protected_b64u"`
			Sig       string `json:"sig"`
		}
		_ = json.Unmarshal(cb.Signing, &s)
		v := mustVerifier(t, Config{Format: FormatDetached, Alg: "HS256", Secret: secret})
		_, err := v.Verify(Message{HeaderValue: s.Protected + ".." + s.Sig, Body: []byte(cb.Input.Payload)})
		if !errors.Is(err, ErrHeader) || !strings.Contains(err.Error(), `crit does not list "b64"`) {
			t.Fatalf("got %v", err)
		}
	})
}

func mustVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
