package itp

import (
	"bytes"
	"cmp"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-itp/caddy-itp/results"
	"github.com/caddy-itp/caddy-itp/session"
)

// webFS holds the participant pages' templates and assets, embedded so
// that the binary serves them with no other file and no external asset.
//
//go:embed web
var webFS embed.FS

// webTemplates are the parsed participant page templates.
var webTemplates = template.Must(template.New("").ParseFS(webFS, "web/*.html"))

// webAssets are the static files of the participant pages, by name.
var webAssets = map[string]string{
	"itp.css": "text/css; charset=utf-8",
	"itp.js":  "text/javascript; charset=utf-8",
}

// webStarted is when this process started, the Last-Modified of the
// embedded assets.
var webStarted = time.Now()

// maxResultRows bounds the results rendered into a session page; the
// newest are shown.
const maxResultRows = 500

// webCSP is the Content-Security-Policy of the participant pages: only
// the page's own assets, no inline script, no framing, forms posting
// back to the platform only.
const webCSP = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// pageBase is what every participant page template needs.
type pageBase struct {
	// Title is the page's title (and the h1 of simple pages).
	Title string
	// Prefix is the itp_ca prefix, e.g. "/itp".
	Prefix string
	// Origin is the site's scheme and host as the participant reached it.
	Origin string
	// Base is Origin followed by Prefix.
	Base string
	// Error is a message for the participant, shown on the page.
	Error string
	// Script says whether the page loads itp.js.
	Script bool
}

// sessionPage is the data of the session page.
type sessionPage struct {
	pageBase
	ID, Name, Group string
	Static          bool
	Expires         string
	Expired         bool
	Warnings        []string
	URLs            []SessionURL
	Components      []componentView
	Results         []resultView
	Checks          []string
	Check, Status   string
	Since           int64
	Summary         string
	ResultsURL      string
	SelfURL         string
}

// componentView is one component as the session page shows it. It holds
// no key material: only whether certificates were given.
type componentView struct {
	Slug       string
	Simulated  bool
	BaseURL    string
	Encrypted  bool
	CA         string
	ClientCert string
}

// resultView is one result row of the session page.
type resultView struct {
	ID                int64
	TimeISO, TimeText string
	Status, Check     string
	Source, Target    string
	Method, URI       string
	ForwardedURI      string
	Message           string
	Expected, Actual  string
	ClientCert        *results.ClientCert
	HasDetails        bool
}

// serveWeb routes a request under the prefix to a participant page. It
// reports false when the path is none of them, so that the request goes
// on to the next handler.
func (h *CAHandler) serveWeb(w http.ResponseWriter, r *http.Request) (bool, error) {
	rest, ok := strings.CutPrefix(r.URL.Path, h.Prefix+"/")
	if !ok {
		if r.URL.Path == h.Prefix && h.Prefix != "" {
			http.Redirect(w, r, h.Prefix+"/", http.StatusMovedPermanently)
			return true, nil
		}
		return false, nil
	}
	switch {
	case rest == "":
		return true, h.webGet(w, r, h.serveIndex)
	case strings.HasPrefix(rest, "assets/"):
		name := strings.TrimPrefix(rest, "assets/")
		if _, ok := webAssets[name]; !ok {
			return false, nil
		}
		return true, h.webGet(w, r, func(w http.ResponseWriter, r *http.Request) error { return serveAsset(w, r, name) })
	case rest == "sessions":
		// the "open session" form of the index page
		return true, h.webGet(w, r, h.serveOpenSession)
	case strings.HasPrefix(rest, "sessions/"):
		parts := strings.Split(strings.TrimPrefix(rest, "sessions/"), "/")
		switch {
		case len(parts) == 1 && parts[0] != "":
			return true, h.webGet(w, r, func(w http.ResponseWriter, r *http.Request) error { return h.serveSession(w, r, parts[0]) })
		case len(parts) == 2 && parts[0] != "" && parts[1] == "results":
			return true, h.webGet(w, r, func(w http.ResponseWriter, r *http.Request) error { return h.serveResults(w, r, parts[0]) })
		}
	}
	return false, nil
}

// webGet allows GET and HEAD only.
func (h *CAHandler) webGet(w http.ResponseWriter, r *http.Request, fn func(http.ResponseWriter, *http.Request) error) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(w, "GET, HEAD")
	}
	return fn(w, r)
}

// base returns the page data every template needs.
func (h *CAHandler) base(r *http.Request, title string) pageBase {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	origin := scheme + "://" + r.Host
	return pageBase{Title: title, Prefix: h.Prefix, Origin: origin, Base: origin + h.Prefix}
}

// render executes a page template into a buffer first, so that a
// template error becomes a clean 500 rather than half a page.
func (h *CAHandler) render(w http.ResponseWriter, status int, name string, data any) error {
	var buf bytes.Buffer
	if err := webTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		h.logger.Error("rendering participant page", zap.String("template", name), zap.Error(err))
		return plainError(w, http.StatusInternalServerError, "internal error: the page could not be rendered")
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", webCSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// serveIndex serves the "Download Certificates" page.
func (h *CAHandler) serveIndex(w http.ResponseWriter, r *http.Request) error {
	return h.render(w, http.StatusOK, "index.html", h.base(r, "Download Certificates"))
}

// wantsHTML reports whether a request comes from the page's own form in a
// browser (its hidden field makes the form's intent explicit, but the
// multipart body is streamed, so the Accept header of a navigation is what
// is checked): such a request gets its errors on the page rather than as
// plain text.
func wantsHTML(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Mode") == "navigate" {
		return true
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, _ := strings.Cut(strings.TrimSpace(part), ";"); mt == "text/html" {
			return true
		}
	}
	return false
}

// serveSignError shows a refused upload on the "Download Certificates"
// page, with the status of the refusal.
func (h *CAHandler) serveSignError(w http.ResponseWriter, r *http.Request, status int, msg string) error {
	data := h.base(r, "Download Certificates")
	data.Error = msg
	return h.render(w, status, "index.html", data)
}

// serveOpenSession redirects the index page's "open session" form to the
// session page.
func (h *CAHandler) serveOpenSession(w http.ResponseWriter, r *http.Request) error {
	id := strings.TrimSpace(r.URL.Query().Get("id"))
	if !session.ValidID(id) {
		return h.notFound(w, r, "Session not found", "That is not a session id: ids are 1 to 64 letters, digits, '_' or '-'.")
	}
	http.Redirect(w, r, h.Prefix+"/sessions/"+url.PathEscape(id), http.StatusSeeOther)
	return nil
}

// notFound renders the 404 page.
func (h *CAHandler) notFound(w http.ResponseWriter, r *http.Request, title, msg string) error {
	data := h.base(r, title)
	data.Error = msg
	return h.render(w, http.StatusNotFound, "notfound.html", data)
}

// lookupSession finds a session by the id of a participant URL.
func (h *CAHandler) lookupSession(id string) (*session.Resolved, bool) {
	if !session.ValidID(id) {
		return nil, false
	}
	return h.app.state.registry.Session(id)
}

// serveSession serves the session page: the URLs to configure, the
// components and the results. The session id in the path is the
// capability; nothing on the page changes anything, and no key, secret or
// environment value is shown.
func (h *CAHandler) serveSession(w http.ResponseWriter, r *http.Request, id string) error {
	res, ok := h.lookupSession(id)
	if !ok {
		return h.notFound(w, r, "Session not found", "There is no session with this id. Check the link you were given; sessions can also be deleted by the platform's operator.")
	}
	s := res.Session.Redacted()
	q := r.URL.Query()
	status := q.Get("status")
	if status != results.StatusPass && status != results.StatusFail {
		status = ""
	}
	check := q.Get("check")
	if len(check) > maxCheckFilter {
		check = ""
	}

	page := sessionPage{
		pageBase:   h.base(r, "Session "+cmp.Or(s.Name, s.ID)),
		ID:         s.ID,
		Name:       s.Name,
		Group:      s.Group,
		Static:     res.Session.Static,
		Warnings:   res.Session.Warnings,
		URLs:       h.app.SessionURLs(s),
		Check:      check,
		Status:     status,
		ResultsURL: h.Prefix + "/sessions/" + url.PathEscape(s.ID) + "/results",
		SelfURL:    r.URL.RequestURI(),
	}
	page.Script = true
	if !res.Expires.IsZero() {
		page.Expires = res.Expires.UTC().Format(time.RFC3339)
		page.Expired = res.Expired(time.Now())
	}
	for _, c := range s.Components {
		rc := res.Components[c.Slug]
		if rc == nil {
			continue
		}
		v := componentView{Slug: rc.Slug, Simulated: rc.Simulated, Encrypted: rc.UseEncryption}
		if rc.BaseURL != nil && !rc.Simulated {
			v.BaseURL = rc.BaseURL.Redacted()
		}
		v.CA = "the system's trusted roots"
		if rc.CAPool != nil {
			v.CA = "the CA certificate uploaded for " + rc.Slug
		}
		v.ClientCert = "none (server-only TLS)"
		if len(rc.ClientChain) > 0 {
			v.ClientCert = "presented, valid until " + rc.ClientCertNotAfter.UTC().Format("2006-01-02")
		}
		page.Components = append(page.Components, v)
	}

	all := h.app.state.results.Query(s.ID, 0, "", "")
	checks := map[string]bool{}
	for _, r := range all {
		checks[r.Check] = true
		page.Since = max(page.Since, r.ID)
	}
	if check != "" {
		checks[check] = true
	}
	for c := range checks {
		page.Checks = append(page.Checks, c)
	}
	sort.Strings(page.Checks)
	var shown []results.Result
	for i := len(all) - 1; i >= 0 && len(shown) < maxResultRows; i-- {
		if (status == "" || all[i].Status == status) && (check == "" || all[i].Check == check) {
			shown = append(shown, all[i])
		}
	}
	for _, r := range shown {
		page.Results = append(page.Results, newResultView(r))
	}
	switch {
	case len(all) == 0:
		page.Summary = "No results yet."
	case status == "" && check == "":
		page.Summary = fmt.Sprintf("%d results, newest first.", len(all))
	default:
		page.Summary = fmt.Sprintf("%d of %d results match the filter, newest first.", len(shown), len(all))
	}
	if len(shown) == maxResultRows {
		page.Summary += fmt.Sprintf(" Only the newest %d are shown.", maxResultRows)
	}
	return h.render(w, http.StatusOK, "session.html", page)
}

// newResultView prepares a result for the session page.
func newResultView(r results.Result) resultView {
	v := resultView{
		ID:           r.ID,
		TimeISO:      r.Time.UTC().Format(results.TimeFormat),
		TimeText:     r.Time.UTC().Format("2006-01-02 15:04:05"),
		Status:       r.Status,
		Check:        r.Check,
		Source:       r.Source,
		Target:       r.Target,
		Method:       r.Method,
		URI:          r.URI,
		ForwardedURI: r.ForwardedURI,
		Message:      r.Message,
		Expected:     prettyJSON(r.Expected),
		Actual:       prettyJSON(r.Actual),
		ClientCert:   r.ClientCert,
	}
	v.HasDetails = v.Expected != "" || v.Actual != "" || v.ForwardedURI != "" || v.ClientCert != nil
	return v
}

// prettyJSON indents a JSON value for display; invalid JSON is shown as
// it is.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

// serveResults answers {prefix}/sessions/{id}/results on the secure site:
// the same records, filters and errors as the admin API's results of the
// session, for the session page's live refresh.
func (h *CAHandler) serveResults(w http.ResponseWriter, r *http.Request, id string) error {
	jsonErr := func(status int, msg string) error {
		w.Header().Set("Cache-Control", "no-store")
		return writeJSON(w, status, map[string]string{"error": msg})
	}
	if _, ok := h.lookupSession(id); !ok {
		return jsonErr(http.StatusNotFound, fmt.Sprintf("session %s: %v", id, session.ErrNotFound))
	}
	q, err := parseResultsQuery(r.URL.Query())
	if err != nil {
		return jsonErr(http.StatusBadRequest, err.Error())
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	return writeJSON(w, http.StatusOK, h.app.state.results.Query(id, q.since, q.status, q.check))
}

// serveAsset serves an embedded stylesheet or script.
func serveAsset(w http.ResponseWriter, r *http.Request, name string) error {
	data, err := fs.ReadFile(webFS, "web/"+name)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", webAssets[name])
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=300")
	http.ServeContent(w, r, name, webStarted, bytes.NewReader(data))
	return nil
}
