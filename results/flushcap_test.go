package results

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// TestFlushCapWritesLongestWaitingFirst: a capped flush writes only that
// many sessions, those dirty the longest, and the rest on later flushes.
func TestFlushCapWritesLongestWaitingFirst(t *testing.T) {
	st := &certmagic.FileStorage{Path: t.TempDir()}
	s := New(st, nil, Options{FlushInterval: time.Hour})
	defer s.Close()
	start := time.Now().Add(-time.Minute)
	for i := range 5 {
		s.Record(Result{Session: fmt.Sprintf("s%d", i), Time: start.Add(time.Duration(i) * time.Second), Check: "c", Status: StatusPass})
	}
	ctx := context.Background()
	if err := s.flush(ctx, 2); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		want := i < 2
		if got := st.Exists(ctx, Key(fmt.Sprintf("s%d", i))); got != want {
			t.Fatalf("after one capped flush, s%d stored = %v, want %v", i, got, want)
		}
	}
	if err := s.flush(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(ctx, 2); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if !st.Exists(ctx, Key(fmt.Sprintf("s%d", i))) {
			t.Fatalf("s%d never written", i)
		}
	}
}

// TestSetPerSession grows and shrinks the bound of a wrapped ring: the
// newest results are kept, oldest first.
func TestSetPerSession(t *testing.T) {
	s := New(&certmagic.FileStorage{Path: t.TempDir()}, nil, Options{PerSession: 3, FlushInterval: time.Hour})
	defer s.Close()
	rec := func(n int) {
		for range n {
			s.Record(Result{Session: "s", Check: "c", Status: StatusPass})
		}
	}
	ids := func() string {
		out := ""
		for _, r := range s.Query("s", 0, "", "") {
			out += fmt.Sprint(r.ID, " ")
		}
		return out
	}
	rec(5) // wrapped: 3 4 5
	s.SetPerSession(5)
	rec(3)
	if got := ids(); got != "4 5 6 7 8 " {
		t.Fatalf("after growing: %s", got)
	}
	s.SetPerSession(2)
	rec(1)
	if got := ids(); got != "8 9 " {
		t.Fatalf("after shrinking: %s", got)
	}
}
