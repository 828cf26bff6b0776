package itp_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/caddy-itp/caddy-itp/internal/itptest"
)

// testOutput is where browser tests write their screenshots (git-ignored).
const testOutput = "testoutput"

// consoleLog collects a page's console errors, uncaught exceptions and
// error log entries.
type consoleLog struct {
	mu      sync.Mutex
	entries []string
}

func (c *consoleLog) add(s string) {
	c.mu.Lock()
	c.entries = append(c.entries, s)
	c.mu.Unlock()
}

// take returns the entries collected so far and forgets them.
func (c *consoleLog) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries
	c.entries = nil
	return e
}

// newBrowser starts headless Chromium with a fresh profile, downloads
// allowed into downloads, and the page's console errors collected.
func newBrowser(t *testing.T, downloads string) (context.Context, *consoleLog) {
	t.Helper()
	itptest.Need(t, "chromium")
	path, _ := exec.LookPath("chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		// the platform's server certificate is from the ITP root, which this
		// fresh profile does not trust, as a participant's browser before
		// it downloads RootCA.crt
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })

	console := &consoleLog{}
	if err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				console.add("console." + string(ev.Type) + ": " + strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			console.add("exception: " + ev.ExceptionDetails.Text + " " + fmt.Sprint(ev.ExceptionDetails.Exception))
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
				console.add(fmt.Sprintf("log %s %s: %s (%s)", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL))
			}
		}
	}); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior:     browser.SetDownloadBehaviorBehaviorAllow,
		DownloadPath: downloads,
	}); err != nil {
		t.Fatalf("allowing downloads: %v", err)
	}
	return ctx, console
}

// runThen runs steps, then last, and returns the value of last.
func runThen[T any](ctx context.Context, steps chromedp.Action[chromedp.Void], last chromedp.Action[T]) (T, error) {
	if err := chromedp.Do(ctx, steps); err != nil {
		var zero T
		return zero, err
	}
	return chromedp.Run(ctx, last)
}

// noConsoleErrors fails the test for console errors, except those that
// allowed says are expected.
func noConsoleErrors(t *testing.T, console *consoleLog, step string, allowed func(string) bool) {
	t.Helper()
	for _, e := range console.take() {
		if allowed == nil || !allowed(e) {
			t.Errorf("%s: console: %s", step, e)
		}
	}
}

// screenshot writes a full-page PNG under testoutput/ and returns its path.
func screenshot(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(testOutput, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(testOutput, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitFile waits until a download is complete in dir.
func waitFile(t *testing.T, path string) []byte {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile(path)
		if err == nil && len(data) > 0 {
			if _, err := os.Stat(path + ".crdownload"); err != nil {
				return data
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	t.Fatalf("no download at %s (folder holds %v)", path, entries)
	return nil
}

// clientCertificate gets an ITP client certificate for a fresh key
// through the admin API.

// TestBrowserParticipant drives the participant pages in headless
// Chromium: a CSR uploaded through the form gives the zip, a bad one shows
// its error on the page, and the session page shows its URLs and gets new
// result rows without a reload. The pages log no console error.
func TestBrowserParticipant(t *testing.T) {
	itptest.Need(t, "chromium")
	start := time.Now()
	env := itptest.NewEnv(t)
	env.Load(t, webPlatform())
	downloads := t.TempDir()
	ctx, console := newBrowser(t, downloads)
	dir := t.TempDir()

	// the "Download Certificates" page
	base := env.SecureURL() + "/itp/"
	h1, err := runThen(ctx, chromedp.Steps(
		chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.CSS("#csr-file")),
	), chromedp.Text(chromedp.CSS("h1")))
	if err != nil {
		t.Fatalf("index page: %v", err)
	}
	if h1 != "Download Certificates" {
		t.Errorf("h1 %q", h1)
	}
	screenshot(t, ctx, "download-certificates.png")
	noConsoleErrors(t, console, "index page", nil)

	// a good CSR through the form: the browser downloads the zip
	good := filepath.Join(dir, "client.csr")
	os.WriteFile(good, newCSR(t, "browser-participant"), 0o600)
	if err := chromedp.Do(ctx,
		chromedp.SetUploadFiles(chromedp.CSS("#csr-file"), []string{good}),
		chromedp.Click(chromedp.CSS("form.upload button[type=submit]")),
	); err != nil {
		t.Fatalf("uploading: %v", err)
	}
	zipData := waitFile(t, filepath.Join(downloads, "certificates.zip"))
	clientCrt, _ := unzipBundle(t, zipData)
	if block, _ := pem.Decode(clientCrt); block == nil {
		t.Errorf("client.crt is not PEM")
	} else if cert, err := x509.ParseCertificate(block.Bytes); err != nil || cert.Subject.CommonName != "browser-participant" {
		t.Errorf("client.crt: %v %v", err, cert.Subject)
	}
	noConsoleErrors(t, console, "upload", nil)

	// a bad CSR: the error on the page, status 400
	bad := filepath.Join(dir, "bad.csr")
	os.WriteFile(bad, []byte("this is not a CSR\n"), 0o600)
	msg, err := runThen(ctx, chromedp.Steps(
		chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.CSS("#csr-file")),
		chromedp.SetUploadFiles(chromedp.CSS("#csr-file"), []string{bad}),
		chromedp.Click(chromedp.CSS("form.upload button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#csr-error")),
	), chromedp.Text(chromedp.CSS("#csr-error")))
	if err != nil {
		t.Fatalf("bad CSR: %v", err)
	}
	if !strings.Contains(msg, "The CSR was not accepted") || !strings.Contains(msg, "PEM") {
		t.Errorf("error shown: %q", msg)
	}
	screenshot(t, ctx, "bad-csr.png")
	// the 400 of the refused upload is the only expected error
	noConsoleErrors(t, console, "bad CSR", func(e string) bool {
		return strings.Contains(e, "status of 400") && strings.Contains(e, "/itp/certificates")
	})

	// the session page of a session with a SUT, a simulated hub and an
	// unencrypted upstream leg
	sess := `{"id": "p2p-demo", "name": "P2P transfer demo", "components": [
		{"slug": "payer"},
		{"slug": "hub", "simulated": true},
		{"slug": "payee", "base_url": "http://127.0.0.1:9/api"}]}`
	if status, out := itptest.Do(t, http.DefaultClient, "POST", env.AdminURL()+"/itp/sessions", "application/json", []byte(sess)); status != 201 {
		t.Fatalf("creating the session: %d %s", status, out)
	}
	page := env.SecureURL() + "/itp/sessions/p2p-demo"
	urls, err := runThen(ctx, chromedp.Steps(
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS("table.urls")),
	), chromedp.Text(chromedp.CSS("table.urls")))
	if err != nil {
		t.Fatalf("session page: %v", err)
	}
	for _, want := range []string{
		fmt.Sprintf("https://localhost:%d/testing/payer/hub/p2p-demo", env.Secure),
		fmt.Sprintf("http://localhost:%d/testing-insecure/payer/hub/p2p-demo", env.Insecure),
	} {
		if !strings.Contains(urls, want) {
			t.Errorf("the URLs table lacks %s:\n%s", want, urls)
		}
	}
	comps, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("table.components")))
	comps = strings.ToLower(comps) // badges are upper-cased by CSS
	if !strings.Contains(comps, "simulated") || !strings.Contains(comps, "not encrypted") {
		t.Errorf("the components table: %s", comps)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.itpMarker = 42`)); err != nil {
		t.Fatal(err)
	}

	// requests: plain HTTP with curl (or Go), then mTLS with an ITP
	// certificate; their rows appear without a reload
	insecure := fmt.Sprintf("%s/testing-insecure/payer/hub/p2p-demo/transfers?amount=10", env.InsecureURL())
	if _, err := exec.LookPath("curl"); err == nil {
		itptest.Run(t, dir, "curl", "-sS", "-o", "/dev/null", insecure)
	} else {
		itptest.Do(t, http.DefaultClient, "GET", insecure, "", nil)
	}
	waitRows := func(n int) int {
		t.Helper()
		var got int
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			got, err = chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#results tr[data-id]').length`))
			if err != nil {
				t.Fatal(err)
			}
			if got >= n {
				return got
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("%d result rows after 15s, want %d", got, n)
		return got
	}
	waitRows(1)
	roots, _ := env.RootPool(t)
	pair := firstOf(participant(t, env, "payer-fsp"))
	status, body := itptest.Do(t, env.Client(t, roots, &pair), "POST", env.SecureURL()+"/testing/payer/hub/p2p-demo/transfers", "application/json", []byte(`{"amount": "10"}`))
	if status != 200 {
		t.Fatalf("mTLS request: %d %s", status, body)
	}
	rows := waitRows(3)
	marker, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.itpMarker || 0`))
	if err != nil || marker != 42 {
		t.Errorf("the page was reloaded (marker %d, %v)", marker, err)
	}
	first, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#results tr[data-id]")))
	first = strings.ToLower(first)
	if !strings.Contains(first, "pass") || !strings.Contains(first, "post /testing/") {
		t.Errorf("the newest row is not first: %q", first)
	}
	all, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#results")))
	all = strings.ToLower(all)
	for _, want := range []string{"was encrypted?", "client certificate", "fail", "pass", "payer → hub"} {
		if !strings.Contains(all, want) {
			t.Errorf("the live rows lack %q:\n%s", want, all)
		}
	}
	// expected/actual on demand: open the details of a failure
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#results tr.fail details summary"))); err != nil {
		t.Errorf("opening details: %v", err)
	}
	detail, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#results tr.fail details")))
	if !strings.Contains(detail, "Expected") || !strings.Contains(detail, "mtls") {
		t.Errorf("details: %q", detail)
	}
	shot := screenshot(t, ctx, "session-page.png")
	if os.Getenv("ITP_UPDATE_SCREENSHOTS") != "" {
		data, _ := os.ReadFile(shot)
		if err := os.WriteFile(filepath.Join("docs", "session-page.png"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	noConsoleErrors(t, console, "session page", nil)

	// the filter form works in the browser too (a GET, no JavaScript
	// needed): only failures
	failOnly, err := runThen(ctx, chromedp.Steps(
		chromedp.Navigate(page+"?status=fail"),
		chromedp.WaitVisible(chromedp.CSS("#results")),
	), chromedp.Evaluate[int](`document.querySelectorAll('#results tr.pass').length`))
	if err != nil || failOnly != 0 {
		t.Errorf("status=fail shows %d passes (%v)", failOnly, err)
	}
	// and it shows the failures: no rows at all would pass the check above
	fails, err := runThen(ctx, chromedp.Steps(), chromedp.Evaluate[int](`document.querySelectorAll('#results tr.fail').length`))
	if err != nil || fails == 0 {
		t.Errorf("status=fail shows no failures (%v)", err)
	}
	noConsoleErrors(t, console, "filtered session page", nil)
	t.Logf("browser test: %d live rows, %s in all", rows, time.Since(start).Round(time.Millisecond))
}
