package itp

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddy-itp/caddy-itp/proxy"
	"github.com/caddy-itp/caddy-itp/session"
)

// compileJWSRule compiles a session JWS rule once, when its session is
// registered (session.Options.CompileJWSRule): its keys are parsed, a
// private key that does not match its public key is refused (naming
// private_key), and the verifier or signer is kept in the rule's Compiled
// field for the request path.
func compileJWSRule(rule session.ResolvedJWSRule) (any, error) {
	return compileJWS(jwsSpec{
		Sign:             rule.Mode == session.ModeSign,
		Format:           rule.Format,
		Alg:              rule.Alg,
		Header:           rule.Header,
		PublicKey:        rule.PublicKey,
		PrivateKey:       rule.PrivateKey,
		Secret:           rule.Secret,
		ProtectedHeaders: rule.ProtectedHeaders,
		Crit:             rule.Crit,
	})
}

// ruleApplies reports whether a session rule is for this route and
// direction.
func ruleApplies(rule *session.ResolvedJWSRule, route proxy.Route, direction string) bool {
	return rule.Direction == direction && rule.Source == route.Source && rule.Target == route.Target
}

// hasJWSRules reports whether the session has a rule for this route and
// direction.
func hasJWSRules(sess *session.Resolved, route proxy.Route, direction string) bool {
	for i := range sess.JWS {
		if ruleApplies(&sess.JWS[i], route, direction) {
			return true
		}
	}
	return false
}

// forwardedPath is the request's {path} as the JWS rules see it: the path
// after the session prefix, as received, with its query.
func forwardedPath(r *http.Request, route proxy.Route) string {
	if r.URL.RawQuery != "" {
		return route.Rest + "?" + r.URL.RawQuery
	}
	return route.Rest
}

// ruleOp is the compiled form of a rule, or the outcome to record when it
// has none (a session read back from storage whose rule no longer
// compiles: the reason is one of its warnings).
func ruleOp(rule *session.ResolvedJWSRule) (*jwsOp, *jwsOutcome) {
	if op, ok := rule.Compiled.(*jwsOp); ok {
		return op, nil
	}
	return nil, &jwsOutcome{msg: fmt.Sprintf("jws[%d] could not be compiled, so the message was not checked; see the session's warnings", rule.Index)}
}

// ruleExpected is the expected value of a rule's results.
func ruleExpected(rule *session.ResolvedJWSRule, op *jwsOp) []byte {
	if op != nil {
		return op.expected
	}
	return fmt.Appendf(nil, `{"alg":%q,"header":%q,"format":%q}`, rule.Alg, rule.Header, rule.Format)
}

// applyJWSRequest applies the session's request rules for the route to r
// before it is forwarded: verify over the raw body bytes, with the
// forwarded path and the method, or sign for a simulated source. It
// records one `Request: JWS Signature` result per rule. When answered is
// true the request was refused (a body past the bound: 413; a failure of
// an enforcing rule: 401) and err is what ServeHTTP returns.
func (h *Handler) applyJWSRequest(w http.ResponseWriter, r *http.Request, sess *session.Resolved, route proxy.Route, ex *exchange) (answered bool, err error) {
	if !hasJWSRules(sess, route, session.DirectionRequest) {
		return false, nil
	}
	maxBody := h.app.JWSMaxBody
	body, err := readRequestBody(r, maxBody)
	if err != nil {
		status, msg := http.StatusBadRequest, err.Error()
		if errors.Is(err, errBodyTooLarge) {
			status, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes, the most the platform reads to check its JWS signature", maxBody)
		}
		for i := range sess.JWS {
			if rule := &sess.JWS[i]; ruleApplies(rule, route, session.DirectionRequest) {
				op, _ := ruleOp(rule)
				h.checks.record(ex, checkJWSRequest, false, ruleExpected(rule, op), nil, msg)
			}
		}
		return true, jsonError(w, status, msg)
	}
	uri := forwardedPath(r, route)
	for i := range sess.JWS {
		rule := &sess.JWS[i]
		if !ruleApplies(rule, route, session.DirectionRequest) {
			continue
		}
		op, out := ruleOp(rule)
		switch {
		case out != nil:
		case rule.Mode == session.ModeSign:
			var o jwsOutcome
			body, o = op.sign(body, r.Header, r.Method, uri)
			out = &o
		default:
			o := op.verify(body, r.Header, r.Method, uri)
			out = &o
		}
		h.checks.record(ex, checkJWSRequest, out.ok, ruleExpected(rule, op), out.actual(rule.Header), out.msg)
		if !out.ok && rule.Enforce {
			return true, jsonError(w, http.StatusUnauthorized, "request refused: "+out.msg)
		}
	}
	setRequestBody(r, body)
	return false, nil
}

// serveJWSResponse serves the request with serve, buffering the response
// (up to the bound) to apply the session's response rules for the route:
// verify what the SUT answered, or sign for a simulated target what the
// next handler answered. It records one `Response: JWS Signature` result
// per rule; a failure of an enforcing rule, or a body past the bound,
// replaces the response with a 502. The platform's own error answers
// (upstream failures) are passed on unchecked.
func (h *Handler) serveJWSResponse(w http.ResponseWriter, r *http.Request, sess *session.Resolved, route proxy.Route, ex *exchange, serve func(http.ResponseWriter) error) error {
	// the request as received: serve changes r.URL to the forwarded one
	method, uri, reqHeader := r.Method, forwardedPath(r, route), r.Header
	maxBody := h.app.JWSMaxBody
	buf := newJWSResponseBuffer(w, maxBody)
	err := serve(buf)
	if buf.platform || (err != nil && buf.status == 0) {
		if buf.status != 0 {
			if serr := buf.send(buf.body.Bytes(), false); err == nil {
				err = serr
			}
		}
		return err
	}
	if err != nil {
		// the next handler started an answer and then failed: nothing was
		// sent yet, so Caddy's error handling answers alone (as in itp_jws)
		clear(w.Header())
		return err
	}
	if buf.over {
		msg := fmt.Sprintf("the response body is larger than %d bytes, the most the platform reads to check its JWS signature", maxBody)
		for i := range sess.JWS {
			if rule := &sess.JWS[i]; ruleApplies(rule, route, session.DirectionResponse) {
				op, _ := ruleOp(rule)
				h.checks.record(ex, checkJWSResponse, false, ruleExpected(rule, op), nil, msg)
			}
		}
		clear(w.Header())
		return jsonError(w, http.StatusBadGateway, msg)
	}
	body, changed := buf.body.Bytes(), false
	hdr := w.Header()
	for i := range sess.JWS {
		rule := &sess.JWS[i]
		if !ruleApplies(rule, route, session.DirectionResponse) {
			continue
		}
		op, out := ruleOp(rule)
		switch {
		case out != nil:
		case rule.Mode == session.ModeSign:
			mojaloopResponder(op.format, hdr, reqHeader)
			var o jwsOutcome
			body, o = op.sign(body, hdr, method, uri)
			out, changed = &o, true
		default:
			o := op.verify(body, hdr, "", "")
			out = &o
		}
		h.checks.record(ex, checkJWSResponse, out.ok, ruleExpected(rule, op), out.actual(rule.Header), out.msg)
		if !out.ok && rule.Enforce {
			clear(hdr)
			return jsonError(w, http.StatusBadGateway, "response refused: "+strings.TrimSpace(out.msg))
		}
	}
	return buf.send(body, changed && method != http.MethodHead)
}
