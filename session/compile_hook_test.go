package session

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestCompileJWSRuleHook checks that rules are compiled once at
// registration, their compiled form kept for lookups, and a hook error
// refuses a new session naming the rule's field but only warns for a
// session read back from storage.
func TestCompileJWSRuleHook(t *testing.T) {
	storage := newStorage(t)
	calls := 0
	r := newRegistry(t, storage, Options{
		CompileJWSRule: func(rule ResolvedJWSRule) (any, error) {
			calls++
			if len(rule.ProtectedHeaders) == 1 && rule.ProtectedHeaders[0] == "X-Refuse" {
				return nil, &FieldError{Field: "private_key", Msg: "does not match public_key"}
			}
			return rule.Index*10 + 1, nil
		},
	})
	ctx := context.Background()
	if _, err := r.CreateSession(ctx, validSession(t, "s1")); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("the hook ran %d times for 2 rules", calls)
	}
	got, ok := r.Session("s1")
	if !ok || got.JWS[0].Compiled != 1 || got.JWS[1].Compiled != 11 {
		t.Fatalf("compiled rules: %+v", got)
	}
	for range 3 {
		r.Session("s1")
	}
	if calls != 2 {
		t.Fatalf("lookups compiled again: %d calls", calls)
	}

	bad := validSession(t, "s2")
	bad.JWS[1].ProtectedHeaders = []string{"X-Refuse"}
	_, err := r.CreateSession(ctx, bad)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "jws[1].private_key" || !strings.Contains(fe.Msg, "does not match") {
		t.Fatalf("hook error: %v", err)
	}

	// a registry whose hook now refuses what storage holds keeps the
	// session, with a warning and the rule uncompiled
	r2 := newRegistry(t, storage, Options{
		CompileJWSRule: func(rule ResolvedJWSRule) (any, error) {
			if rule.Index == 1 {
				return nil, errors.New("key no longer parses")
			}
			return "ok", nil
		},
	})
	got, ok = r2.Session("s1")
	if !ok {
		t.Fatal("session s1 not loaded from storage")
	}
	if got.JWS[0].Compiled != "ok" || got.JWS[1].Compiled != nil {
		t.Fatalf("compiled after reload: %v, %v", got.JWS[0].Compiled, got.JWS[1].Compiled)
	}
	if len(got.Session.Warnings) == 0 || !strings.Contains(strings.Join(got.Session.Warnings, "\n"), "jws[1]: key no longer parses") {
		t.Fatalf("warnings: %q", got.Session.Warnings)
	}
}
