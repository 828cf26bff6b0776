package itp

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/caddy-itp/caddy-itp/jws"
	"github.com/caddy-itp/caddy-itp/session"
)

// This file is the JWS machinery the itp_jws handler and the itp
// handler's session rules share: compiling a configuration into a
// verifier or signer once, reading bodies within a bound, buffering a
// response to verify or sign it, and describing outcomes as check results.

// DefaultJWSMaxBody is the default bound on a body that is buffered to be
// verified or signed: 1 MiB.
const DefaultJWSMaxBody = 1 << 20

// The checks session JWS rules record (DESIGN.md §4).
const (
	checkJWSRequest  = "Request: JWS Signature"
	checkJWSResponse = "Response: JWS Signature"
)

// maxActualValue bounds the signature header value quoted in a result.
const maxActualValue = 4 << 10

// errBodyTooLarge is returned when a body is larger than the bound.
var errBodyTooLarge = errors.New("body too large")

// jwsSpec is what a jwsOp is compiled from: a session rule or the itp_jws
// handler's configuration, with keys as PEM text.
type jwsSpec struct {
	Sign             bool
	Format           string
	Alg              string
	Header           string
	PublicKey        string
	PrivateKey       string
	Secret           string
	ProtectedHeaders []string
	Crit             map[string]string
	Unencoded        bool
}

// jwsOp is a compiled JWS configuration, safe for concurrent use: it
// verifies (verifier set) or signs (signer set) the signature carried in
// one HTTP header.
type jwsOp struct {
	header   string
	format   jws.Format
	alg      string
	verifier *jws.Verifier
	signer   *jws.Signer
	// expected is the result's expected value:
	// {"alg":...,"header":...,"format":...}.
	expected json.RawMessage
}

// compileJWS parses the keys of spec and builds its verifier or signer.
// Errors about one field are *session.FieldError values naming it
// (public_key, private_key, secret) so that a session rule's error names
// e.g. jws[0].private_key.
func compileJWS(spec jwsSpec) (*jwsOp, error) {
	switch jws.Format(spec.Format) {
	case jws.FormatMojaloop, jws.FormatCompact, jws.FormatDetached:
	default:
		return nil, &session.FieldError{Field: "format", Msg: fmt.Sprintf("must be %q, %q or %q, not %q", jws.FormatMojaloop, jws.FormatCompact, jws.FormatDetached, spec.Format)}
	}
	if !slices.Contains(jws.Algorithms(), spec.Alg) {
		return nil, &session.FieldError{Field: "alg", Msg: fmt.Sprintf("must be one of %s, not %q", strings.Join(jws.Algorithms(), ", "), spec.Alg)}
	}
	var (
		pub  crypto.PublicKey
		priv crypto.Signer
		err  error
	)
	if spec.PublicKey != "" {
		if pub, err = jws.ParsePublicKeyPEM([]byte(spec.PublicKey)); err != nil {
			return nil, &session.FieldError{Field: "public_key", Msg: err.Error()}
		}
	}
	if spec.PrivateKey != "" {
		if priv, err = jws.ParsePrivateKeyPEM([]byte(spec.PrivateKey)); err != nil {
			return nil, &session.FieldError{Field: "private_key", Msg: err.Error()}
		}
	}
	if pub != nil && priv != nil {
		if ok, keyType, reason := jws.CheckKeyPair(priv, pub); !ok {
			return nil, &session.FieldError{Field: "private_key", Msg: fmt.Sprintf("does not match public_key (%s): %s", keyType, reason)}
		}
	}
	cfg := jws.Config{
		Format:           jws.Format(spec.Format),
		Alg:              spec.Alg,
		PublicKey:        pub,
		ProtectedHeaders: spec.ProtectedHeaders,
		Crit:             spec.Crit,
		Unencoded:        spec.Unencoded,
	}
	if spec.Secret != "" {
		cfg.Secret = []byte(spec.Secret)
	}
	op := &jwsOp{header: spec.Header, format: cfg.Format, alg: spec.Alg}
	if spec.Sign {
		cfg.PrivateKey = priv
		if op.signer, err = jws.NewSigner(cfg); err != nil {
			return nil, jwsFieldError(err)
		}
	} else if op.verifier, err = jws.NewVerifier(cfg); err != nil {
		return nil, jwsFieldError(err)
	}
	op.expected, _ = json.Marshal(struct {
		Alg    string `json:"alg"`
		Header string `json:"header"`
		Format string `json:"format"`
	}{spec.Alg, spec.Header, spec.Format})
	return op, nil
}

// jwsFieldError turns the jws package's *jws.ConfigError, which names the
// configuration field at fault, into the field error the session API and
// the itp_jws handler report.
func jwsFieldError(err error) error {
	var ce *jws.ConfigError
	if errors.As(err, &ce) {
		return &session.FieldError{Field: ce.Field, Msg: ce.Err.Error()}
	}
	return err
}

// jwsOutcome is the result of applying a jwsOp to one message.
type jwsOutcome struct {
	// ok is true when the signature verified or the message was signed.
	ok bool
	// value is the signature header value seen (verify) or sent (sign).
	value string
	// protected is the decoded protected header, when known.
	protected string
	// verr is the verification failure, if any.
	verr *jws.VerifyError
	// msg says what happened, in plain words.
	msg string
}

// verify checks the signature of a message. method and uri are the
// request the platform forwards (empty for a response: the mojaloop
// format's URI and method checks are then skipped).
func (op *jwsOp) verify(body []byte, hdr http.Header, method, uri string) jwsOutcome {
	value := strings.Join(hdr.Values(op.header), ", ")
	res, err := op.verifier.Verify(jws.Message{HeaderValue: value, Body: body, Headers: hdr, Method: method, URI: uri})
	out := jwsOutcome{value: value}
	if res != nil {
		out.protected = res.Protected
	}
	if err == nil {
		out.ok = true
		out.msg = fmt.Sprintf("valid %s signature in %s over the %d body bytes received", op.alg, op.header, len(body))
		return out
	}
	var ve *jws.VerifyError
	if !errors.As(err, &ve) {
		ve = &jws.VerifyError{Kind: jws.ErrMalformed, Reason: strings.TrimPrefix(err.Error(), "jws: ")}
	}
	if out.protected == "" {
		out.protected = ve.Protected
	}
	out.verr = ve
	out.msg = op.header + ": " + ve.Reason
	return out
}

// sign signs a message: it sets the signature header on hdr (and, in the
// mojaloop format, FSPIOP-URI and FSPIOP-HTTP-Method from uri and method
// when they are set) and returns the body to send, which is the body
// signed.
func (op *jwsOp) sign(body []byte, hdr http.Header, method, uri string) ([]byte, jwsOutcome) {
	value, out, err := op.signer.Sign(jws.Message{Body: body, Headers: hdr, Method: method, URI: uri})
	if err != nil {
		return body, jwsOutcome{msg: "the platform could not sign the message: " + strings.TrimPrefix(err.Error(), "jws: ")}
	}
	hdr.Set(op.header, value)
	return out, jwsOutcome{
		ok:        true,
		value:     value,
		protected: protectedOf(op.format, value),
		msg:       fmt.Sprintf("signed by the platform with %s in %s over the %d body bytes sent", op.alg, op.header, len(out)),
	}
}

// protectedOf decodes the protected header of a signature the platform
// made, for the results.
func protectedOf(format jws.Format, value string) string {
	seg := value
	if format == jws.FormatMojaloop {
		var m struct {
			ProtectedHeader string `json:"protectedHeader"`
		}
		if json.Unmarshal([]byte(value), &m) != nil {
			return ""
		}
		seg = m.ProtectedHeader
	} else if i := strings.IndexByte(value, '.'); i >= 0 {
		seg = value[:i]
	}
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return ""
	}
	return string(b)
}

// actual is the result's actual value: the header value seen or sent,
// the decoded protected header, and the two values that differ when a
// signed header disagrees with the message.
func (o jwsOutcome) actual(header string) json.RawMessage {
	type mismatch struct {
		Expected string `json:"expected"`
		Actual   string `json:"actual"`
	}
	a := struct {
		Header    string          `json:"header"`
		Value     *string         `json:"value"`
		Protected json.RawMessage `json:"protected_header,omitempty"`
		Mismatch  *mismatch       `json:"mismatch,omitempty"`
	}{Header: header}
	if o.value != "" {
		v := o.value
		if len(v) > maxActualValue {
			v = truncateUTF8(v, maxActualValue) + "…"
		}
		a.Value = &v
	}
	if o.protected != "" {
		if json.Valid([]byte(o.protected)) {
			a.Protected = json.RawMessage(o.protected)
		} else {
			a.Protected, _ = json.Marshal(o.protected)
		}
	}
	if o.verr != nil && (o.verr.Expected != "" || o.verr.Actual != "") {
		a.Mismatch = &mismatch{Expected: o.verr.Expected, Actual: o.verr.Actual}
	}
	out, err := json.Marshal(a)
	if err != nil {
		return nil
	}
	return out
}

func truncateUTF8(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// readRequestBody reads the request body within max bytes; a larger body
// is errBodyTooLarge, found from Content-Length before reading when it is
// declared.
func readRequestBody(r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, errBodyTooLarge
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading the request body: %w", err)
	}
	if int64(len(data)) > max {
		return nil, errBodyTooLarge
	}
	return data, nil
}

// setRequestBody makes body the request's body, with its length.
func setRequestBody(r *http.Request, body []byte) {
	r.TransferEncoding = nil
	r.ContentLength = int64(len(body))
	if len(body) == 0 {
		r.Body = http.NoBody
	} else {
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if len(body) > 0 || r.Header.Get("Content-Length") != "" {
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
}

// jsonError answers with {"error": msg}.
func jsonError(w http.ResponseWriter, status int, msg string) error {
	body, err := json.Marshal(map[string]string{"error": msg})
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, err = w.Write(append(body, '\n'))
	return err
}

// jwsResponseBuffer holds a response (status and body; headers go to the
// real response's header map, which nothing sends before the buffer is
// written out) so that it can be verified or signed. Bodies past max are
// discarded and the buffer marked over; informational 1xx responses pass
// through.
type jwsResponseBuffer struct {
	w      http.ResponseWriter
	status int
	body   bytes.Buffer
	max    int64
	over   bool
	// platform is set when the response is the platform's own answer
	// (an upstream failure), to which response rules do not apply.
	platform bool
}

func newJWSResponseBuffer(w http.ResponseWriter, max int64) *jwsResponseBuffer {
	return &jwsResponseBuffer{w: w, max: max}
}

// Header returns the real response's header map.
func (b *jwsResponseBuffer) Header() http.Header { return b.w.Header() }

// WriteHeader records the status.
func (b *jwsResponseBuffer) WriteHeader(status int) {
	if b.status != 0 {
		return
	}
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		b.w.WriteHeader(status)
		return
	}
	b.status = status
}

// Write buffers p, up to the bound.
func (b *jwsResponseBuffer) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if b.over {
		return len(p), nil
	}
	if int64(b.body.Len())+int64(len(p)) > b.max {
		b.over = true
		b.body.Reset()
		return len(p), nil
	}
	return b.body.Write(p)
}

// Flush does nothing: the response is sent once complete.
func (b *jwsResponseBuffer) Flush() {}

// send writes the response out with body; changed says that body is not
// the one buffered, so Content-Length is set to its length (never for a
// HEAD request, whose Content-Length is that of the GET).
func (b *jwsResponseBuffer) send(body []byte, changed bool) error {
	status := b.status
	if status == 0 {
		status = http.StatusOK
	}
	if changed {
		b.w.Header().Del("Transfer-Encoding")
		b.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	b.w.WriteHeader(status)
	if len(body) == 0 {
		return nil
	}
	_, err := b.w.Write(body)
	return err
}

// platformAnswer marks w, when it buffers a response for JWS rules, as
// holding the platform's own answer (not the SUT's or the next
// handler's), so that no response rule is applied to it.
func platformAnswer(w http.ResponseWriter) {
	if b, ok := w.(*jwsResponseBuffer); ok {
		b.platform = true
	}
}

// mojaloopResponder fills in, for signing a response in the mojaloop
// format, the FSPIOP-Source the format requires when the response has
// none: the responder is the request's FSPIOP-Destination.
func mojaloopResponder(format jws.Format, resp, req http.Header) {
	if format != jws.FormatMojaloop || resp.Get(jws.HeaderFSPIOPSource) != "" {
		return
	}
	if dest := req.Get(jws.HeaderFSPIOPDestination); dest != "" {
		resp.Set(jws.HeaderFSPIOPSource, dest)
	}
}
