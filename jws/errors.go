package jws

import (
	"errors"
	"fmt"
)

// Sentinel errors wrapped by every *VerifyError, so callers can classify a
// failure with errors.Is without parsing its message.
var (
	// ErrMissing means the message carries no signature at all.
	ErrMissing = errors.New("signature missing")
	// ErrMalformed means the signature could not be parsed: bad base64url,
	// wrong segment count, invalid or duplicated JSON, oversized input.
	ErrMalformed = errors.New("malformed signature")
	// ErrAlgorithm means the token names an algorithm other than the
	// configured one (or "none").
	ErrAlgorithm = errors.New("algorithm not allowed")
	// ErrHeader means the protected header breaks a JOSE rule: an unknown
	// or malformed crit, a b64 problem, an embedded key or key URL.
	ErrHeader = errors.New("protected header refused")
	// ErrSignature means the signature does not verify with the configured
	// key over the bytes received.
	ErrSignature = errors.New("signature invalid")
	// ErrHTTPHeader means the signature is valid but the signed headers do
	// not agree with the HTTP message (a signed header differs or is
	// absent, a configured header is present but unsigned, FSPIOP-URI or
	// FSPIOP-HTTP-Method differ from the forwarded request).
	ErrHTTPHeader = errors.New("signed headers do not match the message")
)

// VerifyError is the error returned by Verifier.Verify. Its Reason is a
// sentence meant for the people who run the systems under test; Kind is
// one of the sentinel errors above and is what errors.Is matches.
type VerifyError struct {
	// Kind is one of ErrMissing, ErrMalformed, ErrAlgorithm, ErrHeader,
	// ErrSignature or ErrHTTPHeader.
	Kind error
	// Reason says what is wrong, in plain words.
	Reason string
	// Protected is the decoded protected header, as received, when it
	// could be decoded; empty otherwise.
	Protected string
	// Expected and Actual, when set, are the two values that differ
	// (e.g. the signed FSPIOP-URI and the forwarded request's URI).
	Expected, Actual string
}

func (e *VerifyError) Error() string { return "jws: " + e.Reason }

// Unwrap returns Kind.
func (e *VerifyError) Unwrap() error { return e.Kind }

func verr(kind error, reason string) *VerifyError {
	return &VerifyError{Kind: kind, Reason: reason}
}

// ConfigError is a Config that cannot work. Field names the Config field
// at fault, in the configuration's own words: "format", "alg",
// "unencoded", "max_header_bytes", "protected_headers", "crit", "extra",
// "public_key", "private_key" or "secret", so that a caller can point its
// user at the setting to change.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return "jws: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

func configErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Err: fmt.Errorf(format, args...)}
}
