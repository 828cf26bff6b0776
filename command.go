package itp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// Exit codes of the `caddy itp` commands besides 0, which means the command
// did what was asked (keycheck: the keys match).
const (
	// exitFailure: the operation failed (the admin API refused it, a
	// session does not exist, the admin API cannot be reached); keycheck:
	// the keys do not match.
	exitFailure = 1
	// exitUsage: wrong flags or arguments, or an input file that cannot be
	// read (keycheck: also a key the platform cannot parse).
	exitUsage = 2
	// exitUnavailable: keycheck only, the admin API could not be reached
	// or failed, so nothing was compared.
	exitUnavailable = 3
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "itp",
		Usage: "<command> [flags]",
		Short: "Manages the Interoperability Test Platform: sessions, results, certificates",
		Long: `
Manages a running caddy-itp platform through Caddy's admin API (the
/itp/ endpoints): test sessions and their results, participant
certificates, the platform's upstream CSR and key pair checks.

The admin API is found as for 'caddy reload' and 'caddy trust': --address,
else the admin address of the config given with --config, else the
CADDY_ADMIN environment variable, else ` + caddy.DefaultAdminListen + `.

Exit status: 0 on success, 1 when the operation failed (including an
unknown session and an admin API that cannot be reached), 2 on a usage
error. 'caddy itp keycheck' has its own: 0 match, 1 mismatch, 2 usage
error or unreadable key, 3 admin API unavailable.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.PersistentFlags().String("address", "", "Address of the admin API (default: from --config, CADDY_ADMIN or "+caddy.DefaultAdminListen+")")
			cmd.PersistentFlags().StringP("config", "c", "", "Configuration file to read the admin address from (if --address is not used)")
			cmd.PersistentFlags().StringP("adapter", "a", "", "Name of the config adapter for --config")
			cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
				return usageError(c, err.Error())
			})
			cmd.RunE = groupRunE
			cmd.AddCommand(itpSessionCommand(), itpResultsCommand(), itpSignCommand(), itpCSRCommand(), itpKeycheckCommand())
		},
	})
}

// cliError is an error with the exit status it ends the command with.
type cliError struct {
	code int
	msg  string
}

func (e *cliError) Error() string { return e.msg }

// usageError reports a usage error of cmd: it prints the message and a
// pointer to the command's help and exits with status 2. It never returns.
func usageError(cmd *cobra.Command, msg string) error {
	fmt.Fprintf(os.Stderr, "%s: %s\nRun '%s --help' for usage.\n", cmd.CommandPath(), msg, cmd.CommandPath())
	os.Exit(exitUsage)
	return nil
}

// groupRunE runs a command that only groups subcommands: without one it
// prints the help, with an unknown one it is a usage error.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError(cmd, fmt.Sprintf("unknown command %q", args[0]))
	}
	cmd.SetOut(os.Stderr)
	_ = cmd.Help()
	os.Exit(exitUsage)
	return nil
}

// run wraps a command's function: it checks the number of arguments,
// then runs fn and turns its error into a message on stderr and the exit
// status (a *cliError's, else 1). The messages start with the command's
// path, as Unix tools do.
func run(nargs int, argsUsage string, fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != nargs {
			if nargs == 0 {
				return usageError(cmd, fmt.Sprintf("unexpected argument %q", args[0]))
			}
			return usageError(cmd, fmt.Sprintf("expected %s, got %d arguments", argsUsage, len(args)))
		}
		err := fn(cmd, args)
		if err == nil {
			return nil
		}
		code := exitFailure
		var ce *cliError
		if errors.As(err, &ce) {
			code = ce.code
		}
		if code == exitUsage {
			return usageError(cmd, err.Error())
		}
		if err.Error() != "" {
			fmt.Fprintf(os.Stderr, "%s: %v\n", cmd.CommandPath(), err)
		}
		os.Exit(code)
		return nil
	}
}

// adminClient talks to Caddy's admin API.
type adminClient struct {
	addr    string
	network string
	dial    string
	origin  string
	http    *http.Client
}

// newAdminClient finds the admin address from the persistent flags.
func newAdminClient(cmd *cobra.Command) (*adminClient, error) {
	fl := caddycmd.Flags{FlagSet: cmd.Flags()}
	addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, fl.String("config"), fl.String("adapter"))
	if err != nil {
		return nil, &cliError{exitUsage, fmt.Sprintf("finding the admin API address: %v", err)}
	}
	na, err := caddy.ParseNetworkAddress(addr)
	if err != nil || na.PortRangeSize() > 1 {
		return nil, &cliError{exitUsage, fmt.Sprintf("invalid admin address %q", addr)}
	}
	c := &adminClient{addr: addr, network: na.Network, dial: na.JoinHostPort(0), origin: "http://" + na.JoinHostPort(0)}
	if na.IsUnixNetwork() {
		// a unix socket address may carry permission bits after a '|'
		c.dial, _, _ = strings.Cut(na.Host, "|")
		c.origin = "http://127.0.0.1"
	}
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, c.network, c.dial)
		},
	}}
	return c, nil
}

// do makes an admin request and returns the response body of a 2xx
// answer. Other answers become errors with the API's message; a
// connection failure says that the admin API cannot be reached and how to
// point at it.
func (c *adminClient) do(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.origin+path, rd)
	if err != nil {
		return nil, err
	}
	if c.network != "unix" {
		req.Header.Set("Origin", c.origin)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &unreachableError{addr: c.addr, err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the admin API's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		return nil, &apiStatusError{status: resp.StatusCode, msg: apiMessage(data)}
	}
	return data, nil
}

// getJSON GETs path and decodes the JSON answer into v.
func (c *adminClient) getJSON(ctx context.Context, path string, v any) error {
	data, err := c.do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("the admin API answered something that is not the expected JSON: %w", err)
	}
	return nil
}

// unreachableError is a failure to reach the admin API at all.
type unreachableError struct {
	addr string
	err  error
}

func (e *unreachableError) Error() string {
	var oe *net.OpError
	reason := e.err.Error()
	if errors.As(e.err, &oe) && oe.Err != nil {
		reason = oe.Err.Error()
	}
	return fmt.Sprintf("cannot reach Caddy's admin API at %s: %s (is Caddy running with the itp plugin? point at it with --address)", e.addr, reason)
}

func (e *unreachableError) Unwrap() error { return e.err }

// apiStatusError is a non-2xx answer of the admin API.
type apiStatusError struct {
	status int
	msg    string
}

func (e *apiStatusError) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.msg, e.status)
}

// apiMessage extracts the message of an admin API error body.
func apiMessage(data []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return e.Error
	}
	if s := strings.TrimSpace(string(data)); s != "" {
		return s
	}
	return "the admin API refused the request"
}

// readInput reads a file named on the command line, "-" being stdin.
func readInput(name, what string) ([]byte, error) {
	var data []byte
	var err error
	if name == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, &cliError{exitUsage, fmt.Sprintf("reading %s: %v", what, err)}
	}
	return data, nil
}

// writeOutput writes data to a file, "-" or "" being stdout. Files are
// written whole or not at all.
func writeOutput(name string, data []byte, perm os.FileMode) error {
	if name == "" || name == "-" {
		_, err := os.Stdout.Write(data)
		return err
	}
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// newTable returns a writer that aligns tab-separated columns.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// interruptible returns a context cancelled by SIGINT or SIGTERM.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// pathID escapes an id for an admin API path.
func pathID(id string) string { return url.PathEscape(id) }
