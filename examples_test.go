package itp_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/caddy-itp/caddy-itp/internal/itptest"
)

// TestMTLSSUTExample runs examples/mtls-sut/run.sh, the documentation's
// Proxy -> Server steps with openssl s_server as a real mTLS SUT, against
// an in-process platform.
func TestMTLSSUTExample(t *testing.T) {
	itptest.Need(t, "openssl", "curl", "bash")
	env := itptest.NewEnv(t)
	env.Load(t, itptest.Platform("", itpSite))
	sutPort := itptest.FreePorts(t, 1)[0]
	cmd := exec.Command("bash", "examples/mtls-sut/run.sh")
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("ITP_ADMIN=localhost:%d", env.Admin),
		"ITP_SECURE="+env.SecureURL(),
		fmt.Sprintf("SUT_PORT=%d", sutPort),
		"SESSION=example")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run.sh: %v\n%s", err, out)
	}
	for _, want := range []string{
		"HTTP 200",
		"Verify return code: 0 (ok)", // openssl s_server verified the platform's client certificate
		`"check": "Upstream TLS",	    "status": "pass"`,
		`"check": "Client certificate",	    "status": "pass"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
