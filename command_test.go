package itp_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-itp/caddy-itp/internal/itptest"
)

// cli runs the built binary's `itp` command against the env's admin API
// and returns stdout, stderr and the exit status.
func cli(t *testing.T, env *itptest.Env, dir string, args ...string) (string, string, int) {
	t.Helper()
	full := append([]string{"itp"}, args...)
	if env != nil {
		full = append(full, "--address", fmt.Sprintf("localhost:%d", env.Admin))
	}
	cmd := exec.Command(itptest.Binary(t), full...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CADDY_ADMIN=localhost:1") // never the real default
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running caddy itp %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// expect checks an exit status and that the output contains want.
func expect(t *testing.T, what string, out, errOut string, code, wantCode int, want ...string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, code, wantCode, out, errOut)
		return
	}
	for _, w := range want {
		if !strings.Contains(out+errOut, w) {
			t.Errorf("%s: output lacks %q\nstdout: %s\nstderr: %s", what, w, out, errOut)
		}
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCLIHelpAndUsage(t *testing.T) {
	dir := t.TempDir()
	for _, sub := range [][]string{
		{}, {"session"}, {"session", "create"}, {"session", "list"}, {"session", "show"}, {"session", "delete"},
		{"results"}, {"sign"}, {"csr"}, {"keycheck"},
	} {
		out, errOut, code := cli(t, nil, dir, append(sub, "--help")...)
		expect(t, "help of "+strings.Join(sub, " "), out, errOut, code, 0, "Usage:", "--address")
	}
	out, errOut, code := cli(t, nil, dir)
	expect(t, "no subcommand", out, errOut, code, 2, "Available Commands")
	out, errOut, code = cli(t, nil, dir, "bogus")
	expect(t, "unknown subcommand", out, errOut, code, 2, `unknown command "bogus"`, "--help")
	out, errOut, code = cli(t, nil, dir, "session", "show")
	expect(t, "missing argument", out, errOut, code, 2, "expected a session id")
	out, errOut, code = cli(t, nil, dir, "session", "list", "--bogus")
	expect(t, "unknown flag", out, errOut, code, 2, "unknown flag: --bogus")
	out, errOut, code = cli(t, nil, dir, "session", "create")
	expect(t, "create without --file", out, errOut, code, 2, "--file is required")
	out, errOut, code = cli(t, nil, dir, "keycheck", "--private", "x")
	expect(t, "keycheck without --public", out, errOut, code, 2, "both --private and --public")
	// admin unreachable: a clear message, status 1 (3 for keycheck)
	out, errOut, code = cli(t, nil, dir, "session", "list", "--address", "localhost:1")
	expect(t, "admin unreachable", out, errOut, code, 1, "cannot reach Caddy's admin API at localhost:1", "--address")
	os.WriteFile(filepath.Join(dir, "k"), []byte("x"), 0o600)
	out, errOut, code = cli(t, nil, dir, "keycheck", "--private", "k", "--public", "k", "--address", "localhost:1")
	expect(t, "keycheck, admin unreachable", out, errOut, code, 3, "cannot reach")
	// CADDY_ADMIN is honoured when there is no --address
	out, errOut, code = cli(t, nil, dir, "session", "list")
	expect(t, "CADDY_ADMIN", out, errOut, code, 1, "localhost:1")
}

func TestCLIAgainstPlatform(t *testing.T) {
	env := itptest.NewEnv(t)
	env.Load(t, webPlatform())
	dir := t.TempDir()

	// sessions
	sess := `{"id": "cli-test", "name": "cli test", "components": [{"slug": "payer"}, {"slug": "hub", "simulated": true}]}`
	os.WriteFile(filepath.Join(dir, "session.json"), []byte(sess), 0o600)
	out, errOut, code := cli(t, env, dir, "session", "create", "--file", "session.json")
	expect(t, "session create", out, errOut, code, 0, "created session cli-test (cli test)",
		fmt.Sprintf("https://localhost:%d/testing/payer/hub/cli-test", env.Secure),
		fmt.Sprintf("http://localhost:%d/testing-insecure/payer/hub/cli-test", env.Insecure))
	out, errOut, code = cli(t, env, dir, "session", "create", "--file", "session.json")
	expect(t, "session create twice", out, errOut, code, 1, "already exists", "HTTP 409")
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"components": [{"slug": "a", "base_url": "ftp://x"}]}`), 0o600)
	out, errOut, code = cli(t, env, dir, "session", "create", "--file", "bad.json")
	expect(t, "invalid session", out, errOut, code, 1, "base_url", "HTTP 400")
	os.WriteFile(filepath.Join(dir, "notjson"), []byte(`{`), 0o600)
	out, errOut, code = cli(t, env, dir, "session", "create", "--file", "notjson")
	expect(t, "not JSON", out, errOut, code, 2, "not valid JSON")
	out, errOut, code = cli(t, env, dir, "session", "create", "--file", "missing.json")
	expect(t, "missing file", out, errOut, code, 2, "missing.json")

	out, errOut, code = cli(t, env, dir, "session", "list")
	expect(t, "session list", out, errOut, code, 0, "ID", "cli-test", "payer,hub*", "demo", "config")
	out, _, code = cli(t, env, dir, "session", "list", "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 || code != 0 {
		t.Errorf("session list --json: %d %v %s", code, err, out)
	}
	out, errOut, code = cli(t, env, dir, "session", "show", "demo")
	expect(t, "session show", out, errOut, code, 0, "Session demo", "web demo", "simulated", "URLs to configure", "/testing/client/server/demo", "Caddy config")
	out, errOut, code = cli(t, env, dir, "session", "show", "nope")
	expect(t, "session show unknown", out, errOut, code, 1, "session nope: not found", "HTTP 404")
	if strings.Count(errOut, "nope") != 1 {
		t.Errorf("the message repeats itself: %s", errOut)
	}
	out, errOut, code = cli(t, env, dir, "session", "delete", "demo")
	expect(t, "delete a config session", out, errOut, code, 1, "HTTP 409")
	out, errOut, code = cli(t, env, dir, "session", "delete", "cli-test")
	expect(t, "session delete", out, errOut, code, 0, "deleted session cli-test")
	out, errOut, code = cli(t, env, dir, "session", "delete", "cli-test")
	expect(t, "session delete twice", out, errOut, code, 1, "not found")

	// results: none, then after requests
	out, errOut, code = cli(t, env, dir, "results", "demo")
	expect(t, "no results", out, errOut, code, 0, "no results")
	out, errOut, code = cli(t, env, dir, "results", "nope")
	expect(t, "results of an unknown session", out, errOut, code, 1, "not found")

	// --follow prints results recorded after it started
	follow := exec.Command(itptest.Binary(t), "itp", "results", "demo", "--follow", "--interval", "200ms", "--address", fmt.Sprintf("localhost:%d", env.Admin))
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(300 * time.Millisecond)
	status, body := itptest.Do(t, http.DefaultClient, "GET", env.InsecureURL()+"/testing-insecure/client/server/demo/cli", "", nil)
	if status != 200 {
		t.Fatalf("testing route: %d %s", status, body)
	}
	var seen []string
	timeout := time.After(10 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break wait
			}
			seen = append(seen, l)
			if strings.Contains(l, "Was encrypted?") {
				break wait
			}
		case <-timeout:
			break wait
		}
	}
	follow.Process.Signal(os.Interrupt)
	werr := follow.Wait()
	if len(seen) < 2 || !strings.HasPrefix(seen[0], "ID") || !strings.Contains(strings.Join(seen, "\n"), "FAIL") {
		t.Errorf("results --follow printed %q", seen)
	}
	if werr != nil {
		t.Errorf("results --follow ended with %v on SIGINT, want status 0", werr)
	}

	out, errOut, code = cli(t, env, dir, "results", "demo")
	expect(t, "results", out, errOut, code, 0, "STATUS", "Was encrypted?", "FAIL", "client -> server", "GET /testing-insecure/client/server/demo/cli")
	// one request with a valid client certificate, so that passes and
	// failures are both there for --failed to tell apart
	roots, _ := env.RootPool(t)
	cert := firstOf(participant(t, env, "cli-client"))
	if status, _ := itptest.Do(t, env.Client(t, roots, &cert), "GET", env.SecureURL()+"/testing/client/server/demo/cli", "", nil); status != 200 {
		t.Fatalf("mTLS request: %d", status)
	}
	out, _, code = cli(t, env, dir, "results", "demo", "--json")
	if code != 0 || !strings.Contains(out, `"status":"pass"`) {
		t.Fatalf("results --json has no pass to filter out: %d %s", code, out)
	}
	out, errOut, code = cli(t, env, dir, "results", "demo", "--failed", "--json")
	if code != 0 {
		t.Fatalf("results --json: %d %s", code, errOut)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil || r["status"] != "fail" || r["session"] != "demo" {
			t.Errorf("results --failed --json line %q: %v", l, err)
		}
	}
	out, errOut, code = cli(t, env, dir, "results", "demo", "--check", "no such check")
	expect(t, "results --check", out, errOut, code, 0, "no results")

	// sign and csr
	os.WriteFile(filepath.Join(dir, "client.csr"), newCSR(t, "cli-participant"), 0o600)
	out, errOut, code = cli(t, env, dir, "sign", "client.csr", "-o", "certs.zip")
	expect(t, "sign", out, errOut, code, 0, "wrote certs.zip", "CN=cli-participant", "RootCA.crt")
	zipData, _ := os.ReadFile(filepath.Join(dir, "certs.zip"))
	unzipBundle(t, zipData)
	os.WriteFile(filepath.Join(dir, "bad.csr"), []byte("garbage"), 0o600)
	out, errOut, code = cli(t, env, dir, "sign", "bad.csr", "-o", "bad.zip")
	expect(t, "sign a bad CSR", out, errOut, code, 1, "HTTP 400")
	if _, err := os.Stat(filepath.Join(dir, "bad.zip")); err == nil {
		t.Errorf("a refused CSR left a zip behind")
	}
	out, errOut, code = cli(t, env, dir, "csr", "-o", "platform.csr")
	expect(t, "csr", out, errOut, code, 0, "wrote platform.csr")
	csrPEM, _ := os.ReadFile(filepath.Join(dir, "platform.csr"))
	if block, _ := pem.Decode(csrPEM); block == nil || block.Type != "CERTIFICATE REQUEST" {
		t.Errorf("csr wrote %q", csrPEM)
	} else if _, err := x509.ParseCertificateRequest(block.Bytes); err != nil {
		t.Errorf("csr: %v", err)
	}
	out, errOut, code = cli(t, env, dir, "csr")
	expect(t, "csr to stdout", out, errOut, code, 0, "BEGIN CERTIFICATE REQUEST")

	// keycheck: match (ECDSA, Ed25519), mismatch, unparseable key
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der1, _ := x509.MarshalPKCS8PrivateKey(k1)
	pub1, _ := x509.MarshalPKIXPublicKey(&k1.PublicKey)
	pub2, _ := x509.MarshalPKIXPublicKey(&k2.PublicKey)
	writePEM(t, filepath.Join(dir, "private.key"), "PRIVATE KEY", der1)
	writePEM(t, filepath.Join(dir, "public.key"), "PUBLIC KEY", pub1)
	writePEM(t, filepath.Join(dir, "other.key"), "PUBLIC KEY", pub2)
	epub, epriv, _ := ed25519.GenerateKey(rand.Reader)
	ed, _ := x509.MarshalPKCS8PrivateKey(epriv)
	edp, _ := x509.MarshalPKIXPublicKey(epub)
	writePEM(t, filepath.Join(dir, "ed.key"), "PRIVATE KEY", ed)
	writePEM(t, filepath.Join(dir, "ed.pub"), "PUBLIC KEY", edp)
	out, errOut, code = cli(t, env, dir, "keycheck", "--private", "private.key", "--public", "public.key")
	expect(t, "keycheck match", out, errOut, code, 0, "match: ")
	out, errOut, code = cli(t, env, dir, "keycheck", "--private", "ed.key", "--public", "ed.pub")
	expect(t, "keycheck ed25519 match", out, errOut, code, 0, "match: ")
	out, errOut, code = cli(t, env, dir, "keycheck", "--private", "private.key", "--public", "other.key")
	expect(t, "keycheck mismatch", out, errOut, code, 1, "mismatch: ")
	out, errOut, code = cli(t, env, dir, "keycheck", "--private", "private.key", "--public", "ed.pub")
	expect(t, "keycheck across types", out, errOut, code, 1, "mismatch: ")
	out, errOut, code = cli(t, env, dir, "keycheck", "--private", "bad.csr", "--public", "public.key")
	expect(t, "keycheck unparseable", out, errOut, code, 2, "private_key")
	out, errOut, code = cli(t, env, dir, "keycheck", "--private", "nofile", "--public", "public.key")
	expect(t, "keycheck missing file", out, errOut, code, 2, "nofile")
}
