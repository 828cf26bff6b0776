package itp_test

import (
	"os"
	"testing"

	"github.com/caddy-itp/caddy-itp/internal/itptest"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func TestMain(m *testing.M) {
	cleanup := itptest.RedirectXDG()
	code := m.Run()
	cleanup()
	os.Exit(code)
}
