package ids

import (
	"regexp"
	"strings"
	"testing"
)

var reference = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$`)

func TestValid(t *testing.T) {
	for _, id := range []string{"a", "A-b_9", "-a", "_a", "", "a/b", "..", "a.b", "é", strings.Repeat("a", 64), strings.Repeat("a", 65), "a\x00"} {
		if Valid(id) != reference.MatchString(id) {
			t.Errorf("Valid(%q) = %v, the regexp says %v", id, Valid(id), !Valid(id))
		}
	}
}

func FuzzValid(f *testing.F) {
	f.Add("demo")
	f.Add("../x")
	f.Fuzz(func(t *testing.T, id string) {
		if Valid(id) != reference.MatchString(id) {
			t.Fatalf("Valid(%q) disagrees with the regexp", id)
		}
	})
}
