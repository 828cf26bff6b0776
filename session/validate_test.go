package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidationErrors(t *testing.T) {
	p := getPKI(t)
	r := newRegistry(t, newStorage(t), Options{
		CompileJWSRule: func(rule ResolvedJWSRule) (any, error) {
			if rule.PublicKey == p.jwsPubPEM2 && rule.PrivateKey != "" {
				return nil, &FieldError{Field: "private_key", Msg: "does not match public_key"}
			}
			return nil, nil
		},
	})
	ctx := context.Background()
	if _, err := r.CreateGroup(ctx, Group{ID: "g1", Certificates: []Certificate{{ID: "c1", CACert: p.caPEM, ClientCert: p.clientPEM}}}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		edit  func(s *Session)
		field string
		msg   string
	}{
		{"bad id", func(s *Session) { s.ID = "../x" }, "id", "letters"},
		{"long id", func(s *Session) { s.ID = strings.Repeat("a", 65) }, "id", ""},
		{"bad slug", func(s *Session) { s.Components[1].Slug = "a/b" }, "components[1].slug", ""},
		{"dup slug", func(s *Session) { s.Components[1].Slug = "payer" }, "components[1].slug", "duplicates"},
		{"no components", func(s *Session) { s.Components = nil; s.JWS = nil }, "components", ""},
		{"unknown group", func(s *Session) { s.Group = "nope" }, "group", "unknown group"},
		{"unknown group cert", func(s *Session) {
			s.Group = "g1"
			s.Components[0].CACert, s.Components[0].ClientCert, s.Components[0].Certificate = "", "", "c9"
		}, "components[0].certificate", "no certificate"},
		{"cert without group", func(s *Session) {
			s.Components[0].CACert, s.Components[0].ClientCert, s.Components[0].Certificate = "", "", "c1"
		}, "components[0].certificate", "no group"},
		{"cert and inline", func(s *Session) { s.Group = "g1"; s.Components[0].Certificate = "c1" }, "components[0].certificate", "either"},
		{"use_encryption contradicts https", func(s *Session) { s.Components[0].UseEncryption = boolp(false) }, "components[0].use_encryption", "agree"},
		{"use_encryption contradicts http", func(s *Session) {
			s.Components[0].BaseURL = "http://payer.example"
			s.Components[0].UseEncryption = boolp(true)
		}, "components[0].use_encryption", ""},
		{"ftp url", func(s *Session) { s.Components[0].BaseURL = "ftp://x" }, "components[0].base_url", "http"},
		{"userinfo", func(s *Session) { s.Components[0].BaseURL = "https://u:p@x.example" }, "components[0].base_url", "user"},
		{"fragment", func(s *Session) { s.Components[0].BaseURL = "https://x.example/a#f" }, "components[0].base_url", "fragment"},
		{"no host", func(s *Session) { s.Components[0].BaseURL = "https:///path" }, "components[0].base_url", "host"},
		{"bad port", func(s *Session) { s.Components[0].BaseURL = "https://x.example:99999" }, "components[0].base_url", ""},
		{"client cert wrong key", func(s *Session) { s.Components[0].ClientCert = p.wrongKeyPEM }, "components[0].client_cert", "upstream key"},
		{"client cert expired", func(s *Session) { s.Components[0].ClientCert = p.expiredPEM }, "components[0].client_cert", "expired"},
		{"ca cert expired", func(s *Session) { s.Components[0].CACert = p.expiredCAPEM }, "components[0].ca_cert", "expired on"},
		{"bad pem", func(s *Session) { s.Components[0].CACert = "hello" }, "components[0].ca_cert", "PEM"},
		{"garbage after pem", func(s *Session) { s.Components[0].CACert = p.caPEM + "junk" }, "components[0].ca_cert", "after"},
		{"private key as ca", func(s *Session) { s.Components[0].CACert = p.jwsPrivPEM }, "components[0].ca_cert", "private key"},
		{"jws unknown source", func(s *Session) { s.JWS[0].Source = "nobody" }, "jws[0].source", ""},
		{"jws unknown target", func(s *Session) { s.JWS[1].Target = "nobody" }, "jws[1].target", ""},
		{"jws direction", func(s *Session) { s.JWS[0].Direction = "both" }, "jws[0].direction", ""},
		{"jws mode", func(s *Session) { s.JWS[0].Mode = "maybe" }, "jws[0].mode", ""},
		{"jws format", func(s *Session) { s.JWS[0].Format = "xml" }, "jws[0].format", ""},
		{"jws alg none", func(s *Session) { s.JWS[0].Alg = "none" }, "jws[0].alg", ""},
		{"jws header", func(s *Session) { s.JWS[0].Header = "Bad Header" }, "jws[0].header", ""},
		{"jws undefined env", func(s *Session) { s.JWS[0].PublicKey = "{{ env.NOPE }}" }, "jws[0].public_key", "NOPE"},
		{"jws undefined file_env", func(s *Session) { s.JWS[1].PrivateKey = "{{ file_env./etc/passwd }}" }, "jws[1].private_key", "malformed"},
		{"jws sign without key", func(s *Session) { s.JWS[1].PrivateKey = "" }, "jws[1].private_key", "required"},
		{"jws secret with RS", func(s *Session) { s.JWS[0].Secret = "x" }, "jws[0].secret", ""},
		{"jws HS without secret", func(s *Session) { s.JWS[0].Alg = "HS256" }, "jws[0].secret", "required"},
		{"jws private key in public_key", func(s *Session) { s.JWS[0].PublicKey = p.jwsPrivPEM }, "jws[0].public_key", "private key"},
		{"jws check hook", func(s *Session) { s.Environment["HUB_JWS_PUBLIC_KEY"] = p.jwsPubPEM2 }, "jws[1].private_key", "does not match"},
		{"env undefined in ca_cert", func(s *Session) { s.Components[0].CACert = "{{ env.SUT_CA }}" }, "components[0].ca_cert", "SUT_CA"},
		{"bad env name", func(s *Session) { s.Environment["A B"] = "x" }, "environment", ""},
		{"expired session", func(s *Session) { past := time.Now().Add(-time.Minute); s.Expires = &past }, "expires", "past"},
		{"allowed clients empty", func(s *Session) { s.Components[0].AllowedClients = []string{" "} }, "components[0].allowed_clients[0]", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := validSession(t, "")
			tc.edit(&s)
			_, err := r.CreateSession(ctx, s)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("want a *FieldError for %s, got %v", tc.field, err)
			}
			if fe.Field != tc.field || !strings.Contains(fe.Error(), tc.msg) {
				t.Fatalf("got %q, want field %s with %q", fe.Error(), tc.field, tc.msg)
			}
		})
	}
	if got := r.ListSessions(); len(got) != 0 {
		t.Fatalf("refused sessions were stored: %d", len(got))
	}
}

func TestWarnings(t *testing.T) {
	p := getPKI(t)
	r := newRegistry(t, newStorage(t), Options{})
	ctx := context.Background()
	s := validSession(t, "warn")
	s.Components = append(s.Components,
		Component{Slug: "soon", BaseURL: "https://soon.example", CACert: p.caPEM, ClientCert: p.soonPEM},
		Component{Slug: "foreign", BaseURL: "https://f.example", CACert: p.caPEM, ClientCert: p.foreignPEM},
	)
	res, err := r.CreateSession(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(res.Session.Warnings, "\n")
	if !strings.Contains(all, "components[2].client_cert: expires soon") ||
		!strings.Contains(all, "components[3].client_cert: does not chain to ca_cert") ||
		len(res.Session.Warnings) != 2 {
		t.Fatalf("warnings: %q", res.Session.Warnings)
	}
	got, err := r.GetSession("warn")
	if err != nil || len(got.Warnings) != 2 {
		t.Fatalf("GET warnings: %v %q", err, got.Warnings)
	}
	b, _ := json.Marshal(got)
	if !strings.Contains(string(b), `"warnings":[`) {
		t.Fatalf("warnings not in JSON: %s", b)
	}
	// A CA close to expiry is a warning too.
	r2 := newRegistry(t, newStorage(t), Options{ExpiryWarning: 10 * 365 * 24 * time.Hour})
	res, err = r2.CreateSession(ctx, validSession(t, "w2"))
	if err != nil {
		t.Fatal(err)
	}
	if all := strings.Join(res.Session.Warnings, "\n"); !strings.Contains(all, "ca_cert: certificate \"CN=SUT CA\" expires soon") {
		t.Fatalf("warnings: %q", res.Session.Warnings)
	}
}

func TestResolved(t *testing.T) {
	p := getPKI(t)
	r := newRegistry(t, newStorage(t), Options{})
	ctx := context.Background()
	if _, err := r.CreateGroup(ctx, Group{
		ID:          "g1",
		Environment: map[string]string{"SUT_CA": p.caPEM, "PAYER_JWS_PUBLIC_KEY": "group value", "SHARED": p.jwsPubPEM},
		Certificates: []Certificate{
			{ID: "c1", CACert: "{{ env.SUT_CA }}", ClientCert: p.clientPEM},
		},
	}); err != nil {
		t.Fatal(err)
	}
	s := validSession(t, "r1")
	s.Group = "g1"
	s.Components[0].CACert, s.Components[0].ClientCert, s.Components[0].Certificate = "", "", "c1"
	s.Components[0].AllowedClients = []string{"Payer App", "SHA256:" + strings.ToUpper(strings.Repeat("ab", 32))}
	s.Components = append(s.Components,
		Component{Slug: "same", BaseURL: "https://other.example", CACert: p.caPEM, ClientCert: p.clientPEM},
		Component{Slug: "noclient", BaseURL: "https://other.example", CACert: p.caPEM},
		Component{Slug: "system", BaseURL: "https://other.example"},
		Component{Slug: "plain", BaseURL: "http://plain.example:8080/x"},
		Component{Slug: "plain2", BaseURL: "http://plain2.example"},
		Component{Slug: "app"},
	)
	s.JWS = append(s.JWS, JWSRule{Source: "app", Target: "payer", Direction: "request", Header: "X-Sig", Format: "compact", Alg: "ES256", PublicKey: "{{ env.SHARED }}"})
	res, err := r.CreateSession(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	payer := res.Components["payer"]
	if payer.BaseURL.Host != "payer.example:9443" || !payer.UseEncryption || payer.CAPool == nil || len(payer.ClientChain) != 1 ||
		payer.CACertPEM != p.caPEM || payer.ClientCertNotAfter.IsZero() {
		t.Fatalf("payer: %+v", payer)
	}
	if _, ok := payer.AllowedClients["Payer App"]; !ok {
		t.Fatalf("allowed: %v", payer.AllowedClients)
	}
	if _, ok := payer.AllowedClients[strings.Repeat("ab", 32)]; !ok {
		t.Fatalf("fingerprint not normalised: %v", payer.AllowedClients)
	}
	keys := map[string]string{}
	for slug, c := range res.Components {
		keys[slug] = c.IdentityKey
		if len(c.IdentityKey) != 64 {
			t.Fatalf("%s: identity %q", slug, c.IdentityKey)
		}
	}
	if keys["payer"] != keys["same"] {
		t.Fatal("same identity, different keys")
	}
	if keys["plain"] != keys["plain2"] {
		t.Fatal("plain components have different keys")
	}
	distinct := map[string]bool{keys["payer"]: true, keys["noclient"]: true, keys["system"]: true, keys["plain"]: true}
	if len(distinct) != 4 {
		t.Fatalf("different identities share a key: %v", keys)
	}
	if res.Components["system"].CAPool != nil || res.Components["plain"].UseEncryption || res.Components["app"].BaseURL != nil {
		t.Fatal("defaults wrong")
	}
	// Env references resolved; session env over group env; modes defaulted.
	if res.JWS[0].PublicKey != p.jwsPubPEM || res.JWS[0].Mode != ModeVerify {
		t.Fatalf("rule 0: mode %q key %q", res.JWS[0].Mode, res.JWS[0].PublicKey)
	}
	if res.JWS[1].PrivateKey != p.jwsPrivPEM || res.JWS[1].Mode != ModeSign || res.JWS[1].Index != 1 {
		t.Fatalf("rule 1: mode %q", res.JWS[1].Mode)
	}
	if res.JWS[2].PublicKey != p.jwsPubPEM {
		t.Fatal("group env not inherited")
	}
	// The stored session keeps the references, not the values.
	if res.Session.JWS[0].PublicKey != "{{ env.PAYER_JWS_PUBLIC_KEY }}" {
		t.Fatal("session changed by resolution")
	}
	// Expiry.
	exp := time.Now().Add(time.Hour)
	s2 := validSession(t, "exp")
	s2.Expires = &exp
	res2, err := r.CreateSession(ctx, s2)
	if err != nil || !res2.Expires.Equal(exp) || res2.Expired(time.Now()) || !res2.Expired(exp) {
		t.Fatalf("expires: %v %v", err, res2.Expires)
	}
}

func TestRedaction(t *testing.T) {
	p := getPKI(t)
	s := validSession(t, "red")
	s.Environment["HMAC"] = "hunter2"
	s.Environment["PLAIN"] = "visible"
	s.JWS = append(s.JWS,
		JWSRule{Source: "payer", Target: "hub", Direction: "request", Header: "X-Sig", Format: "compact", Alg: "HS256", Secret: "{{ env.HMAC }}"},
		JWSRule{Source: "payer", Target: "hub", Direction: "request", Header: "X-Sig2", Format: "compact", Alg: "HS256", Secret: "inline-secret"},
	)
	s.JWS[1].PrivateKey = p.jwsPrivPEM
	red := s.Redacted()
	sum := func(v string) string { h := sha256.Sum256([]byte(v)); return hex.EncodeToString(h[:]) }
	if red.Environment["HUB_JWS_PRIVATE_KEY"] != "(private key, sha256:"+sum(p.jwsPrivPEM)+")" {
		t.Fatalf("env private key: %q", red.Environment["HUB_JWS_PRIVATE_KEY"])
	}
	if red.Environment["HMAC"] != "(secret, sha256:"+sum("hunter2")+")" || red.Environment["PLAIN"] != "visible" {
		t.Fatalf("env: %v", red.Environment)
	}
	if red.JWS[1].PrivateKey != "(private key, sha256:"+sum(p.jwsPrivPEM)+")" || red.JWS[2].Secret != "{{ env.HMAC }}" ||
		red.JWS[3].Secret != "(secret, sha256:"+sum("inline-secret")+")" {
		t.Fatalf("rules: %+v", red.JWS)
	}
	if red.Environment["PAYER_JWS_PUBLIC_KEY"] != p.jwsPubPEM {
		t.Fatal("public key hidden")
	}
	// The original is untouched.
	if s.JWS[1].PrivateKey != p.jwsPrivPEM || s.Environment["HMAC"] != "hunter2" {
		t.Fatal("Redacted changed its receiver")
	}
	b, _ := json.Marshal(red)
	if strings.Contains(string(b), "PRIVATE KEY") || strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "inline-secret") {
		t.Fatalf("secret leaked: %s", b)
	}

	// Through the registry, including group variables used as secrets.
	r := newRegistry(t, newStorage(t), Options{})
	ctx := context.Background()
	if _, err := r.CreateGroup(ctx, Group{ID: "g", Environment: map[string]string{"GK": p.jwsPrivPEM, "GS": "group-secret"}}); err != nil {
		t.Fatal(err)
	}
	s3 := validSession(t, "red3")
	s3.Group = "g"
	s3.JWS = append(s3.JWS, JWSRule{Source: "payer", Target: "hub", Direction: "request", Header: "X-Sig", Format: "compact", Alg: "HS512", Secret: "{{env.GS}}"})
	if _, err := r.CreateSession(ctx, s3); err != nil {
		t.Fatal(err)
	}
	g, err := r.GetGroup("g")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(g)
	if strings.Contains(string(b), "PRIVATE KEY") || strings.Contains(string(b), "group-secret") {
		t.Fatalf("group leaked: %s", b)
	}
	for _, gs := range r.ListGroups() {
		b, _ := json.Marshal(gs)
		if strings.Contains(string(b), "group-secret") {
			t.Fatalf("list leaked: %s", b)
		}
	}
	got, _ := r.GetSession("red3")
	b, _ = json.Marshal(got)
	if strings.Contains(string(b), "PRIVATE KEY") {
		t.Fatalf("session leaked: %s", b)
	}
}

func TestJSONShape(t *testing.T) {
	in := `{"id":"s1","name":"n","group":"g","components":[{"slug":"payer","base_url":"https://x","use_encryption":true,
	"certificate":"c","ca_cert":"A","client_cert":"B","allowed_clients":["cn"],"simulated":true}],
	"environment":{"A":"1"},"jws":[{"source":"a","target":"b","direction":"request","header":"h","format":"mojaloop","alg":"RS256",
	"public_key":"p","private_key":"k","secret":"s","protected_headers":["x"],"crit":{"b64":"false"},"mode":"verify","enforce":true}],
	"expires":"2030-01-02T03:04:05Z"}`
	var s Session
	dec := json.NewDecoder(strings.NewReader(in))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatal(err)
	}
	c, j := s.Components[0], s.JWS[0]
	if c.BaseURL != "https://x" || !*c.UseEncryption || c.Certificate != "c" || c.CACert != "A" || c.ClientCert != "B" || !c.Simulated ||
		c.AllowedClients[0] != "cn" || j.ProtectedHeaders[0] != "x" || j.Crit["b64"] != "false" || !j.Enforce || j.Mode != "verify" ||
		s.Expires.Year() != 2030 || s.Group != "g" {
		t.Fatalf("%+v", s)
	}
	gin := `{"id":"g","name":"n","environment":{"A":"1"},"certificates":[{"id":"c","name":"n","ca_cert":"A","client_cert":"B"}],"default_session":"s1"}`
	var g Group
	dec = json.NewDecoder(strings.NewReader(gin))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil || g.Certificates[0].ClientCert != "B" || g.DefaultSession != "s1" {
		t.Fatalf("%v %+v", err, g)
	}
}
