package itp

import (
	"crypto"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/caddy-itp/caddy-itp/ca"
	"github.com/caddy-itp/caddy-itp/session"
)

func init() {
	caddy.RegisterModule(App{})
}

// Defaults of the itp app.
const (
	DefaultPublicURL         = "https://localhost:8443"
	DefaultPublicInsecureURL = "http://localhost:8080"
	DefaultSyncInterval      = 2 * time.Second
)

// App is the `itp` app: it owns the ITP certificate authority, the
// participants' certificates, the platform's upstream client key and (from
// the sessions work on) the registry of groups, sessions and results. All of
// it is kept in Caddy storage under the key prefix `itp/`, so it survives
// restarts and config reloads and is shared by every Caddy instance using
// the same storage.
type App struct {
	// CA configures how the root certificate authority is created the
	// first time. A root already in storage is never replaced: a config
	// asking for another key type or CA logs a warning and the stored root
	// is kept.
	CA *CAConfig `json:"ca,omitempty"`

	// Issuance bounds how participants' client certificates are issued.
	Issuance *IssuanceConfig `json:"issuance,omitempty"`

	// PublicURL is the secure base URL participants use, e.g.
	// "https://itp.example.org:8443". Session URLs are built from it and
	// its host must be covered by the server certificate of the site that
	// serves the testing routes. Default: "https://localhost:8443".
	PublicURL string `json:"public_url,omitempty"`

	// PublicInsecureURL is the plain-HTTP base URL of the insecure testing
	// routes. Default: "http://localhost:8080".
	PublicInsecureURL string `json:"public_insecure_url,omitempty"`

	// UpstreamKeyType is the type of the platform's upstream client key,
	// created once on first start: "ecdsa_p256" (the default),
	// "ecdsa_p384", "rsa2048", "rsa3072", "rsa4096" or "ed25519". Like the
	// root, a key already in storage is kept whatever this says.
	UpstreamKeyType string `json:"upstream_key_type,omitempty"`

	// SyncInterval is how often this instance reads changes made by other
	// instances sharing its storage (revocations; sessions and groups).
	// Default: 2s.
	SyncInterval caddy.Duration `json:"sync_interval,omitempty"`

	// ExpiryWarning is how close to expiry an uploaded SUT or client
	// certificate gets a warning in its session's GET and the logs.
	// Default: 14 days (336h).
	ExpiryWarning caddy.Duration `json:"expiry_warning,omitempty"`

	// SessionRetention is how long a session that has expired (its
	// `expires` time has passed; its testing routes answer 410) is kept,
	// with its results, before it is purged. Sessions declared in the
	// config are never purged. Default: 7 days (168h).
	SessionRetention caddy.Duration `json:"session_retention,omitempty"`

	// ResultsPerSession is the most check results kept per session; the
	// oldest are dropped first. Default: 1000.
	ResultsPerSession int `json:"results_per_session,omitempty"`

	// JWSMaxBody bounds the bodies the session JWS rules read (buffer) to
	// verify or sign them, in bytes: a larger request is answered 413 and
	// a larger response replaced by a 502, both recorded as failed
	// checks. Bodies of routes without a JWS rule are streamed, never
	// buffered. Default: 1 MiB (1048576).
	JWSMaxBody int64 `json:"jws_max_body,omitempty"`

	// Sessions are test sessions declared in the config (such as the
	// quickstart's "demo"). They are read-only through the admin API and
	// replaced as a whole on each config load. Their JSON is that of the
	// admin API's sessions.
	Sessions []session.Session `json:"sessions,omitempty"`

	publicURL, publicInsecureURL *url.URL

	ctx     caddy.Context
	logger  *zap.Logger
	storage certmagic.Storage
	state   *state
	poolKey string
}

// CAConfig configures the root certificate authority.
type CAConfig struct {
	// KeyType of a generated root key: "ecdsa_p256" (the default),
	// "ecdsa_p384", "rsa2048", "rsa3072", "rsa4096" or "ed25519".
	KeyType string `json:"key_type,omitempty"`

	// Validity of a generated root. Default: 10 years (87600h).
	Validity caddy.Duration `json:"validity,omitempty"`

	// CommonName of a generated root. Default: "Caddy ITP Root CA".
	CommonName string `json:"common_name,omitempty"`

	// ImportCert and ImportKey are PEM files of an existing CA to use
	// instead of generating one. They are read once, when storage holds
	// no root yet, and copied into storage.
	ImportCert string `json:"import_cert,omitempty"`
	ImportKey  string `json:"import_key,omitempty"`

	// NameConstraints limits a generated root to these DNS names (with
	// their subdomains) and IP addresses or CIDR ranges, so that the root,
	// once trusted by participants, can vouch for no other host. Default:
	// unconstrained.
	NameConstraints []string `json:"name_constraints,omitempty"`
}

// IssuanceConfig bounds participant certificate issuance.
type IssuanceConfig struct {
	// Validity of participant client certificates. Default: 1 year
	// (8760h). Certificates never outlive the root.
	Validity caddy.Duration `json:"validity,omitempty"`

	// MaxRecords caps the issued certificates recorded in storage; past
	// it, issuance answers 503. Default: 100000.
	MaxRecords int `json:"max_records,omitempty"`

	// RatePerMinute is how many certificate requests one client address
	// may make per minute on the participant endpoints (the admin API is
	// not limited). Default: 30. A negative value disables the limit.
	RatePerMinute int `json:"rate_per_minute,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "itp",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision loads (or creates, the first time) the CA and the upstream key
// from storage. State that must outlive config reloads lives in a
// caddy.UsagePool keyed by the storage, so a reload reuses it.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Logger()
	a.storage = ctx.Storage()
	if a.CA == nil {
		a.CA = new(CAConfig)
	}
	if a.Issuance == nil {
		a.Issuance = new(IssuanceConfig)
	}
	if a.PublicURL == "" {
		a.PublicURL = DefaultPublicURL
	}
	if a.PublicInsecureURL == "" {
		a.PublicInsecureURL = DefaultPublicInsecureURL
	}
	if a.SyncInterval <= 0 {
		a.SyncInterval = caddy.Duration(DefaultSyncInterval)
	}
	var err error
	if a.publicURL, err = parseBaseURL(a.PublicURL, "https"); err != nil {
		return fmt.Errorf("itp: public_url: %w", err)
	}
	if a.publicInsecureURL, err = parseBaseURL(a.PublicInsecureURL, "http"); err != nil {
		return fmt.Errorf("itp: public_insecure_url: %w", err)
	}
	if !ca.ValidKeyType(a.CA.KeyType) {
		return fmt.Errorf("itp: ca key_type %q: use ecdsa_p256, ecdsa_p384, rsa2048, rsa3072, rsa4096 or ed25519", a.CA.KeyType)
	}
	if !ca.ValidKeyType(a.UpstreamKeyType) {
		return fmt.Errorf("itp: upstream_key_type %q: use ecdsa_p256, ecdsa_p384, rsa2048, rsa3072, rsa4096 or ed25519", a.UpstreamKeyType)
	}
	if (a.CA.ImportCert == "") != (a.CA.ImportKey == "") {
		return fmt.Errorf("itp: ca import needs both import_cert and import_key")
	}
	if a.JWSMaxBody < 0 {
		return fmt.Errorf("itp: jws_max_body must not be negative")
	}
	if a.JWSMaxBody == 0 {
		a.JWSMaxBody = DefaultJWSMaxBody
	}
	if a.SessionRetention < 0 {
		return fmt.Errorf("itp: session_retention must not be negative")
	}
	if a.ResultsPerSession < 0 {
		return fmt.Errorf("itp: results_per_session must not be negative")
	}
	if a.Issuance.MaxRecords < 0 {
		return fmt.Errorf("itp: issuance max_records must not be negative")
	}

	a.poolKey = storageKey(a.storage)
	val, _, err := states.LoadOrNew(a.poolKey, func() (caddy.Destructor, error) {
		return newState(ctx, a.storage, a.logger, a)
	})
	if err != nil {
		return err
	}
	a.state = val.(*state)
	// only checked here: the state is shared with the running config,
	// and this config may still fail to load; Start installs it
	if err := a.state.registry.CheckStatic(a.Sessions); err != nil {
		return fmt.Errorf("itp: sessions: %w", err)
	}
	return nil
}

// Start applies this config to the shared state (its settings and the
// sessions it declares) and makes this app the one the admin API talks
// to. It runs only once the whole config has provisioned, so a config that
// fails to load never changes the running platform.
func (a *App) Start() error {
	a.state.configure(a)
	if err := a.state.registry.SetStatic(a.Sessions); err != nil {
		return fmt.Errorf("itp: sessions: %w", err)
	}
	a.state.start()
	active.Store(a)
	return nil
}

// Stop hands the admin API over to no app, unless a newer config's app
// has already taken it (a reload starts the new app before stopping the
// old one).
func (a *App) Stop() error {
	active.CompareAndSwap(a, nil)
	return nil
}

// Cleanup releases this config's hold on the shared state; the state is
// closed when the last config using it is gone.
func (a *App) Cleanup() error {
	if a.poolKey != "" {
		_, err := states.Delete(a.poolKey)
		return err
	}
	return nil
}

// Authority returns the ITP root CA.
func (a *App) Authority() *ca.Authority { return a.state.participants.Authority() }

// Participants returns the participant certificate issuer.
func (a *App) Participants() *ca.Participants { return a.state.participants }

// UpstreamKey returns the platform's upstream client key.
func (a *App) UpstreamKey() crypto.Signer { return a.state.upstreamKey }

// PublicURLs returns the parsed secure and insecure public base URLs.
func (a *App) PublicURLs() (secure, insecure *url.URL) { return a.publicURL, a.publicInsecureURL }

// active is the running itp app, for the admin API, which is provisioned
// before any app on every config load and must find the live one per
// request.
var active atomic.Pointer[App]

// activeApp returns the running itp app, or nil when none is configured.
func activeApp() *App { return active.Load() }

// states holds the storage-bound state across config reloads.
var states = caddy.NewUsagePool()

func storageKey(s certmagic.Storage) string {
	if fs, ok := s.(*certmagic.FileStorage); ok {
		return "file:" + fs.Path
	}
	return fmt.Sprintf("%T:%+v", s, s)
}

func parseBaseURL(raw, scheme string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != scheme {
		return nil, fmt.Errorf("%q: expected an %s:// URL", raw, scheme)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: expected scheme://host[:port][/path] and nothing else", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
