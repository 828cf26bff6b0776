package results

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// BenchmarkFlushFullSession measures a flush of a session with a full
// list of 1000 results of which one is new, the steady state under load.
func BenchmarkFlushFullSession(b *testing.B) {
	s := New(&certmagic.FileStorage{Path: b.TempDir()}, nil, Options{FlushInterval: time.Hour})
	defer s.Close()
	r := Result{Session: "s", Check: "Was encrypted?", Status: StatusFail, Expected: json.RawMessage(`{"mtls":true}`), Actual: json.RawMessage(`{"mtls":false}`), Message: "plain HTTP was used where mutual TLS was expected", Method: "GET", URI: "/testing-insecure/a/b/s/x", ForwardedURI: "/x"}
	for range 1000 {
		s.Record(r)
	}
	v, _ := s.logs.Load("s")
	l := v.(*sessionLog)
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Record(r)
			l.mu.Lock()
			if _, err := l.document("s"); err != nil {
				b.Fatal(err)
			}
			l.mu.Unlock()
		}
	})
	// what a flush cost when every result was encoded again each time
	b.Run("reencoded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Record(r)
			l.mu.Lock()
			list := storedList{Session: "s", LastID: l.lastID}
			l.ordered(func(r *Result) bool { list.Results = append(list.Results, *r); return true })
			if _, err := json.Marshal(list); err != nil {
				b.Fatal(err)
			}
			l.mu.Unlock()
		}
	})
}
