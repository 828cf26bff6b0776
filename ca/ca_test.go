package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func testStorage(t testing.TB) certmagic.Storage {
	return &certmagic.FileStorage{Path: t.TempDir()}
}

func makeCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{Subject: pkix.Name{CommonName: "payer"}}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func newParticipants(t testing.TB, storage certmagic.Storage) *Participants {
	t.Helper()
	ctx := context.Background()
	auth, err := LoadOrCreate(ctx, storage, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewParticipants(ctx, auth, storage, nil, IssuerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRootCreatedOnceAndKept(t *testing.T) {
	ctx := context.Background()
	st := testStorage(t)
	a1, err := LoadOrCreate(ctx, st, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := KeyTypeOf(a1.Root.PublicKey); got != KeyECDSAP256 {
		t.Fatalf("default key type = %s", got)
	}
	if d := a1.Root.NotAfter.Sub(a1.Root.NotBefore); d < DefaultRootValidity {
		t.Fatalf("root validity %v", d)
	}
	// asking for another key type never replaces the stored root, and
	// says so
	core, logs := observer.New(zap.WarnLevel)
	a2, err := LoadOrCreate(ctx, st, zap.New(core), Options{KeyType: KeyRSA2048})
	if err != nil {
		t.Fatal(err)
	}
	if !a1.Root.Equal(a2.Root) {
		t.Fatal("root replaced on reload")
	}
	warns := logs.FilterMessageSnippet("keeping the stored root").All()
	if len(warns) != 1 || warns[0].ContextMap()["configured"] != KeyRSA2048 || warns[0].ContextMap()["stored"] != KeyECDSAP256 {
		t.Fatalf("no warning naming both key types: %v", logs.All())
	}
}

func TestRootKeyTypes(t *testing.T) {
	for _, kt := range []string{KeyRSA2048, KeyECDSAP384, KeyEd25519} {
		a, err := LoadOrCreate(context.Background(), testStorage(t), nil, Options{KeyType: kt, Validity: 48 * time.Hour})
		if err != nil {
			t.Fatal(kt, err)
		}
		if got := KeyTypeOf(a.Root.PublicKey); got != kt {
			t.Fatalf("key type %s, want %s", got, kt)
		}
	}
	if _, err := LoadOrCreate(context.Background(), testStorage(t), nil, Options{KeyType: "dsa"}); err == nil {
		t.Fatal("unknown key type accepted")
	}
}

func TestRootConcurrentCreationOneWinner(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	roots := make([]*Authority, 8)
	for i := range roots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := LoadOrCreate(context.Background(), &certmagic.FileStorage{Path: dir}, nil, Options{})
			if err != nil {
				t.Error(err)
				return
			}
			roots[i] = a
		}()
	}
	wg.Wait()
	for _, a := range roots[1:] {
		if a == nil || !a.Root.Equal(roots[0].Root) {
			t.Fatal("instances ended with different roots")
		}
	}
}

func TestImportAndNameConstraints(t *testing.T) {
	dir := t.TempDir()
	src, err := LoadOrCreate(context.Background(), testStorage(t), nil, Options{NameConstraints: []string{"localhost", "127.0.0.1", "10.0.0.0/8"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(src.Root.PermittedDNSDomains) != 1 || len(src.Root.PermittedIPRanges) != 2 {
		t.Fatalf("constraints not applied: %v %v", src.Root.PermittedDNSDomains, src.Root.PermittedIPRanges)
	}
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	keyPEM, _ := EncodeKeyPEM(src.Signer())
	os.WriteFile(certFile, src.RootPEM, 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)
	imported, err := LoadOrCreate(context.Background(), testStorage(t), nil, Options{ImportCert: certFile, ImportKey: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	if !imported.Root.Equal(src.Root) {
		t.Fatal("import did not keep the given root")
	}
	// a server certificate outside the constraints fails verification
	skey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"evil.example"}}, skey)
	csr, _ := x509.ParseCertificateRequest(der)
	certPEM, err := src.IssueServer(csr, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := DecodeCertPEM(certPEM)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: src.Pool(), DNSName: "evil.example"}); err == nil {
		t.Fatal("name constraints not enforced")
	}
	// mismatched import files are refused
	other, _ := LoadOrCreate(context.Background(), testStorage(t), nil, Options{})
	otherKey, _ := EncodeKeyPEM(other.Signer())
	os.WriteFile(keyFile, otherKey, 0o600)
	if _, err := LoadOrCreate(context.Background(), testStorage(t), nil, Options{ImportCert: certFile, ImportKey: keyFile}); err == nil {
		t.Fatal("mismatched import accepted")
	}
}

func TestSameKeySameCertificate(t *testing.T) {
	ctx := context.Background()
	st := testStorage(t)
	p := newParticipants(t, st)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	csr1, err := ParseParticipantCSR(makeCSR(t, key, nil))
	if err != nil {
		t.Fatal(err)
	}
	csr2, err := ParseParticipantCSR(makeCSR(t, key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "other"}}))
	if err != nil {
		t.Fatal(err)
	}
	r1, reused, err := p.Sign(ctx, csr1)
	if err != nil || reused {
		t.Fatal(err, reused)
	}
	r2, reused, err := p.Sign(ctx, csr2)
	if err != nil || !reused {
		t.Fatal(err, reused)
	}
	if r1.Certificate != r2.Certificate {
		t.Fatal("second CSR for the same key gave another certificate")
	}
	// a restart with the same storage keeps it
	p2 := newParticipants(t, st)
	r3, reused, err := p2.Sign(ctx, csr1)
	if err != nil || !reused || r3.Certificate != r1.Certificate {
		t.Fatal("restart lost the issued certificate", err)
	}
	// revocation: refused from now on and a new certificate next time
	serial := mustParseSerial(r1.Serial)
	if p2.IsRevoked(serial) {
		t.Fatal("revoked before revocation")
	}
	if _, err := p2.Revoke(ctx, strings.ToUpper(r1.Serial)); err != nil {
		t.Fatal(err)
	}
	if !p2.IsRevoked(serial) {
		t.Fatal("revocation not effective")
	}
	if err := p.Refresh(ctx); err != nil || !p.IsRevoked(serial) {
		t.Fatal("revocation not seen by another instance after refresh", err)
	}
	r4, reused, err := p2.Sign(ctx, csr1)
	if err != nil || reused || r4.Serial == r1.Serial {
		t.Fatal("revoked certificate handed out again", err)
	}
	if _, err := p2.Revoke(ctx, "abcdef"); !errors.Is(err, ErrNotIssued) {
		t.Fatalf("revoking unknown serial: %v", err)
	}
}

func TestLastThirdGetsFreshCertificate(t *testing.T) {
	ctx := context.Background()
	st := testStorage(t)
	auth, _ := LoadOrCreate(ctx, st, nil, Options{})
	p, _ := NewParticipants(ctx, auth, st, nil, IssuerConfig{Validity: 3 * time.Second})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := ParseParticipantCSR(makeCSR(t, key, nil))
	r1, _, err := p.Sign(ctx, csr)
	if err != nil {
		t.Fatal(err)
	}
	// NotBefore is backdated 5 minutes, so a 3s validity is already in
	// its last third: every request gets a fresh one
	r2, reused, err := p.Sign(ctx, csr)
	if err != nil || reused || r2.Serial == r1.Serial {
		t.Fatal("certificate in its last third reused", err)
	}
}

func TestIssuedCertificateShape(t *testing.T) {
	p := newParticipants(t, testStorage(t))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// a hostile CSR asking to become a CA with SANs and key usages
	bc, _ := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{true})
	ku, _ := asn1.Marshal(asn1.BitString{Bytes: []byte{0x06}, BitLength: 7}) // keyCertSign, cRLSign
	tmpl := &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "payer", Organization: []string{"Evil Corp"}},
		DNSNames:       []string{"bank.example"},
		EmailAddresses: []string{"x@example.org"},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: bc},
			{Id: asn1.ObjectIdentifier{2, 5, 29, 15}, Critical: true, Value: ku},
		},
	}
	csr, err := ParseParticipantCSR(makeCSR(t, key, tmpl))
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := p.Sign(context.Background(), csr)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := DecodeCertPEM([]byte(rec.Certificate))
	if cert.IsCA || !cert.BasicConstraintsValid {
		t.Fatal("leaf is a CA")
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Fatalf("key usage %v", cert.KeyUsage)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("ext key usage %v", cert.ExtKeyUsage)
	}
	if len(cert.DNSNames)+len(cert.EmailAddresses)+len(cert.IPAddresses)+len(cert.URIs) != 0 {
		t.Fatal("SANs copied from the CSR")
	}
	if cert.Subject.String() != "CN=payer" {
		t.Fatalf("subject %q", cert.Subject)
	}
	if cert.SerialNumber.BitLen() < 64 {
		t.Fatalf("serial of %d bits", cert.SerialNumber.BitLen())
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: p.Authority().Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
}

func TestHostileCSRs(t *testing.T) {
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	good := makeCSR(t, ec256, nil)
	broken := func() []byte {
		b, _ := pem.Decode(good)
		der := bytes.Clone(b.Bytes)
		der[len(der)-3] ^= 0xff // inside the signature
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}()
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"rsa 1024", makeCSR(t, rsa1024, nil), "RSA key of 1024 bits: at least 2048 are required"},
		{"p-224", makeCSR(t, ec224, nil), "P-224"},
		{"broken signature", broken, "CSR signature does not verify"},
		{"garbage", []byte("hello"), "expected one PEM CERTIFICATE REQUEST block"},
		{"two blocks", append(bytes.Clone(good), good...), "expected one PEM CERTIFICATE REQUEST block"},
		{"certificate block", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), "found a CERTIFICATE block"},
		{"not DER", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte("xx")}), "CSR does not parse"},
		{"too big", bytes.Repeat([]byte("a"), MaxCSRBytes+1), "at most 65536"},
		{"long CN", makeCSR(t, ec256, &x509.CertificateRequest{Subject: pkix.Name{CommonName: strings.Repeat("a", 65)}}), "common name"},
	}
	_, err := exec.LookPath("openssl")
	if err != nil && os.Getenv("ITP_REQUIRE_TOOLS") != "" {
		t.Fatal("openssl is required (ITP_REQUIRE_TOOLS is set): the e=3 and secp256k1 CSRs are made with it")
	}
	if err == nil {
		dir := t.TempDir()
		run := func(args ...string) {
			if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
				t.Fatalf("openssl %v: %v\n%s", args, err, out)
			}
		}
		run("genrsa", "-3", "-out", dir+"/e3.key", "2048")
		run("req", "-new", "-key", dir+"/e3.key", "-subj", "/CN=e3", "-out", dir+"/e3.csr")
		run("ecparam", "-name", "secp256k1", "-genkey", "-noout", "-out", dir+"/k1.key")
		run("req", "-new", "-key", dir+"/k1.key", "-subj", "/CN=k1", "-out", dir+"/k1.csr")
		e3, _ := os.ReadFile(dir + "/e3.csr")
		k1, _ := os.ReadFile(dir + "/k1.csr")
		cases = append(cases,
			struct {
				name string
				data []byte
				want string
			}{"rsa e=3", e3, "RSA public exponent 3: only 65537 is accepted"},
			struct {
				name string
				data []byte
				want string
			}{"secp256k1", k1, "unsupported elliptic curve: only P-256 and P-384"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseParticipantCSR(c.data)
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("want a policy error, got %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
	for _, k := range []crypto.Signer{ec256, ed} {
		if _, err := ParseParticipantCSR(makeCSR(t, k, nil)); err != nil {
			t.Fatalf("%T refused: %v", k, err)
		}
	}
}

func TestParseSerial(t *testing.T) {
	for in, want := range map[string]int64{"0a:0B": 0xa0b, "0xff": 255, " 10 ": 16} {
		n, err := ParseSerial(in)
		if err != nil || n.Cmp(big.NewInt(want)) != 0 {
			t.Fatalf("%q: %v %v", in, n, err)
		}
	}
	for _, in := range []string{"", "zz", "0", "-1", strings.Repeat("f", 65), "../x"} {
		if _, err := ParseSerial(in); err == nil {
			t.Fatalf("%q accepted", in)
		}
	}
}

func TestUpstreamKeyCreatedOnce(t *testing.T) {
	ctx := context.Background()
	st := testStorage(t)
	k1, err := LoadOrCreateUpstreamKey(ctx, st, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateUpstreamKey(ctx, st, nil, KeyRSA2048)
	if err != nil {
		t.Fatal(err)
	}
	if !publicKeysEqual(k1.Public(), k2.Public()) {
		t.Fatal("upstream key replaced")
	}
	csrPEM, err := UpstreamCSR(k1, "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(csrPEM)
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil || csr.CheckSignature() != nil || !publicKeysEqual(csr.PublicKey, k1.Public()) {
		t.Fatal("upstream CSR not for the upstream key", err)
	}
}

func TestBundleDeterministic(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, _ := Bundle([]byte("c"), []byte("r"), at)
	b, _ := Bundle([]byte("c"), []byte("r"), at)
	if !bytes.Equal(a, b) {
		t.Fatal("zip not deterministic")
	}
}

func FuzzParticipantCSR(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add(makeCSR(f, key, nil))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{})
	p := newParticipants(f, testStorage(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseParticipantCSR(data)
		if err != nil {
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("non-policy error %v", err)
			}
			return
		}
		// whatever passed the policy signs into a client-auth leaf (or is
		// refused because its common name belongs to another key)
		rec, _, err := p.Sign(context.Background(), csr)
		var pe *PolicyError
		if errors.As(err, &pe) && strings.Contains(pe.Msg, "is held by another key") {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		cert, err := DecodeCertPEM([]byte(rec.Certificate))
		if err != nil || cert.IsCA || len(cert.DNSNames) > 0 {
			t.Fatal("bad leaf", err)
		}
	})
}

func BenchmarkSignParticipant(b *testing.B) {
	p := newParticipants(b, testStorage(b))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrPEM := makeCSR(b, key, nil)
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		csr, _ := ParseParticipantCSR(csrPEM)
		for b.Loop() {
			if _, err := p.issue(csr, "x"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse+reuse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			csr, err := ParseParticipantCSR(csrPEM)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := p.Sign(context.Background(), csr); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestServerCertificateExtraNames(t *testing.T) {
	a, _ := LoadOrCreate(context.Background(), testStorage(t), nil, Options{})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"localhost"}}, key)
	csr, _ := x509.ParseCertificateRequest(der)
	certPEM, err := a.IssueServer(csr, time.Hour, "itp.example.org", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := DecodeCertPEM(certPEM)
	if strings.Join(cert.DNSNames, ",") != "localhost,itp.example.org" || len(cert.IPAddresses) != 1 {
		t.Fatalf("names %v %v", cert.DNSNames, cert.IPAddresses)
	}
	for _, name := range []string{"localhost", "itp.example.org", "127.0.0.1"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: a.Pool(), DNSName: name}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestCommonNameBelongsToOneKey: a second key cannot get a certificate
// with a common name another key's valid certificate holds, until that one
// is revoked.
func TestCommonNameBelongsToOneKey(t *testing.T) {
	ctx := context.Background()
	p := newParticipants(t, testStorage(t))
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c1, _ := ParseParticipantCSR(makeCSR(t, k1, nil))
	c2, _ := ParseParticipantCSR(makeCSR(t, k2, nil))
	r1, _, err := p.Sign(ctx, c1)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = p.Sign(ctx, c2)
	var pe *PolicyError
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, `common name "payer" is held by another key`) {
		t.Fatalf("second key with the same CN: %v", err)
	}
	// the holder keeps getting its certificate
	if again, reused, err := p.Sign(ctx, c1); err != nil || !reused || again.Serial != r1.Serial {
		t.Fatal("holder refused", err)
	}
	if _, err := p.Revoke(ctx, r1.Serial); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Sign(ctx, c2); err != nil {
		t.Fatalf("CN still held after revocation: %v", err)
	}
}
