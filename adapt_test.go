package itp_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

var update = flag.Bool("update", false, "rewrite the golden adapt files")

// TestCaddyfileAdapt adapts each testdata/adapt/*.caddyfile and compares
// the JSON with the part after the "----------" line, as Caddy's own
// caddyfile_adapt tests do. Run with -update to rewrite them.
func TestCaddyfileAdapt(t *testing.T) {
	files, _ := filepath.Glob("testdata/adapt/*.caddyfile")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			input, want, _ := strings.Cut(string(data), "\n----------\n")
			if filepath.Base(f) == "quickstart.caddyfile" {
				// the golden file is the quickstart itself, not a copy that
				// could drift from it
				example, err := os.ReadFile("examples/quickstart/Caddyfile")
				if err != nil {
					t.Fatal(err)
				}
				if strings.TrimSpace(input) != strings.TrimSpace(string(example)) {
					t.Fatal("testdata/adapt/quickstart.caddyfile differs from examples/quickstart/Caddyfile: copy it over and run with -update")
				}
			}
			out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
			if err != nil {
				t.Fatalf("adapting: %v", err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, out, "", "\t"); err != nil {
				t.Fatal(err)
			}
			got := pretty.String() + "\n"
			if *update {
				os.WriteFile(f, []byte(input+"\n----------\n"+got), 0o644)
				return
			}
			if got != want {
				t.Fatalf("adapted JSON differs from the golden file (run go test -run TestCaddyfileAdapt -update to accept):\n%s", got)
			}
		})
	}
}

// TestCaddyfileErrors checks that bad Caddyfile input is refused with a
// message naming the problem.
func TestCaddyfileErrors(t *testing.T) {
	for input, want := range map[string]string{
		"{\n\titp {\n\t\tbogus 1\n\t}\n}\n":                                `unrecognized itp option "bogus"`,
		"{\n\titp {\n\t\tca {\n\t\t\timport_cert a b\n\t\t}\n\t}\n}\n":     "wrong argument count",
		"{\n\titp {\n\t\tissuance {\n\t\t\tmax_records x\n\t\t}\n\t}\n}\n": "expected a whole number",
		":80 {\n\titp_ca {\n\t\tprefixx /a\n\t}\n}\n":                      `unrecognized itp_ca option "prefixx"`,
	} {
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", input, err, want)
		}
	}
}
