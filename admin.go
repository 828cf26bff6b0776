package itp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-itp/caddy-itp/ca"
	"github.com/caddy-itp/caddy-itp/jws"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// maxAdminJSON bounds admin API request bodies.
const maxAdminJSON = 1 << 20

// AdminAPI is the `admin.api.itp` router: the platform's management API
// under /itp/ on Caddy's admin endpoint (localhost:2019 by default, with
// Caddy's own access control). Caddy creates it afresh on every config load,
// before any app, and it exists in every binary with this plugin even when
// no itp app is configured; so it never holds state and finds the running
// itp app on each request, answering 503 when there is none.
type AdminAPI struct {
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.itp",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Provision sets up the router's logger.
func (a *AdminAPI) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger(a)
	return nil
}

// Routes returns the admin routes.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/itp/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// adminRoute is one admin endpoint: a method, a path pattern whose "*"
// segments match one safe id each, and its handler.
type adminRoute struct {
	method, pattern string
	handle          func(app *App, w http.ResponseWriter, r *http.Request, ids []string) error
}

// adminRoutes is extended by the files of each concern (sessions, groups).
var adminRoutes = []adminRoute{
	{http.MethodGet, "/itp/ca/root.crt", adminRootCert},
	{http.MethodPost, "/itp/ca/sign", adminSign},
	{http.MethodPost, "/itp/ca/revoke", adminRevoke},
	{http.MethodPost, "/itp/ca/renew", adminRenew},
	{http.MethodGet, "/itp/upstream/client.csr", adminUpstreamCSR},
	{http.MethodPost, "/itp/keys/check", adminKeyCheck},
}

func (a *AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	path := strings.TrimSuffix(r.URL.Path, "/")
	var allowed []string
	for _, rt := range adminRoutes {
		ids, ok := matchPattern(rt.pattern, path)
		if !ok {
			continue
		}
		if rt.method != r.Method {
			allowed = append(allowed, rt.method)
			continue
		}
		app := activeApp()
		if app == nil {
			return apiError(http.StatusServiceUnavailable, "no itp app is configured: add the itp global option (or an \"itp\" app in JSON) to the running config")
		}
		return rt.handle(app, w, r, ids)
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		return apiError(http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s; use %s", r.Method, path, strings.Join(allowed, ", ")))
	}
	return apiError(http.StatusNotFound, fmt.Sprintf("no itp admin endpoint at %s", path))
}

// matchPattern matches path against a pattern with "*" for single
// segments and returns what they matched.
func matchPattern(pattern, path string) ([]string, bool) {
	pp, sp := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(pp) != len(sp) {
		return nil, false
	}
	var ids []string
	for i := range pp {
		switch {
		case pp[i] == "*":
			if sp[i] == "" {
				return nil, false
			}
			ids = append(ids, sp[i])
		case pp[i] != sp[i]:
			return nil, false
		}
	}
	return ids, true
}

func apiError(status int, msg string) error {
	return caddy.APIError{HTTPStatus: status, Err: errors.New(msg), Message: msg}
}

// errorToAPI turns an error into an admin API error with its status.
func errorToAPI(err error) error {
	status, msg := statusOf(err)
	return apiError(status, msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// decodeJSON reads a bounded JSON body into v, refusing unknown fields and
// trailing data, with errors that name what is wrong.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxAdminJSON)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return apiError(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body too large: at most %d bytes are accepted", mbe.Limit))
		}
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return apiError(http.StatusBadRequest, fmt.Sprintf("field %q: expected %s, got %s", ute.Field, ute.Type, ute.Value))
		}
		if errors.Is(err, io.EOF) {
			return apiError(http.StatusBadRequest, "empty request body: expected a JSON object")
		}
		return apiError(http.StatusBadRequest, "invalid JSON: "+err.Error())
	}
	if dec.More() {
		return apiError(http.StatusBadRequest, "invalid JSON: unexpected data after the object")
	}
	return nil
}

func adminRootCert(app *App, w http.ResponseWriter, _ *http.Request, _ []string) error {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, err := w.Write(app.Authority().TrustPEM())
	return err
}

func adminSign(app *App, w http.ResponseWriter, r *http.Request, _ []string) error {
	csrPEM, err := readCSR(w, r)
	if err != nil {
		return errorToAPI(err)
	}
	zip, err := app.signedBundle(r.Context(), csrPEM, "admin "+r.RemoteAddr)
	if err != nil {
		return errorToAPI(err)
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="certificates.zip"`)
	_, err = w.Write(zip)
	return err
}

func adminRevoke(app *App, w http.ResponseWriter, r *http.Request, _ []string) error {
	var req struct {
		Serial string `json:"serial"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Serial == "" {
		return apiError(http.StatusBadRequest, `field "serial": required, the certificate serial in hex`)
	}
	if _, err := ca.ParseSerial(req.Serial); err != nil {
		return apiError(http.StatusBadRequest, `field "serial": `+err.Error())
	}
	rec, err := app.Participants().Revoke(r.Context(), req.Serial)
	if errors.Is(err, ca.ErrNotIssued) {
		return apiError(http.StatusNotFound, fmt.Sprintf("serial %s: %v", req.Serial, err))
	}
	if err != nil {
		return errorToAPI(err)
	}
	app.logger.Info("revoked participant certificate",
		zap.String("action", "revoke"),
		zap.String("serial", rec.Serial), zap.String("subject", rec.Subject), zap.String("by", "admin "+r.RemoteAddr))
	return writeJSON(w, http.StatusOK, rec)
}

// adminRenew replaces the ITP root, explicitly: the old root stays
// trusted (and keeps signing the server certificates) for the transition.
func adminRenew(app *App, w http.ResponseWriter, r *http.Request, _ []string) error {
	var req struct {
		Transition caddy.Duration `json:"transition"`
		KeyType    string         `json:"key_type"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Transition < 0 {
		return apiError(http.StatusBadRequest, `field "transition": must not be negative`)
	}
	if req.KeyType != "" && !ca.ValidKeyType(req.KeyType) {
		return apiError(http.StatusBadRequest, fmt.Sprintf(`field "key_type": %q is not one of ecdsa_p256, ecdsa_p384, rsa2048, rsa3072, rsa4096, ed25519`, req.KeyType))
	}
	auth, err := ca.Renew(r.Context(), app.storage, app.logger, ca.Options{
		KeyType:         req.KeyType,
		Validity:        time.Duration(app.CA.Validity),
		CommonName:      app.CA.CommonName,
		NameConstraints: app.CA.NameConstraints,
	}, time.Duration(req.Transition))
	if err != nil {
		return errorToAPI(err)
	}
	app.Participants().SetAuthority(auth)
	app.logger.Info("renewed the ITP root through the admin API",
		zap.String("action", "renew"),
		zap.String("serial", auth.Root.SerialNumber.Text(16)),
		zap.String("by", "admin "+r.RemoteAddr))
	return writeJSON(w, http.StatusOK, map[string]any{
		"serial":    auth.Root.SerialNumber.Text(16),
		"subject":   auth.Root.Subject.String(),
		"key":       ca.DescribeKey(auth.Root.PublicKey),
		"not_after": auth.Root.NotAfter,
		"previous":  auth.Previous(),
		"root":      string(auth.RootPEM),
	})
}

func adminUpstreamCSR(app *App, w http.ResponseWriter, _ *http.Request, _ []string) error {
	csr, err := ca.UpstreamCSR(app.UpstreamKey(), "")
	if err != nil {
		return errorToAPI(err)
	}
	w.Header().Set("Content-Type", "application/pkcs10")
	w.Header().Set("Content-Disposition", `attachment; filename="client.csr"`)
	_, err = w.Write(csr)
	return err
}

// keyCheckResult is the answer of POST /itp/keys/check.
type keyCheckResult struct {
	Match   bool   `json:"match"`
	KeyType string `json:"key_type"`
	Reason  string `json:"reason,omitempty"`
}

func adminKeyCheck(_ *App, w http.ResponseWriter, r *http.Request, _ []string) error {
	var req struct {
		PrivateKey string `json:"private_key"`
		PublicKey  string `json:"public_key"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.PrivateKey) == "" {
		return apiError(http.StatusBadRequest, `field "private_key": required, a PEM private key`)
	}
	if strings.TrimSpace(req.PublicKey) == "" {
		return apiError(http.StatusBadRequest, `field "public_key": required, a PEM public key or certificate`)
	}
	priv, err := jws.ParsePrivateKeyPEM([]byte(req.PrivateKey))
	if err != nil {
		return apiError(http.StatusBadRequest, `field "private_key": `+err.Error())
	}
	pub, err := jws.ParsePublicKeyPEM([]byte(req.PublicKey))
	if err != nil {
		return apiError(http.StatusBadRequest, `field "public_key": `+err.Error())
	}
	match, keyType, reason := jws.CheckKeyPair(priv, pub)
	return writeJSON(w, http.StatusOK, keyCheckResult{Match: match, KeyType: keyType, Reason: reason})
}

// Interface guards
var (
	_ caddy.Provisioner = (*AdminAPI)(nil)
	_ caddy.AdminRouter = (*AdminAPI)(nil)
)
