package itp

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"go.uber.org/zap"

	"github.com/caddy-itp/caddy-itp/results"
	"github.com/caddy-itp/caddy-itp/session"
)

func init() {
	adminRoutes = append(adminRoutes,
		adminRoute{http.MethodPost, "/itp/groups", adminCreateGroup},
		adminRoute{http.MethodGet, "/itp/groups", adminListGroups},
		adminRoute{http.MethodGet, "/itp/groups/*", adminGetGroup},
		adminRoute{http.MethodPut, "/itp/groups/*", adminPutGroup},
		adminRoute{http.MethodDelete, "/itp/groups/*", adminDeleteGroup},
		adminRoute{http.MethodPost, "/itp/sessions", adminCreateSession},
		adminRoute{http.MethodGet, "/itp/sessions", adminListSessions},
		adminRoute{http.MethodGet, "/itp/sessions/*", adminGetSession},
		adminRoute{http.MethodPut, "/itp/sessions/*", adminPutSession},
		adminRoute{http.MethodDelete, "/itp/sessions/*", adminDeleteSession},
		adminRoute{http.MethodGet, "/itp/sessions/*/results", adminSessionResults},
	)
}

// maxCheckFilter bounds the check name a results query filters on.
const maxCheckFilter = 256

// SessionView is a session as the admin API shows it: redacted (no private
// key or secret), with its validation warnings, its Static flag and the
// testing URLs of each pair of components that can talk.
type SessionView struct {
	session.Session
	// URLs are the testing URLs of the session (see App.SessionURLs).
	URLs []SessionURL `json:"urls"`
}

// GroupView is a group as the admin API shows it: redacted, with its
// warnings, the ids of the sessions in it and, when it has a default
// session, the URLs of the group's testing routes.
type GroupView struct {
	session.Group
	// Sessions are the ids of the sessions of the group, sorted.
	Sessions []string `json:"sessions"`
	// URLs are the URLs of the group's testing routes, which reach its
	// default session (see App.GroupURLs); empty without one.
	URLs []SessionURL `json:"urls"`
}

// sessionView returns the view of a redacted session.
func (a *App) sessionView(s session.Session) SessionView {
	return SessionView{Session: s, URLs: a.SessionURLs(s)}
}

// groupViews returns the views of redacted groups.
func (a *App) groupViews(groups ...session.Group) []GroupView {
	out := make([]GroupView, 0, len(groups))
	for _, g := range groups {
		out = append(out, GroupView{Group: g, Sessions: a.state.registry.GroupSessions(g.ID), URLs: a.GroupURLs(g)})
	}
	return out
}

// checkPathID refuses an id in a path that is not a valid id, so that no
// path segment ever reaches a storage key unchecked.
func checkPathID(kind, id string) error {
	if !session.ValidID(id) {
		return apiError(http.StatusBadRequest, fmt.Sprintf("invalid %s id %q: ids are 1 to 64 letters, digits, '_' or '-', starting with a letter or digit", kind, id))
	}
	return nil
}

// registryError turns an error of the session registry into an admin API
// error: a *session.FieldError is a 400 naming the field, an unknown id a
// 404, and an existing id, a read-only session or a group (certificate)
// still in use a 409.
func registryError(err error) error {
	var fe *session.FieldError
	switch {
	case errors.As(err, &fe):
		return apiError(http.StatusBadRequest, fe.Error())
	case errors.Is(err, session.ErrNotFound):
		return apiError(http.StatusNotFound, err.Error())
	case errors.Is(err, session.ErrConflict),
		errors.Is(err, session.ErrReadOnly),
		errors.Is(err, session.ErrInUse):
		return apiError(http.StatusConflict, err.Error())
	}
	return errorToAPI(err)
}

// ---- groups ----

func adminCreateGroup(app *App, w http.ResponseWriter, r *http.Request, _ []string) error {
	var g session.Group
	if err := decodeJSON(w, r, &g); err != nil {
		return err
	}
	created, err := app.state.registry.CreateGroup(r.Context(), g)
	if err != nil {
		return registryError(err)
	}
	app.audit(r, "group", auditCreate, created.ID, created.Name, created.Warnings)
	return writeJSON(w, http.StatusCreated, app.groupViews(created)[0])
}

func adminListGroups(app *App, w http.ResponseWriter, _ *http.Request, _ []string) error {
	return writeJSON(w, http.StatusOK, app.groupViews(app.state.registry.ListGroups()...))
}

func adminGetGroup(app *App, w http.ResponseWriter, _ *http.Request, ids []string) error {
	if err := checkPathID("group", ids[0]); err != nil {
		return err
	}
	g, err := app.state.registry.GetGroup(ids[0])
	if err != nil {
		return registryError(err)
	}
	return writeJSON(w, http.StatusOK, app.groupViews(g)[0])
}

func adminPutGroup(app *App, w http.ResponseWriter, r *http.Request, ids []string) error {
	if err := checkPathID("group", ids[0]); err != nil {
		return err
	}
	var g session.Group
	if err := decodeJSON(w, r, &g); err != nil {
		return err
	}
	changed, err := app.state.registry.PutGroup(r.Context(), ids[0], g)
	if err != nil {
		return registryError(err)
	}
	app.audit(r, "group", auditChange, changed.ID, changed.Name, changed.Warnings)
	return writeJSON(w, http.StatusOK, app.groupViews(changed)[0])
}

func adminDeleteGroup(app *App, w http.ResponseWriter, r *http.Request, ids []string) error {
	if err := checkPathID("group", ids[0]); err != nil {
		return err
	}
	var name string
	if g, err := app.state.registry.GetGroup(ids[0]); err == nil {
		name = g.Name
	}
	if err := app.state.registry.DeleteGroup(r.Context(), ids[0]); err != nil {
		return registryError(err)
	}
	app.audit(r, "group", auditDelete, ids[0], name, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- sessions ----

func adminCreateSession(app *App, w http.ResponseWriter, r *http.Request, _ []string) error {
	var s session.Session
	if err := decodeJSON(w, r, &s); err != nil {
		return err
	}
	res, err := app.state.registry.CreateSession(r.Context(), s)
	if err != nil {
		return registryError(err)
	}
	view := app.sessionView(res.Session.Redacted())
	app.audit(r, "session", auditCreate, view.ID, view.Name, view.Warnings)
	return writeJSON(w, http.StatusCreated, view)
}

func adminListSessions(app *App, w http.ResponseWriter, _ *http.Request, _ []string) error {
	list := app.state.registry.ListSessions()
	out := make([]SessionView, 0, len(list))
	for _, s := range list {
		out = append(out, app.sessionView(s))
	}
	return writeJSON(w, http.StatusOK, out)
}

func adminGetSession(app *App, w http.ResponseWriter, _ *http.Request, ids []string) error {
	if err := checkPathID("session", ids[0]); err != nil {
		return err
	}
	s, err := app.state.registry.GetSession(ids[0])
	if err != nil {
		return registryError(err)
	}
	return writeJSON(w, http.StatusOK, app.sessionView(s))
}

func adminPutSession(app *App, w http.ResponseWriter, r *http.Request, ids []string) error {
	if err := checkPathID("session", ids[0]); err != nil {
		return err
	}
	var s session.Session
	if err := decodeJSON(w, r, &s); err != nil {
		return err
	}
	res, err := app.state.registry.PutSession(r.Context(), ids[0], s)
	if err != nil {
		return registryError(err)
	}
	view := app.sessionView(res.Session.Redacted())
	app.audit(r, "session", auditChange, view.ID, view.Name, view.Warnings)
	return writeJSON(w, http.StatusOK, view)
}

func adminDeleteSession(app *App, w http.ResponseWriter, r *http.Request, ids []string) error {
	id := ids[0]
	if err := checkPathID("session", id); err != nil {
		return err
	}
	var name string
	if res, ok := app.state.registry.Session(id); ok {
		name = res.Session.Name
	}
	if err := app.state.registry.DeleteSession(r.Context(), id); err != nil {
		return registryError(err)
	}
	app.audit(r, "session", auditDelete, id, name, nil)
	if err := app.state.results.Delete(r.Context(), id); err != nil {
		app.logger.Error("deleting the results of a deleted session", zap.String("session", id), zap.Error(err))
		return apiError(http.StatusInternalServerError, fmt.Sprintf("session %s deleted, but its results could not be: %v", id, err))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// adminSessionResults answers GET /itp/sessions/{id}/results: the session's
// results, oldest first, filtered by ?since=ID (only newer records),
// ?status=pass|fail and ?check=NAME.
func adminSessionResults(app *App, w http.ResponseWriter, r *http.Request, ids []string) error {
	id := ids[0]
	if err := checkPathID("session", id); err != nil {
		return err
	}
	if _, ok := app.state.registry.Session(id); !ok {
		return apiError(http.StatusNotFound, fmt.Sprintf("session %s: %v", id, session.ErrNotFound))
	}
	q, err := parseResultsQuery(r.URL.Query())
	if err != nil {
		return apiError(http.StatusBadRequest, err.Error())
	}
	return writeJSON(w, http.StatusOK, app.state.results.Query(id, q.since, q.status, q.check))
}

// resultsQuery is the filter of a results request.
type resultsQuery struct {
	since         int64
	status, check string
}

// parseResultsQuery reads ?since=ID, ?status=pass|fail and ?check=NAME, as
// the admin API and the participant pages take them.
func parseResultsQuery(v url.Values) (resultsQuery, error) {
	var q resultsQuery
	if s := v.Get("since"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return q, fmt.Errorf("query parameter \"since\": %q is not a result id (a non-negative integer)", s)
		}
		q.since = n
	}
	q.status = v.Get("status")
	if q.status != "" && q.status != results.StatusPass && q.status != results.StatusFail {
		return q, fmt.Errorf("query parameter \"status\": %q is neither %q nor %q", q.status, results.StatusPass, results.StatusFail)
	}
	q.check = v.Get("check")
	if len(q.check) > maxCheckFilter {
		return q, fmt.Errorf("query parameter \"check\": longer than %d bytes", maxCheckFilter)
	}
	return q, nil
}
