package itp

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/caddy-itp/caddy-itp/proxy"
	"github.com/caddy-itp/caddy-itp/session"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("itp", parseHandler)
}

// Handler is the `itp` handler: the testing routes of the platform.
//
//	https://HOST/testing/{source}/{target}/{session}/{path...}
//	http://HOST/testing-insecure/{source}/{target}/{session}/{path...}
//	https://HOST/testing-group/{source}/{target}/{group}/{path...}
//	http://HOST/testing-insecure-group/{source}/{target}/{group}/{path...}
//
// For each request it finds the session and its components, judges the
// client leg from the real TLS state (never from the path alone: a
// verified chain to the ITP root with clientAuth, not expired, not revoked,
// allowed for the source component), removes client-identity headers the
// client sent, and forwards the request to the target's base_url joined
// with {path} and the query, over the target's own upstream identity (TLS
// trust, client certificate, or plain HTTP), with Caddy's reverse proxy.
// Requests to a simulated target go to the next handler of the route
// instead, with the forwarded path and the placeholders
// {http.itp.session}, {http.itp.source} and {http.itp.target}. Every check
// that applies is recorded as a result of the session and logged.
//
// Requests outside the testing routes go to the next handler.
type Handler struct {
	app    *App
	rp     *reverseproxy.Handler
	logger *zap.Logger
	checks *checkRecorder
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.itp",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision finds the itp app and sets up the embedded reverse proxy,
// whose transport is the app's pool of upstream identities.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	app, err := ctx.App("itp")
	if err != nil {
		return fmt.Errorf("itp handler: loading the itp app: %w", err)
	}
	h.app = app.(*App)
	h.checks, err = newCheckRecorder(ctx, h.logger, h.app.state.results, h.app.state.checksCounter)
	if err != nil {
		return err
	}
	h.rp = &reverseproxy.Handler{
		// resolved per request to the target's host:port; the host name
		// (not an IP) gives the SNI and the name the SUT certificate is
		// verified against
		Upstreams: reverseproxy.UpstreamPool{{Dial: "{http.itp.upstream}"}},
		Transport: h.app.state.upstreams,
	}
	if err := h.rp.Provision(ctx); err != nil {
		return fmt.Errorf("itp handler: setting up the reverse proxy: %w", err)
	}
	return nil
}

// Cleanup releases the embedded reverse proxy.
func (h *Handler) Cleanup() error {
	if h.rp != nil {
		return h.rp.Cleanup()
	}
	return nil
}

// ServeHTTP serves the testing routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	route, err := proxy.ParseRoute(r.URL.EscapedPath())
	if errors.Is(err, proxy.ErrNotTestingRoute) {
		return next.ServeHTTP(w, r)
	}
	if err != nil {
		return plainError(w, http.StatusNotFound, err.Error())
	}
	sess, status, msg := h.lookup(route)
	if sess == nil {
		return plainError(w, status, msg)
	}
	source, target := sess.Components[route.Source], sess.Components[route.Target]

	ex := newExchange()
	ex.session, ex.source, ex.target = sess.Session.ID, route.Source, route.Target
	ex.method, ex.uri = r.Method, r.RequestURI
	defer h.checks.done(ex)
	verdict := h.app.state.judge.Judge(r.TLS, route.Source, source.AllowedClients)
	if verdict.Present {
		ex.cert = &clientCertInfo{Subject: verdict.Subject, Serial: verdict.Serial, Issuer: verdict.Issuer}
	}
	// what the handlers after this one (simulated components, the
	// reverse proxy's placeholders) know about the exchange
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.itp.session", ex.session)
	repl.Set("http.itp.source", ex.source)
	repl.Set("http.itp.target", ex.target)

	// the client leg
	switch {
	case verdict.OK:
		h.checks.record(ex, checkEncrypted, true, mtlsTrue, mtlsTrue, msgMTLS)
		h.checks.record(ex, checkClientCert, true, certValid, certValid, msgClientCertValid)
	case !route.Insecure && r.TLS != nil:
		// the secure route over TLS without a valid certificate: refused
		// with a readable answer, and recorded
		h.checks.record(ex, checkClientCert, false, certValid, certActual(verdict.Present), verdict.Reason)
		h.checks.record(ex, checkEncrypted, false, mtlsTrue, mtlsFalse, "no valid client certificate: "+verdict.Reason)
		return plainError(w, verdict.Status, verdict.Reason)
	default:
		// an insecure route, or the secure path over plain HTTP: it works,
		// and the failure is recorded as the documentation promises
		msg := "plain HTTP was used where mutual TLS was expected"
		if r.TLS != nil {
			msg = "TLS without a valid client certificate was used where mutual TLS was expected: " + verdict.Reason
		}
		h.checks.record(ex, checkEncrypted, false, mtlsTrue, mtlsFalse, msg)
	}

	proxy.StripClientIdentityHeaders(r.Header)

	// the session's JWS rules for this source and target (jwsrules.go)
	if answered, err := h.applyJWSRequest(w, r, sess, route, ex); answered {
		return err
	}
	if hasJWSRules(sess, route, session.DirectionResponse) {
		return h.serveJWSResponse(w, r, sess, route, ex, func(w http.ResponseWriter) error {
			if target.Simulated {
				return h.serveSimulated(w, r, next, route, ex)
			}
			return h.serveUpstream(w, r, next, route, target, ex)
		})
	}

	if target.Simulated {
		return h.serveSimulated(w, r, next, route, ex)
	}
	return h.serveUpstream(w, r, next, route, target, ex)
}

// lookup finds the session of a route, or the status and message to
// answer with.
func (h *Handler) lookup(route proxy.Route) (*session.Resolved, int, string) {
	reg := h.app.state.registry
	var (
		sess *session.Resolved
		ok   bool
	)
	if route.Group {
		if sess, ok = reg.GroupDefault(route.ID); !ok {
			if reg.HasGroup(route.ID) {
				return nil, http.StatusNotFound, fmt.Sprintf("group %q has no default session", route.ID)
			}
			return nil, http.StatusNotFound, fmt.Sprintf("unknown group %q", route.ID)
		}
	} else if sess, ok = reg.Session(route.ID); !ok {
		return nil, http.StatusNotFound, fmt.Sprintf("unknown session %q", route.ID)
	}
	if sess.Expired(timeNow()) {
		return nil, http.StatusGone, fmt.Sprintf("session %q expired on %s", sess.Session.ID, sess.Expires.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	if sess.Components[route.Source] == nil {
		return nil, http.StatusNotFound, fmt.Sprintf("session %q has no component %q (the source)", sess.Session.ID, route.Source)
	}
	if sess.Components[route.Target] == nil {
		return nil, http.StatusNotFound, fmt.Sprintf("session %q has no component %q (the target)", sess.Session.ID, route.Target)
	}
	return sess, 0, ""
}

// serveSimulated hands the request to the next handler with the forwarded
// path and the itp placeholders.
func (h *Handler) serveSimulated(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, route proxy.Route, ex *exchange) error {
	path, rawPath, err := proxy.JoinPath(&url.URL{}, route.Rest)
	if err != nil {
		platformAnswer(w)
		return plainError(w, http.StatusBadRequest, err.Error())
	}
	r.URL.Path, r.URL.RawPath = path, rawPath
	ex.forwarded = r.URL.RequestURI()
	return next.ServeHTTP(w, r)
}

// serveUpstream forwards the request to the target SUT over its upstream
// identity and records the upstream checks.
func (h *Handler) serveUpstream(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, route proxy.Route, target *session.ResolvedComponent, ex *exchange) error {
	base := target.BaseURL
	if base == nil {
		platformAnswer(w)
		return plainError(w, http.StatusNotFound, fmt.Sprintf("component %q has no base_url, so it cannot receive requests", route.Target))
	}
	path, rawPath, err := proxy.JoinPath(base, route.Rest)
	if err != nil {
		platformAnswer(w)
		return plainError(w, http.StatusBadRequest, err.Error())
	}
	r.URL.Path, r.URL.RawPath = path, rawPath
	r.Host = base.Host
	ex.forwarded = r.URL.RequestURI()

	if !target.ClientCertNotAfter.IsZero() && timeNow().After(target.ClientCertNotAfter) {
		// refused at upload, so it expired since: say so before the SUT
		// refuses it
		h.checks.record(ex, checkUpstreamCertificate, false, nil, nil,
			"the client certificate uploaded for component "+route.Target+" expired on "+target.ClientCertNotAfter.UTC().Format(time.RFC3339)+"; upload a new one")
	}
	if target.UseEncryption {
		h.checks.record(ex, checkUpstreamEncryption, true, encryptedTrue, encryptedTrue, msgUpstreamEncrypted)
	} else {
		h.checks.record(ex, checkUpstreamEncryption, false, encryptedTrue, encryptedFalse, msgUpstreamPlain)
	}

	// one identity per resolved component, so the pool's lookup finds
	// its transport by pointer
	id := target.Derived(func() any {
		id := &proxy.Identity{
			Key:           target.IdentityKey,
			UseEncryption: target.UseEncryption,
			RootCAs:       target.CAPool,
			ClientChain:   target.ClientChain,
		}
		if len(target.ClientChain) > 0 {
			id.ClientKey = h.app.state.upstreamKey
		}
		return id
	}).(*proxy.Identity)
	r = r.WithContext(proxy.WithIdentity(r.Context(), id))
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.itp.upstream", proxy.HostPort(base))

	err = h.rp.ServeHTTP(w, r, next)
	if err == nil {
		if target.UseEncryption {
			h.checks.record(ex, checkUpstreamTLS, true, nil, nil, msgUpstreamTLS)
		}
		return nil
	}
	check, msg := proxy.ClassifyUpstreamError(err, route.Target, base)
	platformAnswer(w)
	h.checks.record(ex, check, false, nil, nil, msg)
	status := http.StatusBadGateway
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode == http.StatusGatewayTimeout {
		status = http.StatusGatewayTimeout
	}
	return plainError(w, status, msg)
}

// parseHandler sets up the handler from Caddyfile tokens.
func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var handler Handler
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return &handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	itp
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("itp takes no options")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
