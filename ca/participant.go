package ca

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/caddy-itp/caddy-itp/internal/storelock"
)

// Storage layout of participant issuance.
const (
	serialsPrefix = "itp/issued/serials" // one record per issued certificate
	keysPrefix    = "itp/issued/keys"    // public-key hash -> current serial
	revokedPrefix = "itp/revoked"        // one empty-ish record per revoked serial
	cnPrefix      = "itp/issued/cn"      // sha256(common name) -> serial of its holder
)

// Defaults of participant issuance.
const (
	DefaultParticipantValidity = 365 * 24 * time.Hour
	DefaultMaxRecords          = 100000
)

// ErrNotIssued is returned for a serial this CA has no record of.
var ErrNotIssued = errors.New("no certificate with this serial was issued by the ITP CA")

// ErrRecordCap is returned when the cap on stored issuance records is hit.
var ErrRecordCap = errors.New("the ITP CA has reached its cap on issued certificates")

// Record is the stored account of one issued participant certificate.
type Record struct {
	// Serial is the certificate's serial number in lowercase hex.
	Serial string `json:"serial"`
	// Subject is the certificate's subject, e.g. "CN=payer".
	Subject string `json:"subject"`
	// PublicKeySHA256 is the hex SHA-256 of the certified key's PKIX DER.
	PublicKeySHA256 string `json:"public_key_sha256"`
	// NotBefore and NotAfter bound the certificate's validity.
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// Certificate is the issued certificate, PEM.
	Certificate string `json:"certificate"`
	// Revoked is set when the certificate was revoked, at RevokedAt.
	Revoked   bool       `json:"revoked,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// IssuerConfig bounds participant issuance.
type IssuerConfig struct {
	// Validity of participant certificates; 0 means one year. It is
	// clamped so that no certificate outlives the root.
	Validity time.Duration
	// MaxRecords caps the issuance records kept in storage; 0 means
	// DefaultMaxRecords.
	MaxRecords int
}

// Participants signs participant CSRs under the signing policy, keeps the
// issuance records and the revocation list.
type Participants struct {
	auth    atomic.Pointer[Authority]
	storage certmagic.Storage
	logger  *zap.Logger
	cfg     atomic.Pointer[IssuerConfig]

	revoked atomic.Pointer[map[string]struct{}]
	count   atomic.Int64
	mu      sync.Mutex // serialises revocation list refreshes
}

// NewParticipants loads the revocation list and the record count.
func NewParticipants(ctx context.Context, auth *Authority, storage certmagic.Storage, logger *zap.Logger, cfg IssuerConfig) (*Participants, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	p := &Participants{storage: storage, logger: logger}
	p.auth.Store(auth)
	p.Configure(cfg)
	empty := map[string]struct{}{}
	p.revoked.Store(&empty)
	if err := p.Refresh(ctx); err != nil {
		return nil, err
	}
	keys, err := storage.List(ctx, serialsPrefix, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("itp ca: listing issuance records: %w", err)
	}
	p.count.Store(int64(len(keys)))
	return p, nil
}

// Configure replaces the issuance bounds, e.g. on a config reload.
func (p *Participants) Configure(cfg IssuerConfig) {
	if cfg.Validity <= 0 {
		cfg.Validity = DefaultParticipantValidity
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = DefaultMaxRecords
	}
	p.cfg.Store(&cfg)
}

// Authority returns the CA the participants' certificates come from.
func (p *Participants) Authority() *Authority { return p.auth.Load() }

// SetAuthority switches to a renewed (or reloaded) root.
func (p *Participants) SetAuthority(a *Authority) { p.auth.Store(a) }

// Refresh reloads the revocation list from storage, so revocations made by
// other instances sharing the storage take effect here.
func (p *Participants) Refresh(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys, err := p.storage.List(ctx, revokedPrefix, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("itp ca: listing revocations: %w", err)
	}
	set := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		set[k[strings.LastIndexByte(k, '/')+1:]] = struct{}{}
	}
	p.revoked.Store(&set)
	return nil
}

// IsRevoked reports whether the certificate with this serial was revoked.
func (p *Participants) IsRevoked(serial *big.Int) bool {
	set := *p.revoked.Load()
	if len(set) == 0 {
		return false
	}
	var buf [64]byte
	_, ok := set[string(serial.Append(buf[:0], 16))] // no allocation
	return ok
}

// Sign issues a client certificate for the CSR, which must have passed
// ParseParticipantCSR. The same public key gets the same certificate back
// while that certificate is valid, not revoked, issued by the current root
// and not in the last third of its validity; otherwise a fresh one is
// issued and recorded. reused reports which happened.
func (p *Participants) Sign(ctx context.Context, csr *x509.CertificateRequest) (rec *Record, reused bool, err error) {
	hash, err := PublicKeyHash(csr.PublicKey)
	if err != nil {
		return nil, false, err
	}
	keyKey := keysPrefix + "/" + hash
	unlock, err := storelock.Lock(ctx, p.storage, p.logger, keyKey)
	if err != nil {
		return nil, false, fmt.Errorf("itp ca: %w", err)
	}
	defer unlock()

	if prev, err := p.currentRecord(ctx, keyKey); err == nil {
		if p.reusable(prev, time.Now()) {
			return prev, true, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		p.logger.Warn("unreadable issuance record; issuing afresh", zap.String("key", keyKey), zap.Error(err))
	}

	if p.count.Load() >= int64(p.cfg.Load().MaxRecords) {
		return nil, false, ErrRecordCap
	}
	// a common name belongs to one key at a time: sessions may allow
	// callers by CN (allowed_clients), so anyone able to upload a CSR must
	// not be able to get a second certificate with someone else's CN
	var cnKey string
	if cn := csr.Subject.CommonName; cn != "" {
		sum := sha256.Sum256([]byte(cn))
		cnKey = cnPrefix + "/" + hex.EncodeToString(sum[:])
		unlock, err := storelock.Lock(ctx, p.storage, p.logger, cnKey)
		if err != nil {
			return nil, false, fmt.Errorf("itp ca: %w", err)
		}
		defer unlock()
		if holder, err := p.storage.Load(ctx, cnKey); err == nil {
			if h, err := p.Record(ctx, string(holder)); err == nil && h.PublicKeySHA256 != hash &&
				!h.Revoked && !p.IsRevoked(mustParseSerial(h.Serial)) && time.Now().Before(h.NotAfter) {
				return nil, false, policyErrorf("common name %q is held by another key's certificate (serial %s) until %s: choose another common name, or ask the platform operator to revoke that certificate",
					cn, h.Serial, h.NotAfter.UTC().Format(time.RFC3339))
			}
		}
	}
	rec, err = p.issue(csr, hash)
	if err != nil {
		return nil, false, err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, false, err
	}
	// the serial record first, then the pointer to it: a crash in
	// between leaves an orphan record, never a pointer to nothing
	if err := p.storage.Store(ctx, serialsPrefix+"/"+rec.Serial, data); err != nil {
		return nil, false, fmt.Errorf("itp ca: storing issuance record: %w", err)
	}
	p.count.Add(1)
	if err := p.storage.Store(ctx, keyKey, []byte(rec.Serial)); err != nil {
		return nil, false, fmt.Errorf("itp ca: storing issuance index: %w", err)
	}
	if cnKey != "" {
		if err := p.storage.Store(ctx, cnKey, []byte(rec.Serial)); err != nil {
			return nil, false, fmt.Errorf("itp ca: storing common name record: %w", err)
		}
	}
	return rec, false, nil
}

func (p *Participants) reusable(rec *Record, now time.Time) bool {
	if rec.Revoked || p.IsRevoked(mustParseSerial(rec.Serial)) {
		return false
	}
	renewAt := rec.NotBefore.Add(rec.NotAfter.Sub(rec.NotBefore) * 2 / 3)
	if !now.Before(renewAt) || !now.Before(rec.NotAfter) {
		return false
	}
	cert, err := DecodeCertPEM([]byte(rec.Certificate))
	if err != nil || cert.CheckSignatureFrom(p.auth.Load().Root) != nil {
		return false
	}
	return true
}

func (p *Participants) currentRecord(ctx context.Context, keyKey string) (*Record, error) {
	serial, err := p.storage.Load(ctx, keyKey)
	if err != nil {
		return nil, err
	}
	return p.Record(ctx, string(serial))
}

// Record loads the issuance record of a serial (lowercase hex).
func (p *Participants) Record(ctx context.Context, serial string) (*Record, error) {
	data, err := p.storage.Load(ctx, serialsPrefix+"/"+serial)
	if err != nil {
		return nil, err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("itp ca: corrupt issuance record %s: %w", serial, err)
	}
	return &rec, nil
}

func (p *Participants) issue(csr *x509.CertificateRequest, hash string) (*Record, error) {
	serial, err := RandomSerial()
	if err != nil {
		return nil, err
	}
	auth := p.auth.Load()
	now := time.Now().UTC().Truncate(time.Second)
	notBefore := now.Add(-5 * time.Minute) // tolerate participants' clock skew
	notAfter := now.Add(p.cfg.Load().Validity)
	if notAfter.After(auth.Root.NotAfter) {
		notAfter = auth.Root.NotAfter
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("itp ca: the root expired on %s; renew it", auth.Root.NotAfter.Format(time.RFC3339))
	}
	keyUsage := x509.KeyUsageDigitalSignature
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// only the common name is kept; every other subject field,
		// extension, SAN and attribute the CSR asks for is ignored
		Subject:               pkix.Name{CommonName: csr.Subject.CommonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              keyUsage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, auth.Root, csr.PublicKey, auth.key)
	if err != nil {
		return nil, fmt.Errorf("itp ca: signing participant certificate: %w", err)
	}
	return &Record{
		Serial:          serial.Text(16),
		Subject:         tmpl.Subject.String(),
		PublicKeySHA256: hash,
		NotBefore:       notBefore,
		NotAfter:        notAfter,
		Certificate:     string(EncodeCertPEM(der)),
	}, nil
}

// Revoke marks the certificate with the given serial revoked. The serial is
// hex, with or without colons and leading zeros, in any case.
func (p *Participants) Revoke(ctx context.Context, serialHex string) (*Record, error) {
	serial, err := ParseSerial(serialHex)
	if err != nil {
		return nil, err
	}
	s := serial.Text(16)
	lockKey := serialsPrefix + "/" + s
	unlock, err := storelock.Lock(ctx, p.storage, p.logger, lockKey)
	if err != nil {
		return nil, fmt.Errorf("itp ca: %w", err)
	}
	defer unlock()
	rec, err := p.Record(ctx, s)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotIssued
	}
	if err != nil {
		return nil, err
	}
	if !rec.Revoked {
		now := time.Now().UTC()
		rec.Revoked, rec.RevokedAt = true, &now
		data, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		// the revocation entry is the authority; the record is updated
		// for people reading it
		if err := p.storage.Store(ctx, revokedPrefix+"/"+s, []byte(now.Format(time.RFC3339Nano))); err != nil {
			return nil, fmt.Errorf("itp ca: storing revocation: %w", err)
		}
		if err := p.storage.Store(ctx, serialsPrefix+"/"+s, data); err != nil {
			return nil, fmt.Errorf("itp ca: updating issuance record: %w", err)
		}
	}
	p.mu.Lock()
	next := make(map[string]struct{}, len(*p.revoked.Load())+1)
	for k := range *p.revoked.Load() {
		next[k] = struct{}{}
	}
	next[s] = struct{}{}
	p.revoked.Store(&next)
	p.mu.Unlock()
	return rec, nil
}

// ParseSerial parses a certificate serial written in hex, allowing colons,
// a 0x prefix, leading zeros and either case.
func ParseSerial(s string) (*big.Int, error) {
	clean := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	clean = strings.TrimPrefix(clean, "0x")
	if clean == "" || len(clean) > 64 {
		return nil, fmt.Errorf("serial %q: expected 1 to 64 hex digits", s)
	}
	n, ok := new(big.Int).SetString(clean, 16)
	if !ok || n.Sign() <= 0 {
		return nil, fmt.Errorf("serial %q: expected a positive hex number", s)
	}
	return n, nil
}

func mustParseSerial(s string) *big.Int {
	n, err := ParseSerial(s)
	if err != nil {
		return new(big.Int)
	}
	return n
}
