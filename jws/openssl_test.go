package jws

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestOpenSSLInterop signs with openssl and verifies here, and the reverse,
// with keys made by openssl (so PEM parsing is exercised too). It skips
// when openssl is not installed.
func TestOpenSSLInterop(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		skipOrRequire(t, "ITP_REQUIRE_TOOLS", "openssl not installed")
	}
	dir := t.TempDir()
	run := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
		return out
	}
	file := func(name string) string { return filepath.Join(dir, name) }
	body := []byte(`{"transferId":"abc","amount":{"amount":"10","currency":"EUR"}}`)
	for _, tc := range []struct {
		alg    string
		genkey []string
		sign   []string // after -sign key; input and output added
		verify []string
	}{
		{"RS256", []string{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}, []string{"dgst", "-sha256"}, []string{"dgst", "-sha256"}},
		{"PS256", []string{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"},
			[]string{"dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"},
			[]string{"dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"}},
		{"PS512", []string{"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"},
			[]string{"dgst", "-sha512", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"},
			[]string{"dgst", "-sha512", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"}},
		{"ES256", []string{"ecparam", "-name", "prime256v1", "-genkey"}, []string{"dgst", "-sha256"}, []string{"dgst", "-sha256"}},
		{"ES384", []string{"ecparam", "-name", "secp384r1", "-genkey"}, []string{"dgst", "-sha384"}, []string{"dgst", "-sha384"}},
		{"ES512", []string{"ecparam", "-name", "secp521r1", "-genkey"}, []string{"dgst", "-sha512"}, []string{"dgst", "-sha512"}},
		{"EdDSA", []string{"genpkey", "-algorithm", "ed25519"}, []string{"pkeyutl", "-rawin"}, []string{"pkeyutl", "-rawin"}},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			key, pub := file(tc.alg+".key"), file(tc.alg+".pub")
			run(append(tc.genkey, "-out", key)...)
			run("pkey", "-in", key, "-pubout", "-out", pub)
			privPEM, _ := os.ReadFile(key)
			pubPEM, _ := os.ReadFile(pub)
			priv, err := ParsePrivateKeyPEM(privPEM)
			if err != nil {
				t.Fatal(err)
			}
			pk, err := ParsePublicKeyPEM(pubPEM)
			if err != nil {
				t.Fatal(err)
			}
			if ok, kt, reason := CheckKeyPair(priv, pk); !ok {
				t.Fatalf("pair %s: %s", kt, reason)
			}
			info := algs[tc.alg]
			verifyOnly := Config{Format: FormatDetached, Alg: tc.alg, PublicKey: pk}

			// openssl signs the JWS signing input; this package verifies.
			protected := encodeSegment([]byte(`{"alg":"` + tc.alg + `"}`))
			input := file("input")
			if err := os.WriteFile(input, signingInput(protected, body, true), 0o600); err != nil {
				t.Fatal(err)
			}
			sigFile := file("sig")
			if tc.alg == "EdDSA" {
				run(append(tc.sign, "-sign", "-inkey", key, "-in", input, "-out", sigFile)...)
			} else {
				run(append(tc.sign, "-sign", key, "-out", sigFile, input)...)
			}
			sig, _ := os.ReadFile(sigFile)
			if info.family == famEC {
				if sig, err = derToRaw(sig, info.size); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := mustVerifier(t, verifyOnly).Verify(Message{HeaderValue: protected + ".." + encodeSegment(sig), Body: body}); err != nil {
				t.Fatalf("openssl's signature refused: %v", err)
			}

			// This package signs; openssl verifies.
			s, err := NewSigner(Config{Format: FormatDetached, Alg: tc.alg, PrivateKey: priv, PublicKey: pk})
			if err != nil {
				t.Fatal(err)
			}
			value, _, err := s.Sign(Message{Body: body})
			if err != nil {
				t.Fatal(err)
			}
			w, _ := (&core{format: FormatDetached}).parseWire(value)
			raw, _ := decodeSegment("sig", w.signature)
			if info.family == famEC {
				half := len(raw) / 2
				raw, _ = asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:half]), new(big.Int).SetBytes(raw[half:])})
			}
			_ = os.WriteFile(sigFile, raw, 0o600)
			_ = os.WriteFile(input, signingInput(w.protected, body, true), 0o600)
			if tc.alg == "EdDSA" {
				run(append(tc.verify, "-verify", "-pubin", "-inkey", pub, "-sigfile", sigFile, "-in", input)...)
			} else {
				run(append(tc.verify, "-verify", pub, "-signature", sigFile, input)...)
			}
		})
	}
}

// TestOpenSSLKeyFormats parses the key encodings openssl writes.
func TestOpenSSLKeyFormats(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		skipOrRequire(t, "ITP_REQUIRE_TOOLS", "openssl not installed")
	}
	dir := t.TempDir()
	f := func(n string) string { return filepath.Join(dir, n) }
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	run("genrsa", "-traditional", "-out", f("rsa1.key"), "2048") // PKCS #1
	run("rsa", "-in", f("rsa1.key"), "-RSAPublicKey_out", "-out", f("rsa1.pub"))
	run("req", "-new", "-x509", "-key", f("rsa1.key"), "-subj", "/CN=test", "-days", "1", "-out", f("rsa1.crt"))
	run("ecparam", "-name", "prime256v1", "-genkey", "-out", f("ec.key")) // EC PARAMETERS + EC PRIVATE KEY
	priv1 := mustRead(t, f("rsa1.key"))
	if _, err := ParsePrivateKeyPEM(priv1); err != nil {
		t.Errorf("PKCS #1 private: %v", err)
	}
	for _, name := range []string{"rsa1.pub", "rsa1.crt"} {
		pub, err := ParsePublicKeyPEM(mustRead(t, f(name)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		priv, _ := ParsePrivateKeyPEM(priv1)
		if ok, kt, reason := CheckKeyPair(priv, pub); !ok || kt != "RSA 2048" {
			t.Errorf("%s: %v %s %s", name, ok, kt, reason)
		}
	}
	ec, err := ParsePrivateKeyPEM(mustRead(t, f("ec.key")))
	if err != nil {
		t.Fatalf("EC with parameters block: %v", err)
	}
	if KeyType(ec) != "ECDSA P-256" {
		t.Errorf("key type %s", KeyType(ec))
	}
	if _, err := ParsePublicKeyPEM(priv1); err == nil {
		t.Error("a private key was accepted as a public key")
	}
	der, _ := x509.MarshalPKIXPublicKey(ec.Public())
	if _, err := ParsePublicKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})); err != nil {
		t.Error(err)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
