package itp

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-itp/caddy-itp/jws"
	"github.com/caddy-itp/caddy-itp/session"
)

func init() {
	caddy.RegisterModule(JWSHandler{})
	httpcaddyfile.RegisterHandlerDirective("itp_jws", parseJWSHandler)
}

// JWSHandler is the `itp_jws` handler: JWS verification or signing on any
// Caddy route, without sessions — a JWS gateway in front of an API, or
// behind it.
//
// In mode `verify` it checks the signature carried in a header of the
// request (direction `request`, before the handlers after it see it) or
// of the response the handlers after it produce (direction `response`,
// e.g. what reverse_proxy received). The outcome is logged (logger
// http.handlers.itp_jws: failures at WARN, passes at DEBUG) and set in the
// placeholders {http.itp_jws.status} (`pass` or `fail`) and
// {http.itp_jws.reason}; by default the message goes on either way. With
// `enforce`, a request that fails is answered 401 and a response that
// fails is replaced by a 502, both with a JSON body {"error": "..."}.
//
// In mode `sign` it signs the request before the handlers after it (so
// itp_jws before reverse_proxy signs what goes upstream) or the response
// they produce; {http.itp_jws.status} is then `signed` (or `fail` when the
// message could not be signed: the request is answered 400 and the
// response replaced by a 502). The signature covers exactly the bytes
// sent: in the mojaloop format a JSON body is re-serialised the way
// Mojaloop's validator does, and Content-Length updated.
//
// The algorithm is fixed by the configuration and never taken from the
// token. Verification is over the raw body bytes, which are buffered up to
// max_body: a larger request is answered 413, a larger response replaced
// by a 502. Only the direction the handler works on is buffered.
//
// For a request, the mojaloop format compares the signed FSPIOP-URI and
// FSPIOP-HTTP-Method with the request's path and query as this handler
// sees them (after any rewrite or handle_path before it) and its method;
// when signing, those headers are set from the same values. For a
// response in the mojaloop format they are not compared, and when signing
// they are those of the request answered (and a missing FSPIOP-Source is
// taken from the request's FSPIOP-Destination).
type JWSHandler struct {
	// Mode is "verify" or "sign". Default: "verify".
	Mode string `json:"mode,omitempty"`

	// Direction is "request" (the request, before the handlers after
	// this one) or "response" (the response they produce). Default:
	// "request".
	Direction string `json:"direction,omitempty"`

	// Format is the wire format of the signature header: "mojaloop"
	// ({"protectedHeader": ..., "signature": ...}, the body is the
	// payload), "compact" (a full compact JWS whose payload must equal the
	// body) or "detached" (header..signature with the body as payload,
	// RFC 7515 appendix F; RFC 7797 unencoded when its header says
	// b64 false). Required.
	Format string `json:"format,omitempty"`

	// Alg is the algorithm: RS256, RS384, RS512, PS256, PS384, PS512,
	// ES256, ES384, ES512, EdDSA, or HS256, HS384, HS512 (with Secret).
	// A token naming another algorithm is refused. Required.
	Alg string `json:"alg,omitempty"`

	// Header is the HTTP header carrying the signature. Default:
	// "FSPIOP-Signature" in the mojaloop format, "x-jws-signature" in the
	// detached format; required in the compact format.
	Header string `json:"header,omitempty"`

	// PublicKey is the PEM public key (or certificate) that verifies
	// signatures. Placeholders known at provisioning are replaced, so
	// "{env.PAYER_PUBLIC_KEY}" and "{file./etc/keys/payer.pem}" work.
	// Required to verify with every algorithm but HS*; optional when
	// signing, and then it must match PrivateKey.
	PublicKey string `json:"public_key,omitempty"`

	// PublicKeyFile is a file holding PublicKey (its name may hold
	// placeholders).
	PublicKeyFile string `json:"public_key_file,omitempty"`

	// PrivateKey is the PEM private key (PKCS #8, PKCS #1 or SEC 1) that
	// signs, with placeholders replaced as for PublicKey. Required to sign
	// with every algorithm but HS*.
	PrivateKey string `json:"private_key,omitempty"`

	// PrivateKeyFile is a file holding PrivateKey (its name may hold
	// placeholders).
	PrivateKeyFile string `json:"private_key_file,omitempty"`

	// Secret is the shared key of HS256, HS384 and HS512, at least as
	// long as the hash output, with placeholders replaced as for
	// PublicKey. It is used with HS* only, and HS* only with it.
	Secret string `json:"secret,omitempty"`

	// ProtectedHeaders names HTTP headers that must be signed whenever
	// they are present on the message; when signing, those present are
	// put in the protected header.
	ProtectedHeaders []string `json:"protected_headers,omitempty"`

	// Crit names extra critical header parameters understood (beyond
	// b64), each mapped to the value to expect ("" accepts any value),
	// e.g. Open Banking's "http://openbanking.org.uk/iat".
	Crit map[string]string `json:"crit,omitempty"`

	// Unencoded makes signing in the detached format use RFC 7797's
	// unencoded payload (b64 false, crit ["b64"]), as Open Banking does.
	Unencoded bool `json:"unencoded,omitempty"`

	// Enforce refuses a message that fails verification: a request is
	// answered 401, a response replaced by a 502, with a JSON error.
	// Default: false (the failure is logged and the message goes on).
	Enforce bool `json:"enforce,omitempty"`

	// MaxBody is the most body bytes buffered to verify or sign. Default:
	// 1 MiB (1048576).
	MaxBody int64 `json:"max_body,omitempty"`

	op     *jwsOp
	sign   bool
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (JWSHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.itp_jws",
		New: func() caddy.Module { return new(JWSHandler) },
	}
}

// Provision validates the configuration, resolves placeholders and key
// files, parses the keys (checking that a private key matches its public
// key) and builds the verifier or signer.
func (h *JWSHandler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	switch h.Mode {
	case "", session.ModeVerify:
	case session.ModeSign:
		h.sign = true
	default:
		return fmt.Errorf("itp_jws: mode: must be %q or %q, not %q", session.ModeVerify, session.ModeSign, h.Mode)
	}
	switch h.Direction {
	case "", session.DirectionRequest, session.DirectionResponse:
	default:
		return fmt.Errorf("itp_jws: direction: must be %q or %q, not %q", session.DirectionRequest, session.DirectionResponse, h.Direction)
	}
	switch jws.Format(h.Format) {
	case jws.FormatMojaloop, jws.FormatCompact, jws.FormatDetached:
	case "":
		return fmt.Errorf("itp_jws: format: required (%q, %q or %q)", jws.FormatMojaloop, jws.FormatCompact, jws.FormatDetached)
	default:
		return fmt.Errorf("itp_jws: format: must be %q, %q or %q, not %q", jws.FormatMojaloop, jws.FormatCompact, jws.FormatDetached, h.Format)
	}
	if h.Alg == "" {
		return fmt.Errorf("itp_jws: alg: required (one of %s)", strings.Join(jws.Algorithms(), ", "))
	}
	header := h.Header
	if header == "" {
		switch jws.Format(h.Format) {
		case jws.FormatMojaloop:
			header = "FSPIOP-Signature"
		case jws.FormatDetached:
			header = "x-jws-signature"
		default:
			return fmt.Errorf("itp_jws: header: required in the compact format")
		}
	}
	if h.Enforce && h.sign {
		return fmt.Errorf("itp_jws: enforce: applies to mode verify only")
	}
	if h.MaxBody < 0 {
		return fmt.Errorf("itp_jws: max_body: must not be negative")
	}
	if h.MaxBody == 0 {
		h.MaxBody = DefaultJWSMaxBody
	}
	if h.Unencoded && (!h.sign || jws.Format(h.Format) != jws.FormatDetached) {
		return fmt.Errorf("itp_jws: unencoded: applies to signing in the detached format only")
	}

	repl := caddy.NewReplacer()
	pub, err := keyText(repl, "public_key", h.PublicKey, h.PublicKeyFile)
	if err != nil {
		return err
	}
	priv, err := keyText(repl, "private_key", h.PrivateKey, h.PrivateKeyFile)
	if err != nil {
		return err
	}
	secret, err := keyText(repl, "secret", h.Secret, "")
	if err != nil {
		return err
	}
	if h.sign && priv == "" && secret == "" {
		return fmt.Errorf("itp_jws: private_key: required to sign (or secret for HS*)")
	}
	if !h.sign && pub == "" && secret == "" {
		return fmt.Errorf("itp_jws: public_key: required to verify (or secret for HS*)")
	}
	h.op, err = compileJWS(jwsSpec{
		Sign:             h.sign,
		Format:           h.Format,
		Alg:              h.Alg,
		Header:           header,
		PublicKey:        pub,
		PrivateKey:       priv,
		Secret:           secret,
		ProtectedHeaders: h.ProtectedHeaders,
		Crit:             h.Crit,
		Unencoded:        h.Unencoded,
	})
	if err != nil {
		return fmt.Errorf("itp_jws: %w", err)
	}
	return nil
}

// keyText is a key field's text: inline (placeholders replaced) or read
// from a file (its name's placeholders replaced), not both.
func keyText(repl *caddy.Replacer, field, inline, file string) (string, error) {
	if inline != "" && file != "" {
		return "", fmt.Errorf("itp_jws: %s and %s_file: give one, not both", field, field)
	}
	if file != "" {
		name, err := repl.ReplaceOrErr(file, true, true)
		if err != nil {
			return "", fmt.Errorf("itp_jws: %s_file: %w", field, err)
		}
		data, err := os.ReadFile(name)
		if err != nil {
			return "", fmt.Errorf("itp_jws: %s_file: %w", field, err)
		}
		return string(data), nil
	}
	if inline == "" {
		return "", nil
	}
	text, err := repl.ReplaceOrErr(inline, true, true)
	if err != nil {
		return "", fmt.Errorf("itp_jws: %s: %w", field, err)
	}
	return text, nil
}

// ServeHTTP verifies or signs the request or the response.
func (h *JWSHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.Direction == session.DirectionResponse {
		return h.serveResponse(w, r, next)
	}
	body, err := readRequestBody(r, h.MaxBody)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			msg := fmt.Sprintf("the request body is larger than %d bytes, the most read to check or make its JWS signature", h.MaxBody)
			h.outcome(r, jwsOutcome{msg: msg})
			return jsonError(w, http.StatusRequestEntityTooLarge, msg)
		}
		return caddyhttp.Error(http.StatusBadRequest, err)
	}
	if h.sign {
		var out jwsOutcome
		body, out = h.op.sign(body, r.Header, r.Method, r.URL.RequestURI())
		h.outcome(r, out)
		if !out.ok {
			return jsonError(w, http.StatusBadRequest, out.msg)
		}
	} else {
		out := h.op.verify(body, r.Header, r.Method, r.URL.RequestURI())
		h.outcome(r, out)
		if !out.ok && h.Enforce {
			return jsonError(w, http.StatusUnauthorized, out.msg)
		}
	}
	setRequestBody(r, body)
	return next.ServeHTTP(w, r)
}

// serveResponse buffers the response of the next handlers, then verifies
// or signs it.
func (h *JWSHandler) serveResponse(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	method, uri := r.Method, r.URL.RequestURI()
	buf := newJWSResponseBuffer(w, h.MaxBody)
	if err := next.ServeHTTP(buf, r); err != nil {
		if buf.status != 0 {
			// the error is Caddy's to answer; what was buffered is dropped
			clear(w.Header())
		}
		return err
	}
	if buf.over {
		msg := fmt.Sprintf("the response body is larger than %d bytes, the most read to check or make its JWS signature", h.MaxBody)
		h.outcome(r, jwsOutcome{msg: msg})
		clear(w.Header())
		return jsonError(w, http.StatusBadGateway, msg)
	}
	body, hdr := buf.body.Bytes(), w.Header()
	if h.sign {
		mojaloopResponder(h.op.format, hdr, r.Header)
		var out jwsOutcome
		body, out = h.op.sign(body, hdr, method, uri)
		h.outcome(r, out)
		if !out.ok {
			clear(hdr)
			return jsonError(w, http.StatusBadGateway, out.msg)
		}
		return buf.send(body, method != http.MethodHead)
	}
	out := h.op.verify(body, hdr, "", "")
	h.outcome(r, out)
	if !out.ok && h.Enforce {
		clear(hdr)
		return jsonError(w, http.StatusBadGateway, "response refused: "+out.msg)
	}
	return buf.send(body, false)
}

// outcome logs an outcome and sets the {http.itp_jws.*} placeholders.
func (h *JWSHandler) outcome(r *http.Request, out jwsOutcome) {
	status := "fail"
	switch {
	case out.ok && h.sign:
		status = "signed"
	case out.ok:
		status = "pass"
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.itp_jws.status", status)
		repl.Set("http.itp_jws.reason", out.msg)
	}
	level := zapcore.DebugLevel
	if !out.ok {
		level = zapcore.WarnLevel
	}
	if ce := h.logger.Check(level, "jws "+status); ce != nil {
		direction := h.Direction
		if direction == "" {
			direction = session.DirectionRequest
		}
		ce.Write(
			zap.String("direction", direction),
			zap.String("header", h.op.header),
			zap.String("alg", h.op.alg),
			zap.String("method", r.Method),
			zap.String("uri", r.RequestURI),
			zap.String("protected_header", out.protected),
			zap.String("reason", out.msg),
		)
	}
}

// parseJWSHandler sets up the handler from Caddyfile tokens.
func parseJWSHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var handler JWSHandler
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return &handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	itp_jws [<matcher>] [verify|sign] {
//		mode              verify|sign
//		direction         request|response
//		format            mojaloop|compact|detached
//		alg               <algorithm>
//		header            <header name>
//		public_key        <PEM text or placeholder>
//		public_key_file   <file>
//		private_key       <PEM text or placeholder>
//		private_key_file  <file>
//		secret            <shared secret or placeholder>
//		protected_headers <header names...>
//		crit              <parameter name> [<expected value>]
//		unencoded
//		enforce
//		max_body          <size, e.g. 1MiB, 512KB or 65536>
//	}
func (h *JWSHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Mode = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "mode":
			err = oneArg(d, &h.Mode)
		case "direction":
			err = oneArg(d, &h.Direction)
		case "format":
			err = oneArg(d, &h.Format)
		case "alg":
			err = oneArg(d, &h.Alg)
		case "header":
			err = oneArg(d, &h.Header)
		case "public_key":
			err = oneArg(d, &h.PublicKey)
		case "public_key_file":
			err = oneArg(d, &h.PublicKeyFile)
		case "private_key":
			err = oneArg(d, &h.PrivateKey)
		case "private_key_file":
			err = oneArg(d, &h.PrivateKeyFile)
		case "secret":
			err = oneArg(d, &h.Secret)
		case "protected_headers":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.ProtectedHeaders = append(h.ProtectedHeaders, args...)
		case "crit":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			if h.Crit == nil {
				h.Crit = map[string]string{}
			}
			h.Crit[args[0]] = strings.Join(args[1:], "")
		case "unencoded":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Unencoded = true
		case "enforce":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Enforce = true
		case "max_body":
			var v string
			if err = oneArg(d, &v); err == nil {
				if h.MaxBody, err = parseSize(v); err != nil {
					err = d.Errf("max_body: %v", err)
				}
			}
		default:
			return d.Errf("unrecognized itp_jws option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseSize parses a byte size: a whole number with an optional unit
// B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
		{"B", 1},
	}
	num, mult := s, int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (a whole number of bytes, optionally with KB, KiB, MB, MiB, GB or GiB)", s)
	}
	return n * mult, nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*JWSHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*JWSHandler)(nil)
	_ caddyfile.Unmarshaler       = (*JWSHandler)(nil)
)
