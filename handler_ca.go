package itp

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(CAHandler{})
	httpcaddyfile.RegisterHandlerDirective("itp_ca", parseCAHandler)
}

// DefaultCAPrefix is where the participant CA endpoints live by default.
const DefaultCAPrefix = "/itp"

// CAHandler is the `itp_ca` handler: the participant-facing CA endpoints.
//
//   - `GET {prefix}/RootCA.crt` answers the ITP root certificate, PEM.
//   - `POST {prefix}/certificates` takes a CSR (the raw PEM body, or a
//     multipart form field `file`) and answers a zip of `client.crt` and
//     `RootCA.crt`. The same key always gets the same certificate back
//     while it is valid, not revoked and not in the last third of its
//     validity.
//
// It also serves the participant pages (see web.go): `GET {prefix}/`, the
// "Download Certificates" page whose form posts to `{prefix}/certificates`
// (a refusal from a browser form is shown on the page), and
// `GET {prefix}/sessions/{id}`, a session's URLs, components and live
// results, with `GET {prefix}/sessions/{id}/results` as the JSON it polls.
// The session id is the capability, as in the original platform; the
// pages change nothing and never show keys, secrets or environment values.
//
// Other requests go to the next handler. Mount it on the secure site; it
// needs no client certificate. Issuance is limited per client address (see
// the app's `issuance` options); to require authentication as well, place
// any Caddy authentication handler (`basic_auth`, `forward_auth`) before
// it — both run earlier in Caddy's directive order.
type CAHandler struct {
	// Prefix is the path under which the endpoints live. Default: "/itp".
	Prefix string `json:"prefix,omitempty"`

	app    *App
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (CAHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.itp_ca",
		New: func() caddy.Module { return new(CAHandler) },
	}
}

// Provision finds the itp app.
func (h *CAHandler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Prefix == "" {
		h.Prefix = DefaultCAPrefix
	}
	h.Prefix = "/" + strings.Trim(h.Prefix, "/")
	if h.Prefix == "/" {
		h.Prefix = ""
	}
	app, err := ctx.App("itp")
	if err != nil {
		return fmt.Errorf("itp_ca: loading the itp app: %w", err)
	}
	h.app = app.(*App)
	return nil
}

// ServeHTTP serves the CA endpoints.
func (h *CAHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	switch r.URL.Path {
	case h.Prefix + "/RootCA.crt":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, "GET, HEAD")
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set("Content-Disposition", `attachment; filename="RootCA.crt"`)
		_, err := w.Write(h.app.Authority().TrustPEM())
		return err
	case h.Prefix + "/certificates":
		if r.Method != http.MethodPost {
			return methodNotAllowed(w, "POST")
		}
		return h.serveSign(w, r)
	}
	if served, err := h.serveWeb(w, r); served {
		return err
	}
	return next.ServeHTTP(w, r)
}

func (h *CAHandler) serveSign(w http.ResponseWriter, r *http.Request) error {
	addr := clientAddr(r)
	if ok, wait := h.app.state.limiter.allow(addr); !ok {
		secs := int(wait/time.Second) + 1
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		msg := fmt.Sprintf("too many certificate requests from %s: try again in %d seconds", addr, secs)
		if wantsHTML(r) {
			return h.serveSignError(w, r, http.StatusTooManyRequests, msg)
		}
		return plainError(w, http.StatusTooManyRequests, msg)
	}
	csrPEM, err := readCSR(w, r)
	if err == nil {
		var zip []byte
		zip, err = h.app.signedBundle(r.Context(), csrPEM, "participant "+addr)
		if err == nil {
			w.Header().Set("Content-Type", "application/zip")
			w.Header().Set("Content-Disposition", `attachment; filename="certificates.zip"`)
			_, err = w.Write(zip)
			return err
		}
	}
	status, msg := statusOf(err)
	if status >= 500 {
		h.logger.Error("signing participant CSR", zap.String("client", addr), zap.Error(err))
		msg = "the certificate could not be issued; the platform operator can see why in the logs"
	} else {
		h.logger.Debug("refused participant CSR", zap.String("client", addr), zap.String("reason", msg))
	}
	if wantsHTML(r) {
		return h.serveSignError(w, r, status, msg)
	}
	return plainError(w, status, msg)
}

// clientAddr is the client's IP as Caddy determined it (honouring
// trusted_proxies), falling back to the connection's remote address.
func clientAddr(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func plainError(w http.ResponseWriter, status int, msg string) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, err := fmt.Fprintln(w, msg)
	return err
}

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return plainError(w, http.StatusMethodNotAllowed, "method not allowed; use "+allow)
}

// parseCAHandler sets up the handler from Caddyfile tokens.
func parseCAHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var handler CAHandler
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return &handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	itp_ca [<matcher>] {
//		prefix <path>
//	}
//
// A path given right after the directive is a request matcher, as for
// every Caddy directive; the endpoints' own location is set by `prefix`.
func (h *CAHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "prefix":
			if !d.AllArgs(&h.Prefix) {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized itp_ca option %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*CAHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*CAHandler)(nil)
	_ caddyfile.Unmarshaler       = (*CAHandler)(nil)
)
