package itp

import (
	"net/url"

	"github.com/caddy-itp/caddy-itp/session"
)

// Path prefixes of the testing routes (DESIGN.md §4).
const (
	testingPrefix              = "/testing/"
	testingInsecurePrefix      = "/testing-insecure/"
	testingGroupPrefix         = "/testing-group/"
	testingInsecureGroupPrefix = "/testing-insecure-group/"
)

// SessionURL is the pair of URLs a participant configures so that the
// source component reaches the target component through the platform: the
// secure one (mTLS with an ITP certificate) and the insecure one (plain
// HTTP, recorded as a failed "Was encrypted?" check).
type SessionURL struct {
	// Source is the slug of the calling component.
	Source string `json:"source"`
	// Target is the slug of the called component.
	Target string `json:"target"`
	// Secure is the URL under the app's public_url, e.g.
	// "https://localhost:8443/testing/payer/hub/ID".
	Secure string `json:"secure"`
	// Insecure is the URL under the app's public_insecure_url, e.g.
	// "http://localhost:8080/testing-insecure/payer/hub/ID".
	Insecure string `json:"insecure"`
}

// SessionURLs returns the testing URLs of a session: one SessionURL for
// each ordered pair of distinct components whose target can receive
// requests (a simulated component, or a system under test with a
// base_url), ordered by source, then target, in the order of the
// session's components. Any component may
// be the source. The URLs are built from the app's public URLs.
func (a *App) SessionURLs(s session.Session) []SessionURL {
	return a.pairURLs(s.Components, testingPrefix, testingInsecurePrefix, s.ID)
}

// GroupURLs returns the testing URLs of a group's routes, which reach the
// group's default session: like SessionURLs for that session, but with the
// group id in place of the session id. It returns nil when the group has no
// default session or that session does not exist.
func (a *App) GroupURLs(g session.Group) []SessionURL {
	if g.DefaultSession == "" {
		return nil
	}
	res, ok := a.state.registry.Session(g.DefaultSession)
	if !ok {
		return nil
	}
	return a.pairURLs(res.Session.Components, testingGroupPrefix, testingInsecureGroupPrefix, g.ID)
}

// pairURLs builds the URLs of every pair of components that can talk, with
// the given route prefixes and session or group id.
func (a *App) pairURLs(comps []session.Component, securePrefix, insecurePrefix, id string) []SessionURL {
	secure, insecure := a.PublicURLs()
	out := []SessionURL{}
	for _, source := range comps {
		for _, target := range comps {
			if source.Slug == target.Slug || (!target.Simulated && target.BaseURL == "") {
				continue
			}
			tail := source.Slug + "/" + target.Slug + "/" + id
			out = append(out, SessionURL{
				Source:   source.Slug,
				Target:   target.Slug,
				Secure:   joinBase(secure, securePrefix+tail),
				Insecure: joinBase(insecure, insecurePrefix+tail),
			})
		}
	}
	return out
}

// joinBase appends an absolute path to a base URL that may have a path of
// its own (public URLs are stored without a trailing slash).
func joinBase(base *url.URL, path string) string {
	if base == nil {
		return path
	}
	u := *base
	u.Path = base.Path + path
	u.RawPath = ""
	return u.String()
}
