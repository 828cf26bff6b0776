package proxy

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-itp/caddy-itp/internal/ids"
)

func TestParseRoute(t *testing.T) {
	for _, tc := range []struct {
		path    string
		want    Route
		notTest bool   // want ErrNotTestingRoute
		badSeg  string // want a *RouteError for this segment
	}{
		{path: "/testing/payer/payee/s1/quotes", want: Route{Source: "payer", Target: "payee", ID: "s1", Rest: "/quotes", Prefix: "/testing/payer/payee/s1"}},
		{path: "/testing/payer/payee/s1", want: Route{Source: "payer", Target: "payee", ID: "s1", Rest: "/", Prefix: "/testing/payer/payee/s1"}},
		{path: "/testing/payer/payee/s1/", want: Route{Source: "payer", Target: "payee", ID: "s1", Rest: "/", Prefix: "/testing/payer/payee/s1"}},
		{path: "/testing-insecure/a/b/c/x/y", want: Route{Insecure: true, Source: "a", Target: "b", ID: "c", Rest: "/x/y", Prefix: "/testing-insecure/a/b/c"}},
		{path: "/testing-group/a/b/g1/x", want: Route{Group: true, Source: "a", Target: "b", ID: "g1", Rest: "/x", Prefix: "/testing-group/a/b/g1"}},
		{path: "/testing-insecure-group/a/b/g1", want: Route{Insecure: true, Group: true, Source: "a", Target: "b", ID: "g1", Rest: "/", Prefix: "/testing-insecure-group/a/b/g1"}},
		{path: "/testing/a/b/0f8fad5b-d9cb-469f-a165-70867728950e/parties/MSISDN/123", want: Route{Source: "a", Target: "b", ID: "0f8fad5b-d9cb-469f-a165-70867728950e", Rest: "/parties/MSISDN/123", Prefix: "/testing/a/b/0f8fad5b-d9cb-469f-a165-70867728950e"}},
		// escapes, empty segments and dot segments in Rest are kept verbatim
		{path: "/testing/a/b/c/x%2Fy//../z", want: Route{Source: "a", Target: "b", ID: "c", Rest: "/x%2Fy//../z", Prefix: "/testing/a/b/c"}},
		{path: "/testing/a/b/c//", want: Route{Source: "a", Target: "b", ID: "c", Rest: "//", Prefix: "/testing/a/b/c"}},
		{path: "/testing/a_1/B-2/C_-/x", want: Route{Source: "a_1", Target: "B-2", ID: "C_-", Rest: "/x", Prefix: "/testing/a_1/B-2/C_-"}},
		{path: "/testing/a/b/" + strings.Repeat("x", 64), want: Route{Source: "a", Target: "b", ID: strings.Repeat("x", 64), Rest: "/", Prefix: "/testing/a/b/" + strings.Repeat("x", 64)}},

		{path: "", notTest: true},
		{path: "/", notTest: true},
		{path: "testing/a/b/c", notTest: true},
		{path: "/testingx/a/b/c", notTest: true},
		{path: "/Testing/a/b/c", notTest: true},
		{path: "/itp/certificates", notTest: true},
		{path: "/testing%2Fa/b/c/d", notTest: true},

		{path: "/testing", badSeg: "source"},
		{path: "/testing/", badSeg: "source"},
		{path: "/testing//b/c", badSeg: "source"},
		{path: "/testing/a", badSeg: "target"},
		{path: "/testing/a/", badSeg: "target"},
		{path: "/testing/a/b", badSeg: "session"},
		{path: "/testing/a/b/", badSeg: "session"},
		{path: "/testing-group/a/b/", badSeg: "group"},
		{path: "/testing/a%2Fb/c/d", badSeg: "source"},
		{path: "/testing/a/b%2F/c/d", badSeg: "target"},
		{path: "/testing/../b/c/d", badSeg: "source"},
		{path: "/testing/a/../c/d", badSeg: "target"},
		{path: "/testing/a/b/../d", badSeg: "session"},
		{path: "/testing/a/b/./d", badSeg: "session"},
		{path: "/testing/-a/b/c", badSeg: "source"},
		{path: "/testing/_a/b/c", badSeg: "source"},
		{path: "/testing/a/b/c.d", badSeg: "session"},
		{path: "/testing/a/b/c d", badSeg: "session"},
		{path: "/testing/a/b/é", badSeg: "session"},
		{path: "/testing/a/b/" + strings.Repeat("x", 65), badSeg: "session"},
	} {
		got, err := ParseRoute(tc.path)
		switch {
		case tc.notTest:
			if !errors.Is(err, ErrNotTestingRoute) {
				t.Errorf("ParseRoute(%q): err = %v, want ErrNotTestingRoute", tc.path, err)
			}
		case tc.badSeg != "":
			var re *RouteError
			if !errors.As(err, &re) {
				t.Errorf("ParseRoute(%q): err = %v, want a *RouteError", tc.path, err)
				continue
			}
			if re.Segment != tc.badSeg {
				t.Errorf("ParseRoute(%q): bad segment %q, want %q (%v)", tc.path, re.Segment, tc.badSeg, err)
			}
			if !strings.Contains(err.Error(), tc.badSeg) {
				t.Errorf("ParseRoute(%q): error %q does not name %q", tc.path, err, tc.badSeg)
			}
		default:
			if err != nil {
				t.Errorf("ParseRoute(%q): %v", tc.path, err)
				continue
			}
			if got != tc.want {
				t.Errorf("ParseRoute(%q) =\n  %+v\nwant\n  %+v", tc.path, got, tc.want)
			}
		}
	}
}

func TestParseRouteFromRequestURL(t *testing.T) {
	// the escaped form keeps %2F out of segment splitting
	u, err := url.Parse("https://localhost:8443/testing/a/b/c/files/x%2Fy?q=1")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := ParseRoute(u.EscapedPath())
	if err != nil {
		t.Fatal(err)
	}
	if rt.Rest != "/files/x%2Fy" {
		t.Errorf("Rest = %q", rt.Rest)
	}
	u, _ = url.Parse("https://localhost:8443/testing/a%2Fb/c/d/e")
	if _, err := ParseRoute(u.EscapedPath()); err == nil {
		t.Errorf("escaped slash in a segment was accepted")
	}
}

// TestSegmentAlphabet: the route segments are exactly the safe ids.
func TestSegmentAlphabet(t *testing.T) {
	for s, want := range map[string]bool{
		"payer": true, "a": true, "0f8fad5b-d9cb-469f-a165-70867728950e": true, strings.Repeat("a", 64): true,
		"": false, "-a": false, "a/b": false, "a/": false, "a.b": false, strings.Repeat("a", 65): false, "..": false,
	} {
		if got := ids.Valid(s); got != want {
			t.Errorf("ids.Valid(%q) = %v, want %v", s, got, want)
		}
		_, rest, err := segment(s, "session")
		if got := err == nil && rest == "" && !strings.Contains(s, "/"); got != want {
			t.Errorf("segment(%q) accepts = %v, want %v", s, got, want)
		}
	}
}

func TestJoinPath(t *testing.T) {
	for _, tc := range []struct {
		base, rest, path, raw string
	}{
		{"https://h/api", "/x", "/api/x", ""},
		{"https://h/api/", "/x", "/api/x", ""},
		{"https://h", "/x", "/x", ""},
		{"https://h", "/", "/", ""},
		{"https://h/api", "/", "/api/", ""},
		{"https://h/api", "", "/api/", ""},
		{"https://h/api", "/a%2Fb", "/api/a/b", "/api/a%2Fb"},
		{"https://h/a%20b", "/c", "/a b/c", "/a%20b/c"},
		{"https://h/api", "/../x", "/api/../x", ""},
	} {
		base, err := url.Parse(tc.base)
		if err != nil {
			t.Fatal(err)
		}
		path, raw, err := JoinPath(base, tc.rest)
		if err != nil {
			t.Errorf("JoinPath(%q, %q): %v", tc.base, tc.rest, err)
			continue
		}
		if path != tc.path || raw != tc.raw {
			t.Errorf("JoinPath(%q, %q) = %q, %q; want %q, %q", tc.base, tc.rest, path, raw, tc.path, tc.raw)
		}
		// the pair must round-trip through url.URL
		u := url.URL{Path: path, RawPath: raw}
		want := tc.raw
		if want == "" {
			want = (&url.URL{Path: tc.path}).EscapedPath()
		}
		if got := u.EscapedPath(); got != want {
			t.Errorf("EscapedPath = %q, want %q", got, want)
		}
	}
	base, _ := url.Parse("https://h/api")
	if _, _, err := JoinPath(base, "/%zz"); err == nil {
		t.Errorf("bad escape accepted")
	}
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"/testing/payer/payee/s1/quotes", "/testing-insecure/a/b/c", "/testing-group/a/b/g/",
		"/testing-insecure-group/a/b/g/x%2Fy", "/testing/a/b/c//..//", "/testing/a%2Fb/c/d", "/", "",
		"/testing/a/b", "/testing//", "/testing/a/b/c?x", "/testing/\x00/b/c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, err := ParseRoute(path)
		if err != nil {
			var re *RouteError
			if !errors.Is(err, ErrNotTestingRoute) && !errors.As(err, &re) {
				t.Fatalf("ParseRoute(%q): untyped error %v", path, err)
			}
			if rt != (Route{}) {
				t.Fatalf("ParseRoute(%q): non-zero route with error: %+v", path, rt)
			}
			return
		}
		if rt.Prefix == path {
			if rt.Rest != "/" {
				t.Fatalf("ParseRoute(%q): Prefix is the whole path but Rest = %q", path, rt.Rest)
			}
		} else if rt.Prefix+rt.Rest != path {
			t.Fatalf("ParseRoute(%q): Prefix %q + Rest %q does not reconstruct the input", path, rt.Prefix, rt.Rest)
		}
		if !strings.HasPrefix(rt.Rest, "/") {
			t.Fatalf("ParseRoute(%q): Rest %q does not start with /", path, rt.Rest)
		}
		for _, seg := range []string{rt.Source, rt.Target, rt.ID} {
			if !ids.Valid(seg) || !segmentRE(seg) {
				t.Fatalf("ParseRoute(%q): invalid segment %q accepted", path, seg)
			}
		}
		kind := "/testing"
		if rt.Insecure {
			kind += "-insecure"
		}
		if rt.Group {
			kind += "-group"
		}
		if want := kind + "/" + rt.Source + "/" + rt.Target + "/" + rt.ID; rt.Prefix != want {
			t.Fatalf("ParseRoute(%q): Prefix %q, want %q", path, rt.Prefix, want)
		}
		// parsing is idempotent on the reconstruction
		again, err := ParseRoute(rt.Prefix + rt.Rest)
		if err != nil || again != rt {
			t.Fatalf("ParseRoute(%q) reparse = %+v, %v; want %+v", rt.Prefix+rt.Rest, again, err, rt)
		}
	})
}

// segmentRE is an independent spelling of
// ^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$ for the fuzz test.
func segmentRE(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i, r := range s {
		ok := r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		if i > 0 && (r == '-' || r == '_') {
			ok = true
		}
		if !ok {
			return false
		}
	}
	return true
}

func BenchmarkParseRoute(b *testing.B) {
	const path = "/testing/payer/payee/0f8fad5b-d9cb-469f-a165-70867728950e/parties/MSISDN/123456789"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRoute(path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRouteNotTesting(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRoute("/itp/certificates"); err != ErrNotTestingRoute {
			b.Fatal(err)
		}
	}
}
