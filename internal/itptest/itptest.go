// Package itptest runs Caddy in-process and the caddy-itp binary in
// separate processes for the project's tests, on loopback with real TLS.
package itptest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// RedirectXDG points Caddy's data and config folders at a temporary
// folder, so tests never touch the real ones. Call it from TestMain.
func RedirectXDG() (cleanup func()) {
	dir, err := os.MkdirTemp("", "itp-xdg-")
	if err != nil {
		panic(err)
	}
	for _, v := range []string{"XDG_DATA_HOME", "XDG_CONFIG_HOME"} {
		os.Setenv(v, filepath.Join(dir, strings.ToLower(v)))
	}
	return func() { os.RemoveAll(dir) }
}

// FreePorts returns n distinct free loopback TCP ports.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// Env is the environment of a test platform: its ports and storage.
type Env struct {
	Admin, Secure, Insecure int
	Storage                 string
}

// NewEnv allocates ports and a storage folder.
func NewEnv(t testing.TB) *Env {
	p := FreePorts(t, 3)
	return &Env{Admin: p[0], Secure: p[1], Insecure: p[2], Storage: t.TempDir()}
}

// Expand replaces {ADMIN}, {SECURE}, {INSECURE} and {STORAGE} in a config.
func (e *Env) Expand(cfg string) string {
	return strings.NewReplacer(
		"{ADMIN}", fmt.Sprint(e.Admin),
		"{SECURE}", fmt.Sprint(e.Secure),
		"{INSECURE}", fmt.Sprint(e.Insecure),
		"{STORAGE}", e.Storage,
	).Replace(cfg)
}

// AdminURL is the admin endpoint's base URL.
func (e *Env) AdminURL() string { return fmt.Sprintf("http://localhost:%d", e.Admin) }

// SecureURL is the secure site's base URL.
func (e *Env) SecureURL() string { return fmt.Sprintf("https://localhost:%d", e.Secure) }

// InsecureURL is the plain-HTTP site's base URL.
func (e *Env) InsecureURL() string { return fmt.Sprintf("http://localhost:%d", e.Insecure) }

// Platform is a Caddyfile with an admin endpoint, a storage folder, the
// itp app and the quickstart's two sites; extra goes into the itp option
// and site into both sites' routes.
func Platform(itpOptions, site string) string {
	return `{
	admin localhost:{ADMIN}
	storage file_system {STORAGE}
	auto_https disable_redirects
	persist_config off
	grace_period 1s
	log {
		output discard
	}
	itp {
		public_url https://localhost:{SECURE}
		public_insecure_url http://localhost:{INSECURE}
` + optionLines(itpOptions) + `	}
}
https://localhost:{SECURE} {
	tls {
		issuer itp
		client_auth {
			mode request
			trust_pool itp
		}
	}
	itp_ca
` + site + `
}
http://localhost:{INSECURE} {
` + site + `
}
`
}

// optionLines ends non-empty options with a newline.
func optionLines(s string) string {
	if s = strings.TrimRight(s, "\n"); s == "" {
		return ""
	}
	return s + "\n"
}

var loadMu sync.Mutex

// Load adapts a Caddyfile (with Env placeholders) and runs it in this
// process, stopping it when the test ends. One config runs per process, so
// tests using Load must not run in parallel.
func (e *Env) Load(t testing.TB, caddyfile string) {
	t.Helper()
	cfgJSON := e.Adapt(t, caddyfile)
	loadMu.Lock()
	if err := caddy.Load(cfgJSON, true); err != nil {
		loadMu.Unlock()
		t.Fatalf("loading config: %v", err)
	}
	t.Cleanup(func() {
		caddy.Stop()
		loadMu.Unlock()
	})
	e.WaitReady(t)
	if strings.Contains(caddyfile, "{SECURE} {") {
		e.WaitTLS(t)
	}
}

// WaitTLS waits until the secure site completes a handshake, i.e. until
// Caddy's certificate automation has obtained its certificate.
func (e *Env) WaitTLS(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		var conn *tls.Conn
		conn, err = tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.Secure), &tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("secure site never completed a handshake: %v", err)
}

// Reload loads another config into the running process, as POST /load
// does.
func (e *Env) Reload(t testing.TB, caddyfile string) {
	t.Helper()
	if err := caddy.Load(e.Adapt(t, caddyfile), true); err != nil {
		t.Fatalf("reloading config: %v", err)
	}
}

// Adapt turns a Caddyfile with Env placeholders into JSON.
func (e *Env) Adapt(t testing.TB, caddyfile string) []byte {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	cfgJSON, warns, err := adapter.Adapt([]byte(e.Expand(caddyfile)), nil)
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v\n%s", err, e.Expand(caddyfile))
	}
	for _, w := range warns {
		t.Logf("adapt warning: %s", w.String())
	}
	return cfgJSON
}

// WaitReady waits until the admin endpoint answers.
func (e *Env) WaitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(e.AdminURL() + "/config/")
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("admin endpoint %s never answered", e.AdminURL())
}

// RootPool fetches the ITP root from the admin API.
func (e *Env) RootPool(t testing.TB) (*x509.CertPool, []byte) {
	t.Helper()
	status, body := Do(t, http.DefaultClient, "GET", e.AdminURL()+"/itp/ca/root.crt", "", nil)
	if status != 200 {
		t.Fatalf("root.crt: %d %s", status, body)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(body) {
		t.Fatalf("root.crt is not PEM: %s", body)
	}
	return pool, body
}

// Client returns an HTTPS client trusting only the ITP root, presenting
// cert when it is not nil.
func (e *Env) Client(t testing.TB, roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: roots}
	if cert != nil {
		// send the certificate whatever CAs the server advertises, as
		// curl does: Go's default sends none that the server's list
		// does not name, which would hide foreign certificates
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// Do makes a request and returns the status and body.
func Do(t testing.TB, c *http.Client, method, url, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// Run runs a command in dir and fails the test with its output on error.
func Run(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Need skips the test when a command is missing, unless ITP_REQUIRE_TOOLS
// is set (CI sets it: there a missing tool is a failure, not a skip).
func Need(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("ITP_REQUIRE_TOOLS") != "" {
				t.Fatalf("%s is required (ITP_REQUIRE_TOOLS is set) but not installed", n)
			}
			t.Skipf("%s not installed", n)
		}
	}
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds ./cmd/caddy once per test process and returns its path,
// for tests that need separate processes (restart, kill, cluster).
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "itp-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "caddy")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/caddy")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Process is the built binary running a config in its own process.
type Process struct {
	Cmd *exec.Cmd
	Log *bytes.Buffer
}

// Start runs the binary with a Caddyfile (Env placeholders expanded) and
// waits for its admin endpoint. It is killed when the test ends.
func (e *Env) Start(t testing.TB, caddyfile string) *Process {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(e.Expand(caddyfile)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &syncWriter{w: &log}, &syncWriter{w: &log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{Cmd: cmd, Log: &log}
	t.Cleanup(func() { p.Kill() })
	return p
}

// Kill ends the process with SIGKILL and waits for it.
func (p *Process) Kill() {
	if p.Cmd.ProcessState == nil {
		p.Cmd.Process.Kill()
		p.Cmd.Wait()
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
