package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/caddy-itp/caddy-itp/internal/ids"
)

// Route is a parsed testing route (DESIGN.md §4):
//
//	/testing/{source}/{target}/{session}/{path...}
//	/testing-insecure/{source}/{target}/{session}/{path...}
//	/testing-group/{source}/{target}/{group}/{path...}
//	/testing-insecure-group/{source}/{target}/{group}/{path...}
//
// All string fields are substrings of the escaped path given to
// ParseRoute, so parsing does not allocate.
type Route struct {
	// Insecure is true for the /testing-insecure and
	// /testing-insecure-group routes.
	Insecure bool

	// Group is true for the group routes, where ID names
	// a group (whose default session is used) instead of
	// a session.
	Group bool

	// Source is the slug of the calling component.
	Source string

	// Target is the slug of the called component.
	Target string

	// ID is the session ID, or the group ID when Group is true.
	ID string

	// Rest is the path to forward to the target, still
	// escaped exactly as received. It always starts with
	// "/", and is "/" when the request path ends right after
	// the ID. It may contain "." and ".." segments and empty
	// segments: they are forwarded verbatim (see ParseRoute).
	Rest string

	// Prefix is the part of the escaped path before Rest,
	// e.g. "/testing/payer/payee/0f1e". For every route,
	// Prefix+Rest equals the parsed path, except when the
	// path ends right after the ID: then Prefix is the whole
	// path and Rest is "/".
	Prefix string
}

// Route kinds, as the first path segment of a testing route.
const (
	routeSecure        = "testing"
	routeInsecure      = "testing-insecure"
	routeGroup         = "testing-group"
	routeInsecureGroup = "testing-insecure-group"
)

// ErrNotTestingRoute is returned by ParseRoute for a path
// that is not under any testing route prefix, so the caller
// can pass the request on to the next handler.
var ErrNotTestingRoute = errors.New("not a testing route")

// RouteError is returned by ParseRoute for a path under a
// testing route prefix whose source, target, session or group
// segment is missing or malformed. Its message is fit to be
// shown to a participant in a 404 or 400 answer.
type RouteError struct {
	// Segment names the bad segment: "source", "target",
	// "session" or "group".
	Segment string

	// Value is the segment as received (escaped); empty
	// when the segment is missing.
	Value string

	// Reason says what is wrong with it.
	Reason string
}

// Error implements error.
func (e *RouteError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("testing route: %s %s", e.Segment, e.Reason)
	}
	return fmt.Sprintf("testing route: %s %q %s", e.Segment, e.Value, e.Reason)
}

// ParseRoute parses the escaped path of a request (use
// r.URL.EscapedPath(), never r.URL.Path) as a testing route.
// It returns ErrNotTestingRoute if the path is not under a
// testing prefix and a *RouteError if a segment is missing or
// does not match ^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$.
//
// Working on the escaped path means that an escaped slash
// ("%2F") can never split or create a segment: "%" is outside
// the segment alphabet, so such a segment is refused, and in
// Rest it stays escaped and is forwarded as received.
//
// Path traversal: "." and ".." cannot be a source, target or
// ID (they are outside the alphabet), so the session a request
// reaches is decided by the first four segments alone and no
// later segment can change it. Rest is forwarded verbatim,
// dot segments included, because it is the participant's
// traffic to the system under test, which may well be testing
// how it handles such paths; the caller appends it to the
// target's base_url path without cleaning it.
func ParseRoute(path string) (Route, error) {
	var rt Route
	if len(path) == 0 || path[0] != '/' {
		return rt, ErrNotTestingRoute
	}
	kind, rest, _ := strings.Cut(path[1:], "/")
	switch kind {
	case routeSecure:
	case routeInsecure:
		rt.Insecure = true
	case routeGroup:
		rt.Group = true
	case routeInsecureGroup:
		rt.Insecure, rt.Group = true, true
	default:
		return rt, ErrNotTestingRoute
	}

	var err error
	if rt.Source, rest, err = segment(rest, "source"); err != nil {
		return Route{}, err
	}
	if rt.Target, rest, err = segment(rest, "target"); err != nil {
		return Route{}, err
	}
	idName := "session"
	if rt.Group {
		idName = "group"
	}
	if rt.ID, rest, err = segment(rest, idName); err != nil {
		return Route{}, err
	}

	// rest is now what followed the ID's slash, if there was
	// one; the slash itself belongs to Rest
	if len(rest) == 0 && path[len(path)-1] != '/' {
		rt.Prefix = path
		rt.Rest = "/"
		return rt, nil
	}
	cut := len(path) - len(rest) - 1
	rt.Prefix = path[:cut]
	rt.Rest = path[cut:]
	return rt, nil
}

// segment takes the next segment off s (up to the next
// slash), validates it and returns it with the remainder
// after the slash.
func segment(s, name string) (seg, rest string, err error) {
	seg, rest, _ = strings.Cut(s, "/")
	if ids.Valid(seg) {
		return seg, rest, nil
	}
	// say what is wrong
	if seg == "" {
		return "", "", &RouteError{Segment: name, Reason: "is missing"}
	}
	if len(seg) > ids.MaxLen {
		return "", "", &RouteError{Segment: name, Value: seg,
			Reason: fmt.Sprintf("is longer than %d characters", ids.MaxLen)}
	}
	if !isAlnum(seg[0]) {
		return "", "", &RouteError{Segment: name, Value: seg,
			Reason: "must start with a letter or a digit"}
	}
	for i := 1; i < len(seg); i++ {
		if c := seg[i]; !isAlnum(c) && c != '-' && c != '_' {
			return "", "", &RouteError{Segment: name, Value: seg,
				Reason: "may contain only letters, digits, '-' and '_'"}
		}
	}
	return seg, rest, nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// JoinPath appends rest (a Route's escaped Rest) to the
// path of base and returns the joined path in its decoded
// and escaped forms, for the Path and RawPath fields of the
// upstream request URL. A trailing slash on base's path is
// not doubled: base "/api/" and rest "/x" give "/api/x". The
// result is not cleaned (see ParseRoute). It fails only if
// rest is not a valid escaped path.
func JoinPath(base *url.URL, rest string) (path, rawPath string, err error) {
	if rest == "" {
		rest = "/"
	}
	raw := strings.TrimSuffix(base.EscapedPath(), "/") + rest
	path, err = url.PathUnescape(raw)
	if err != nil {
		return "", "", fmt.Errorf("joining upstream path: %w", err)
	}
	if path == raw {
		// no escapes: RawPath is not needed
		return path, "", nil
	}
	return path, raw, nil
}
