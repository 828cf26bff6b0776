package itp_test

import (
	"archive/zip"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-itp/caddy-itp/internal/itptest"
)

const echoSubject = `	respond "subject={http.request.tls.client.subject}"`

// unzipBundle checks the zip holds exactly client.crt and RootCA.crt.
func unzipBundle(t *testing.T, data []byte) (clientCrt, rootCrt []byte) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("not a zip: %v (%q)", err, data)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	if len(files) != 2 || files["client.crt"] == nil || files["RootCA.crt"] == nil {
		t.Fatalf("zip holds %d files, want exactly client.crt and RootCA.crt", len(files))
	}
	return files["client.crt"], files["RootCA.crt"]
}

// TestParticipantFollowsTheDocumentation walks the documentation's
// commands with real openssl and curl: generate a key and CSR, upload,
// unzip, and complete an mTLS handshake verifying the platform with
// RootCA.crt and nothing else.
func TestParticipantFollowsTheDocumentation(t *testing.T) {
	itptest.Need(t, "openssl", "curl")
	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform("", echoSubject))
	dir := t.TempDir()
	itptest.Run(t, dir, "openssl", "genrsa", "-out", "client.key", "2048")
	itptest.Run(t, dir, "openssl", "req", "-new", "-key", "client.key", "-out", "client.csr", "-subj", "/CN=payer-fsp/O=Ignored Org")

	// RootCA.crt first (no client certificate needed), then the upload
	itptest.Run(t, dir, "curl", "-sSf", "-k", "-o", "RootCA.crt", env.SecureURL()+"/itp/RootCA.crt")
	itptest.Run(t, dir, "curl", "-sSf", "--cacert", "RootCA.crt", "-F", "file=@client.csr", "-o", "certs.zip", env.SecureURL()+"/itp/certificates")
	zipData, _ := os.ReadFile(filepath.Join(dir, "certs.zip"))
	clientCrt, rootCrt := unzipBundle(t, zipData)
	os.WriteFile(filepath.Join(dir, "client.crt"), clientCrt, 0o600)
	os.WriteFile(filepath.Join(dir, "RootCA.crt"), rootCrt, 0o600)

	out := itptest.Run(t, dir, "openssl", "verify", "-CAfile", "RootCA.crt", "-purpose", "sslclient", "client.crt")
	if !strings.Contains(out, "client.crt: OK") {
		t.Fatalf("openssl verify: %s", out)
	}
	text := itptest.Run(t, dir, "openssl", "x509", "-in", "client.crt", "-noout", "-text")
	for _, want := range []string{"CA:FALSE", "TLS Web Client Authentication", "Digital Signature", "Subject: CN = payer-fsp"} {
		if !strings.Contains(text, want) {
			t.Errorf("issued certificate lacks %q:\n%s", want, text)
		}
	}
	for _, unwanted := range []string{"TLS Web Server Authentication", "Ignored Org", "Certificate Sign"} {
		if strings.Contains(text, unwanted) {
			t.Errorf("issued certificate has %q", unwanted)
		}
	}

	// the handshake: the platform verified with RootCA.crt only, the
	// participant's certificate reaching the site
	got := itptest.Run(t, dir, "curl", "-sS", "--cert", "client.crt", "--key", "client.key", "--cacert", "RootCA.crt", env.SecureURL()+"/hello")
	if got != "subject=CN=payer-fsp" {
		t.Fatalf("mTLS request answered %q", got)
	}

	// the same CSR and a second CSR for the same key: byte-identical
	itptest.Run(t, dir, "curl", "-sSf", "--cacert", "RootCA.crt", "--data-binary", "@client.csr", "-o", "again.zip", env.SecureURL()+"/itp/certificates")
	itptest.Run(t, dir, "openssl", "req", "-new", "-key", "client.key", "-out", "second.csr", "-subj", "/CN=other")
	itptest.Run(t, dir, "curl", "-sSf", "--cacert", "RootCA.crt", "-F", "file=@second.csr", "-o", "second.zip", env.SecureURL()+"/itp/certificates")
	for _, f := range []string{"again.zip", "second.zip"} {
		data, _ := os.ReadFile(filepath.Join(dir, f))
		c, _ := unzipBundle(t, data)
		if !bytes.Equal(c, clientCrt) {
			t.Fatalf("%s: another certificate for the same key", f)
		}
	}

	// the server certificate: from the ITP root, with the site's name
	roots, _ := env.RootPool(t)
	conn, err := tls.Dial("tcp", fmt.Sprintf("localhost:%d", env.Secure), &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("server certificate does not verify against the ITP root: %v", err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "localhost" || leaf.IsCA {
		t.Fatalf("server certificate names %v", leaf.DNSNames)
	}
}

func TestHostileCSRsOverHTTP(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform("", echoSubject))
	roots, _ := env.RootPool(t)
	c := env.Client(t, roots, nil)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	caReq := csrPEM(t, small)
	cases := []struct {
		name   string
		body   []byte
		status int
		want   string
	}{
		{"rsa 1024", caReq, 400, "RSA key of 1024 bits: at least 2048 are required"},
		{"garbage", []byte("not a csr"), 400, "expected one PEM CERTIFICATE REQUEST block"},
		{"over 64 KiB", bytes.Repeat([]byte("A"), 70<<10), 413, "too large"},
	}
	for _, tc := range cases {
		status, body := itptest.Do(t, c, "POST", env.SecureURL()+"/itp/certificates", "application/x-pem-file", tc.body)
		if status != tc.status || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, status, body, tc.status, tc.want)
		}
	}
	// the same refusals on the admin API, as JSON
	status, body := itptest.Do(t, http.DefaultClient, "POST", env.AdminURL()+"/itp/ca/sign", "", caReq)
	var apiErr struct{ Error string }
	if status != 400 || json.Unmarshal(body, &apiErr) != nil || !strings.Contains(apiErr.Error, "at least 2048") {
		t.Errorf("admin sign of a weak CSR: %d %s", status, body)
	}
	status, _ = itptest.Do(t, c, "GET", env.SecureURL()+"/itp/certificates", "", nil)
	if status != http.StatusMethodNotAllowed {
		t.Errorf("GET certificates: %d", status)
	}
}

func TestIssuanceRateLimited(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform("\t\tissuance {\n\t\t\trate_per_minute 2\n\t\t}", echoSubject))
	roots, _ := env.RootPool(t)
	c := env.Client(t, roots, nil)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	req := csrPEM(t, key)
	var last int
	for range 3 {
		last, _ = itptest.Do(t, c, "POST", env.SecureURL()+"/itp/certificates", "", req)
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("third request in a minute at 2/min: %d", last)
	}
	// the admin API is not limited
	if status, _ := itptest.Do(t, http.DefaultClient, "POST", env.AdminURL()+"/itp/ca/sign", "", req); status != 200 {
		t.Fatalf("admin sign: %d", status)
	}
}

func TestAdminCARoutes(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform("", echoSubject))
	roots, rootPEM := env.RootPool(t)
	admin := env.AdminURL()

	// sign through the admin API, then revoke: the next request is
	// refused by the judgement (issue 3); here the record says revoked
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	status, zipData := itptest.Do(t, http.DefaultClient, "POST", admin+"/itp/ca/sign", "", csrPEM(t, key))
	if status != 200 {
		t.Fatalf("sign: %d %s", status, zipData)
	}
	clientCrt, gotRoot := unzipBundle(t, zipData)
	if !bytes.Equal(gotRoot, rootPEM) {
		t.Fatal("zip root differs from root.crt")
	}
	block, _ := pem.Decode(clientCrt)
	cert, _ := x509.ParseCertificate(block.Bytes)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	serial := cert.SerialNumber.Text(16)
	status, body := itptest.Do(t, http.DefaultClient, "POST", admin+"/itp/ca/revoke", "", fmt.Appendf(nil, `{"serial":%q}`, strings.ToUpper(serial)))
	if status != 200 || !strings.Contains(string(body), `"revoked": true`) {
		t.Fatalf("revoke: %d %s", status, body)
	}
	status, zipData = itptest.Do(t, http.DefaultClient, "POST", admin+"/itp/ca/sign", "", csrPEM(t, key))
	if c2, _ := unzipBundle(t, zipData); status != 200 || bytes.Equal(c2, clientCrt) {
		t.Fatal("a revoked certificate was handed out again")
	}
	for _, bad := range []struct{ body, want string }{
		{`{"serial":"ffff"}`, "no certificate with this serial"},
		{`{"serial":"../../etc"}`, `field \"serial\"`},
		{`{}`, `field \"serial\": required`},
		{`{"serial":1}`, `field \"serial\": expected string`},
		{`{"serial":"ab","extra":1}`, "unknown field"},
	} {
		status, body := itptest.Do(t, http.DefaultClient, "POST", admin+"/itp/ca/revoke", "", []byte(bad.body))
		if status/100 != 4 || !strings.Contains(string(body), bad.want) {
			t.Errorf("revoke %s: %d %s", bad.body, status, body)
		}
	}

	// the upstream CSR is for one key, kept across requests
	_, csr1 := itptest.Do(t, http.DefaultClient, "GET", admin+"/itp/upstream/client.csr", "", nil)
	_, csr2 := itptest.Do(t, http.DefaultClient, "GET", admin+"/itp/upstream/client.csr", "", nil)
	p1, p2 := parseCSR(t, csr1), parseCSR(t, csr2)
	if !p1.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(p2.PublicKey) {
		t.Fatal("upstream CSRs for different keys")
	}

	// wrong methods and unknown paths
	if status, _ := itptest.Do(t, http.DefaultClient, "POST", admin+"/itp/ca/root.crt", "", nil); status != 405 {
		t.Errorf("POST root.crt: %d", status)
	}
	if status, _ := itptest.Do(t, http.DefaultClient, "GET", admin+"/itp/nope", "", nil); status != 404 {
		t.Errorf("unknown path: %d", status)
	}
}

func TestAdminKeyCheck(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform("", echoSubject))
	rsa1, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa2, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed1, _ := ed25519.GenerateKey(rand.Reader)
	_, ed2, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		priv, pub any
		match     bool
		keyType   string
		reason    string
	}{
		{rsa1, &rsa1.PublicKey, true, "RSA 2048", ""},
		{rsa1, &rsa2.PublicKey, false, "RSA 2048", "moduli differ"},
		{ec1, &ec1.PublicKey, true, "ECDSA P-256", ""},
		{ec1, &ec2.PublicKey, false, "ECDSA P-256", "differ"},
		{ed1, ed1.Public(), true, "Ed25519", ""},
		{ed1, ed2.Public(), false, "Ed25519", "differ"},
		{ec1, &rsa1.PublicKey, false, "RSA 2048", "the private key is ECDSA P-256 but the public key is RSA 2048"},
	}
	for i, c := range cases {
		privDER, _ := x509.MarshalPKCS8PrivateKey(c.priv)
		pubDER, _ := x509.MarshalPKIXPublicKey(c.pub)
		body, _ := json.Marshal(map[string]string{
			"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})),
			"public_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
		})
		status, resp := itptest.Do(t, http.DefaultClient, "POST", env.AdminURL()+"/itp/keys/check", "application/json", body)
		var got struct {
			Match   bool   `json:"match"`
			KeyType string `json:"key_type"`
			Reason  string `json:"reason"`
		}
		if status != 200 || json.Unmarshal(resp, &got) != nil {
			t.Fatalf("case %d: %d %s", i, status, resp)
		}
		if got.Match != c.match || got.KeyType != c.keyType || !strings.Contains(got.Reason, c.reason) {
			t.Errorf("case %d: got %+v", i, got)
		}
	}
	status, resp := itptest.Do(t, http.DefaultClient, "POST", env.AdminURL()+"/itp/keys/check", "", []byte(`{"private_key":"x","public_key":"y"}`))
	if status != 400 || !strings.Contains(string(resp), `field \"private_key\"`) {
		t.Errorf("garbage keys: %d %s", status, resp)
	}
}

func TestAdminWithoutItpApp(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, `{
	admin localhost:{ADMIN}
	storage file_system {STORAGE}
	persist_config off
}
http://localhost:{INSECURE} {
	respond "no itp here"
}`)
	status, body := itptest.Do(t, http.DefaultClient, "GET", env.AdminURL()+"/itp/ca/root.crt", "", nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "no itp app is configured") {
		t.Fatalf("%d %s", status, body)
	}
	if _, err := os.Stat(filepath.Join(env.Storage, "itp")); err == nil {
		t.Fatal("the admin router created CA state without an itp app")
	}
}

// TestCAKeptAcrossRestartAndReload restarts the in-process Caddy and
// reloads its config: the root and the issued certificate stay.
func TestCAKeptAcrossRestartAndReload(t *testing.T) {
	env := itptest.NewEnv(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var firstRoot, firstCert []byte
	t.Run("first", func(t *testing.T) {
		env.Load(t, itptest.Platform("", echoSubject))
		_, firstRoot = env.RootPool(t)
		_, z := itptest.Do(t, http.DefaultClient, "POST", env.AdminURL()+"/itp/ca/sign", "", csrPEM(t, key))
		firstCert, _ = unzipBundle(t, z)
		// a reload that asks for another key type keeps the root
		env.Reload(t, itptest.Platform("\t\tca {\n\t\t\tkey_type rsa2048\n\t\t}", echoSubject))
		if _, root := env.RootPool(t); !bytes.Equal(root, firstRoot) {
			t.Fatal("reload changed the root")
		}
	})
	t.Run("restart", func(t *testing.T) {
		env.Load(t, itptest.Platform("\t\tca {\n\t\t\tkey_type rsa4096\n\t\t}", echoSubject))
		if _, root := env.RootPool(t); !bytes.Equal(root, firstRoot) {
			t.Fatal("restart changed the root")
		}
		_, z := itptest.Do(t, http.DefaultClient, "POST", env.AdminURL()+"/itp/ca/sign", "", csrPEM(t, key))
		if c, _ := unzipBundle(t, z); !bytes.Equal(c, firstCert) {
			t.Fatal("restart lost the issued certificate")
		}
	})
}

// TestTwoProcessesOneRoot starts two Caddy processes at once on one
// storage folder: they end with the same root and upstream key.
func TestTwoProcessesOneRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	storage := t.TempDir()
	var envs []*itptest.Env
	for range 2 {
		e := itptest.NewEnv(t)
		e.Storage = storage
		envs = append(envs, e)
	}
	for _, e := range envs {
		e.Start(t, itptest.Platform("", echoSubject))
	}
	var roots, csrKeys [][]byte
	for _, e := range envs {
		e.WaitReady(t)
		e.WaitTLS(t) // its server certificate obtained
		_, root := e.RootPool(t)
		roots = append(roots, root)
		_, csr := itptest.Do(t, http.DefaultClient, "GET", e.AdminURL()+"/itp/upstream/client.csr", "", nil)
		pub, _ := x509.MarshalPKIXPublicKey(parseCSR(t, csr).PublicKey)
		csrKeys = append(csrKeys, pub)
	}
	if !bytes.Equal(roots[0], roots[1]) {
		t.Fatal("two processes sharing storage made two roots")
	}
	if !bytes.Equal(csrKeys[0], csrKeys[1]) {
		t.Fatal("two processes sharing storage made two upstream keys")
	}
	// and each serves the other's participants
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, z := itptest.Do(t, http.DefaultClient, "POST", envs[0].AdminURL()+"/itp/ca/sign", "", csrPEM(t, key))
	certPEM, _ := unzipBundle(t, z)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := envs[1].RootPool(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, body := itptest.Do(t, envs[1].Client(t, pool, &pair), "GET", envs[1].SecureURL()+"/x", "", nil)
		if status == 200 && strings.HasPrefix(string(body), "subject=CN=tester-") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second process: %d %s", status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var csrCount atomic.Int64

// csrPEM makes a CSR for key with a common name of its own (a CN belongs
// to one key at a time).
func csrPEM(t *testing.T, key any) []byte {
	return csrWithCN(t, key, fmt.Sprintf("tester-%d", csrCount.Add(1)))
}

// csrWithCN makes a PEM CSR for key with common name cn.
func csrWithCN(t testing.TB, key any, cn string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func parseCSR(t *testing.T, data []byte) *x509.CertificateRequest {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("not a PEM CSR: %s", data)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// TestIssuanceRecordCap: past issuance max_records, a new key gets a 503
// saying so; a key already issued still gets its certificate.
func TestIssuanceRecordCap(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform("\t\tissuance {\n\t\t\tmax_records 2\n\t\t}", echoSubject))
	var first []byte
	for i := range 3 {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		req := csrPEM(t, key)
		status, body := itptest.Do(t, http.DefaultClient, "POST", env.AdminURL()+"/itp/ca/sign", "", req)
		if i < 2 {
			if status != 200 {
				t.Fatalf("certificate %d: %d %s", i, status, body)
			}
			if i == 0 {
				first = req
			}
			continue
		}
		if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "cap on issued certificates") {
			t.Fatalf("past the cap: %d %s", status, body)
		}
	}
	if status, _ := itptest.Do(t, http.DefaultClient, "POST", env.AdminURL()+"/itp/ca/sign", "", first); status != 200 {
		t.Fatalf("an issued key refused at the cap: %d", status)
	}
}
