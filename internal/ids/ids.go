// Package ids is the one definition of the safe alphabet of the platform's
// ids (sessions, groups, certificates) and component slugs, which become
// parts of URLs and of storage keys (DESIGN.md §3):
// ^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$. No dot and no slash, so an id can never
// reach outside its folder of storage.
package ids

import "strings"

// MaxLen is the longest id.
const MaxLen = 64

// Valid reports whether id is a safe id. It is written out rather than a
// regexp because it runs for every recorded result.
func Valid(id string) bool {
	if len(id) == 0 || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// FromKey returns the id of a record stored at prefix + id + ".json", or
// false when key is not such a key (a temporary file of an atomic write, a
// stray file).
func FromKey(prefix, key string) (string, bool) {
	name, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(name, ".json")
	if !ok || !Valid(id) {
		return "", false
	}
	return id, true
}
