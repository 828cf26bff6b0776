package jws

import (
	"encoding/base64"
	"fmt"
)

// decodeSegment decodes one base64url segment strictly: only the URL-safe
// alphabet, no padding, no whitespace or line breaks (Go's decoder silently
// skips CR and LF, so they are refused here first), and canonical trailing
// bits (Strict mode), so that one signature has exactly one encoding.
func decodeSegment(what, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == '=':
			return nil, fmt.Errorf("%s is not canonical base64url: it has '=' padding at byte %d", what, i)
		case c == '+' || c == '/':
			return nil, fmt.Errorf("%s is not base64url: %q at byte %d belongs to standard base64", what, c, i)
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			return nil, fmt.Errorf("%s contains whitespace at byte %d", what, i)
		default:
			return nil, fmt.Errorf("%s contains %q at byte %d, which is not a base64url character", what, c, i)
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s is not canonical base64url: %v", what, err)
	}
	return b, nil
}

func encodeSegment(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
