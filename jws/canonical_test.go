package jws

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// TestCanonicalFixtures compares Canonicalize with the output of Node's
// safe-stable-stringify(JSON.parse(in)), recorded by
// testdata/gen_canonical.js (node v20, safe-stable-stringify 2.x).
func TestCanonicalFixtures(t *testing.T) {
	data, err := os.ReadFile("testdata/canonical.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct{ In, Out string }
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 40 {
		t.Fatalf("only %d fixtures", len(cases))
	}
	for _, c := range cases {
		got, err := Canonicalize([]byte(c.In))
		if err != nil {
			t.Errorf("%s: %v", c.In, err)
			continue
		}
		if string(got) != c.Out {
			t.Errorf("%s:\n got %s\nwant %s", c.In, got, c.Out)
		}
	}
}

func TestCanonicalNotJSON(t *testing.T) {
	for _, in := range []string{"", " ", "{", "[1,]", `{"a":1,}`, "01", "1.", ".5", "+1", "-", "1e", "tru", "nul",
		`"\x"`, "\"\x01\"", `"\u12"`, `"\u12G4"`, "\xff", "{} {}", "NaN", "Infinity", `{'a':1}`, "\ufeff{}"} {
		if _, err := Canonicalize([]byte(in)); !errors.Is(err, ErrNotJSON) {
			t.Errorf("%q: got %v, want ErrNotJSON", in, err)
		}
	}
	deep := strings.Repeat("[", MaxCanonicalDepth+1) + strings.Repeat("]", MaxCanonicalDepth+1)
	if _, err := Canonicalize([]byte(deep)); !errors.Is(err, ErrTooDeep) {
		t.Errorf("deep: %v", err)
	}
}

// TestCanonicalAgreesWithGo checks, on inputs where the two must agree,
// that Canonicalize is a fixed point and matches encoding/json's meaning.
func TestCanonicalIdempotent(t *testing.T) {
	data, _ := os.ReadFile("testdata/canonical.json")
	var cases []struct{ In, Out string }
	_ = json.Unmarshal(data, &cases)
	for _, c := range cases {
		again, err := Canonicalize([]byte(c.Out))
		if err != nil || string(again) != c.Out {
			t.Errorf("not a fixed point: %s -> %s (%v)", c.Out, again, err)
		}
	}
}
