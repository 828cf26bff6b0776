package session

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Group holds an environment and certificates that sessions inherit
// (DESIGN.md §3).
type Group struct {
	// ID identifies the group; a random UUID when absent on creation.
	ID string `json:"id"`
	// Name is a free label.
	Name string `json:"name,omitempty"`
	// Environment holds variables the group's sessions inherit; a session's
	// own environment takes precedence.
	Environment map[string]string `json:"environment,omitempty"`
	// Certificates are upstream certificates a session component can pick
	// by id instead of uploading them inline.
	Certificates []Certificate `json:"certificates,omitempty"`
	// DefaultSession is the session the group's testing routes use.
	DefaultSession string `json:"default_session,omitempty"`
	// Warnings are computed by validation and shown in GETs; they are
	// ignored on input.
	Warnings []string `json:"warnings,omitempty"`
}

// Certificate is a group's upstream certificate pair for the Proxy → Server
// leg.
type Certificate struct {
	// ID identifies the certificate within its group.
	ID string `json:"id"`
	// Name is a free label.
	Name string `json:"name,omitempty"`
	// CACert is the PEM of the CA that verifies the SUT's server
	// certificate; absent means the system roots.
	CACert string `json:"ca_cert,omitempty"`
	// ClientCert is the PEM of the platform's client certificate for the
	// SUT (leaf first, then any intermediates); absent means none.
	ClientCert string `json:"client_cert,omitempty"`
}

// Session is a test session (DESIGN.md §3).
type Session struct {
	// ID identifies the session and is the capability that reaches its
	// URLs and results; a random UUID when absent on creation.
	ID string `json:"id"`
	// Name is a free label.
	Name string `json:"name,omitempty"`
	// Group is the id of the group whose environment and certificates the
	// session inherits, if any.
	Group string `json:"group,omitempty"`
	// Components are the parties of the session.
	Components []Component `json:"components"`
	// Environment holds variables that key fields reference with
	// {{ env.NAME }}; it takes precedence over the group's.
	Environment map[string]string `json:"environment,omitempty"`
	// JWS are the session's JWS rules.
	JWS []JWSRule `json:"jws,omitempty"`
	// Expires, when set, is when the session stops answering (410).
	Expires *time.Time `json:"expires,omitempty"`
	// Warnings are computed by validation and shown in GETs; they are
	// ignored on input.
	Warnings []string `json:"warnings,omitempty"`
	// Static is true for sessions declared in the Caddy config, which are
	// read-only through the API. It is set by the registry in GETs and
	// ignored on input.
	Static bool `json:"static,omitempty"`
}

// Component is one party of a session: a system under test, or simulated by
// the platform when Simulated is true.
type Component struct {
	// Slug names the component in the testing routes.
	Slug string `json:"slug"`
	// BaseURL is where requests to the component are forwarded; a SUT that
	// only sends needs none.
	BaseURL string `json:"base_url,omitempty"`
	// UseEncryption says whether the upstream leg uses TLS. Default: whether
	// BaseURL is https; a contradicting value is refused.
	UseEncryption *bool `json:"use_encryption,omitempty"`
	// Certificate is the id of a certificate of the session's group, used
	// instead of CACert and ClientCert.
	Certificate string `json:"certificate,omitempty"`
	// CACert is the PEM (or an env reference) of the CA that verifies the
	// SUT's server certificate; absent means the system roots.
	CACert string `json:"ca_cert,omitempty"`
	// ClientCert is the PEM (or an env reference) of the certificate the
	// platform presents, with its upstream key, to the SUT; absent means
	// no client certificate.
	ClientCert string `json:"client_cert,omitempty"`
	// AllowedClients, when set, restricts which ITP-issued certificates may
	// call as this component: common names or SHA-256 fingerprints.
	AllowedClients []string `json:"allowed_clients,omitempty"`
	// Simulated is true when the platform plays this component.
	Simulated bool `json:"simulated,omitempty"`
}

// JWSRule requires or produces JWS signatures on messages between two
// components (DESIGN.md §3).
type JWSRule struct {
	// Source is the slug of the requesting component.
	Source string `json:"source"`
	// Target is the slug of the requested component.
	Target string `json:"target"`
	// Direction is "request" or "response".
	Direction string `json:"direction"`
	// Header is the HTTP header that carries the signature.
	Header string `json:"header"`
	// Format is "mojaloop", "compact" or "detached".
	Format string `json:"format"`
	// Alg is the JWS algorithm, fixed by the rule.
	Alg string `json:"alg"`
	// PublicKey verifies signatures: PEM or an env reference.
	PublicKey string `json:"public_key,omitempty"`
	// PrivateKey signs when the platform signs: PEM or an env reference.
	PrivateKey string `json:"private_key,omitempty"`
	// Secret is the HMAC key of HS* algorithms, or an env reference.
	Secret string `json:"secret,omitempty"`
	// ProtectedHeaders are HTTP headers that must be signed when present.
	ProtectedHeaders []string `json:"protected_headers,omitempty"`
	// Crit are extra critical header parameters the rule understands.
	Crit map[string]string `json:"crit,omitempty"`
	// Mode is "verify" or "sign". Default: sign when the sender (source
	// for a request, target for a response) is simulated, else verify.
	Mode string `json:"mode,omitempty"`
	// Enforce makes a failed verification refuse the message.
	Enforce bool `json:"enforce,omitempty"`
}

// Values of JWSRule fields.
const (
	DirectionRequest  = "request"
	DirectionResponse = "response"
	ModeVerify        = "verify"
	ModeSign          = "sign"
	FormatMojaloop    = "mojaloop"
	FormatCompact     = "compact"
	FormatDetached    = "detached"
)

// Sentinel errors of the registry, to be tested with errors.Is.
var (
	// ErrNotFound is returned for an unknown session or group id.
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when creating an id that already exists.
	ErrConflict = errors.New("already exists")
	// ErrReadOnly is returned when changing a session declared in the
	// Caddy config.
	ErrReadOnly = errors.New("read-only: declared in the Caddy config")
	// ErrInUse is returned when deleting a group or group certificate that
	// sessions still use; the error is an *InUseError naming them.
	ErrInUse = errors.New("in use")
)

// FieldError is a validation error naming the offending field with its JSON
// path, e.g. "components[1].base_url".
type FieldError struct {
	// Field is the JSON path of the field.
	Field string
	// Msg says what is wrong with it.
	Msg string
}

// Error returns "field: message".
func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// InUseError reports what still uses a group or group certificate.
type InUseError struct {
	// What names the thing that is in use, e.g. "group g1" or
	// "certificate c1 of group g1".
	What string
	// Sessions are the ids of the sessions that use it, sorted.
	Sessions []string
}

// Error says what is used by which sessions.
func (e *InUseError) Error() string {
	return e.What + " is in use by sessions " + strings.Join(e.Sessions, ", ")
}

// Is makes errors.Is(err, ErrInUse) true.
func (e *InUseError) Is(target error) bool { return target == ErrInUse }
