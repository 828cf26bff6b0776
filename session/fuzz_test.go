package session

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzSessionJSON feeds arbitrary admin-API JSON (as POST /itp/sessions
// and POST /itp/groups take it) through decoding and validation: it never
// panics, a refusal is always a *FieldError naming a field, and what is
// accepted has safe ids and slugs.
func FuzzSessionJSON(f *testing.F) {
	f.Add([]byte(`{"id":"demo","components":[{"slug":"client"},{"slug":"server","simulated":true}]}`))
	f.Add([]byte(`{"components":[{"slug":"a","base_url":"https://x:1/p","use_encryption":false}]}`))
	f.Add([]byte(`{"components":[{"slug":"a","ca_cert":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}]}`))
	f.Add([]byte(`{"environment":{"K":"v"},"components":[{"slug":"a"},{"slug":"b","simulated":true}],"jws":[{"source":"a","target":"b","direction":"request","header":"S","format":"compact","alg":"HS256","secret":"{{ env.K }}"}]}`))
	f.Add([]byte(`{"id":"../../etc","components":[{"slug":"a/b"}]}`))
	opts := &Options{ExpiryWarning: DefaultExpiryWarning, Now: time.Now}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Session
		if json.Unmarshal(data, &s) == nil {
			c := &compiler{opts: opts, strict: true, now: time.Now()}
			res, err := c.compileSession(s, nil)
			if err != nil {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field == "" {
					t.Fatalf("refusal without a field: %v", err)
				}
			} else {
				if res.Session.ID != "" && !ValidID(res.Session.ID) {
					t.Fatalf("unsafe id accepted: %q", res.Session.ID)
				}
				for slug := range res.Components {
					if !ValidID(slug) {
						t.Fatalf("unsafe slug accepted: %q", slug)
					}
				}
				_ = res.Session.Redacted()
			}
		}
		var g Group
		if json.Unmarshal(data, &g) == nil {
			c := &compiler{opts: opts, strict: true, now: time.Now()}
			if _, err := c.compileGroup(g); err != nil {
				var fe *FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("group refusal without a field: %v", err)
				}
			}
			_ = g.Redacted()
		}
	})
}
