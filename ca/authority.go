package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/caddy-itp/caddy-itp/internal/storelock"
)

// Storage keys of the root CA. The certificate is written last, so its
// presence means the CA is complete.
const (
	RootCertKey = "itp/ca/root.crt"
	RootKeyKey  = "itp/ca/root.key"
	rootLock    = "itp/ca"
)

// Defaults of the root CA.
const (
	DefaultRootValidity   = 10 * 365 * 24 * time.Hour
	DefaultRootCommonName = "Caddy ITP Root CA"
)

// Options configure how the root CA is created the first time. They never
// replace a root that is already in storage.
type Options struct {
	// KeyType of a generated root key; "" means ECDSA P-256.
	KeyType string
	// Validity of a generated root; 0 means DefaultRootValidity.
	Validity time.Duration
	// CommonName of a generated root; "" means DefaultRootCommonName.
	CommonName string
	// ImportCert and ImportKey are PEM files of an existing CA to use
	// instead of generating one. Both or neither.
	ImportCert, ImportKey string
	// NameConstraints limits a generated root to these DNS names (and
	// their subdomains) and IP addresses or CIDR ranges.
	NameConstraints []string
}

// Authority is a loaded root CA: the current root and, after a renewal,
// the previous roots still trusted during their transition period.
type Authority struct {
	// Root is the current root; it signs new participant certificates.
	Root *x509.Certificate
	// RootPEM is the current root, PEM.
	RootPEM []byte

	key      crypto.Signer
	pool     *x509.CertPool
	previous []previousRoot
	trustPEM []byte
}

// previousRoot is a replaced root, trusted until its transition ends.
type previousRoot struct {
	cert  *x509.Certificate
	key   crypto.Signer
	until time.Time
}

// Pool returns a certificate pool holding the current root and the
// previous roots still in their transition period: the roots a client
// certificate may chain to.
func (a *Authority) Pool() *x509.CertPool { return a.pool }

// TrustPEM is what participants download as RootCA.crt: the current root,
// followed by the previous roots still in their transition period, so
// that the platform's server certificate verifies whichever root signed it.
func (a *Authority) TrustPEM() []byte { return a.trustPEM }

// Roots returns the current root and the previous roots in transition.
func (a *Authority) Roots() []*x509.Certificate {
	roots := []*x509.Certificate{a.Root}
	for _, p := range a.previous {
		roots = append(roots, p.cert)
	}
	return roots
}

// Previous lists the previous roots still trusted and until when.
func (a *Authority) Previous() []PreviousRoot {
	out := make([]PreviousRoot, 0, len(a.previous))
	for _, p := range a.previous {
		out = append(out, PreviousRoot{Serial: p.cert.SerialNumber.Text(16), Subject: p.cert.Subject.String(), Until: p.until})
	}
	return out
}

// PreviousRoot describes a replaced root still trusted in its transition.
type PreviousRoot struct {
	Serial  string    `json:"serial"`
	Subject string    `json:"subject"`
	Until   time.Time `json:"trusted_until"`
}

// Signer returns the root's private key.
func (a *Authority) Signer() crypto.Signer { return a.key }

// LoadOrCreate loads the root CA from storage, creating it (by generation or
// import) under a storage lock when it does not exist yet, so that several
// instances sharing one storage end up with the same root. A root already in
// storage is never replaced: when opts ask for another key type or CA, a
// warning is logged and the stored root kept.
func LoadOrCreate(ctx context.Context, storage certmagic.Storage, logger *zap.Logger, opts Options) (*Authority, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	if (opts.ImportCert == "") != (opts.ImportKey == "") {
		return nil, fmt.Errorf("itp ca: import needs both a certificate and a key file")
	}
	if !ValidKeyType(opts.KeyType) {
		_, err := GenerateKey(opts.KeyType)
		return nil, fmt.Errorf("itp ca: %w", err)
	}
	a, err := loadAuthority(ctx, storage)
	if err == nil {
		warnMismatch(logger, a, opts)
		return a, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	unlock, err := storelock.Lock(ctx, storage, logger, rootLock)
	if err != nil {
		return nil, fmt.Errorf("itp ca: %w", err)
	}
	defer unlock()
	// another instance may have created it while we waited for the lock
	a, err = loadAuthority(ctx, storage)
	if err == nil {
		warnMismatch(logger, a, opts)
		return a, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var certPEM, keyPEM []byte
	if opts.ImportCert != "" {
		certPEM, keyPEM, err = importCA(opts.ImportCert, opts.ImportKey)
	} else {
		certPEM, keyPEM, err = generateRoot(opts)
	}
	if err != nil {
		return nil, err
	}
	if err := storage.Store(ctx, RootKeyKey, keyPEM); err != nil {
		return nil, fmt.Errorf("itp ca: storing root key: %w", err)
	}
	if err := storage.Store(ctx, RootCertKey, certPEM); err != nil {
		return nil, fmt.Errorf("itp ca: storing root certificate: %w", err)
	}
	a, err = parseAuthority(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	logger.Info("created ITP root CA",
		zap.String("subject", a.Root.Subject.String()),
		zap.String("key", DescribeKey(a.Root.PublicKey)),
		zap.Time("not_after", a.Root.NotAfter),
		zap.Bool("imported", opts.ImportCert != ""))
	return a, nil
}

func loadAuthority(ctx context.Context, storage certmagic.Storage) (*Authority, error) {
	certPEM, err := storage.Load(ctx, RootCertKey)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("itp ca: loading %s: %w", RootCertKey, err)
	}
	keyPEM, err := storage.Load(ctx, RootKeyKey)
	if err != nil {
		// the certificate is written last: a missing key next to a
		// certificate is damage, not a CA to create afresh
		return nil, fmt.Errorf("itp ca: root certificate present but loading %s failed: %v", RootKeyKey, err)
	}
	a, err := parseAuthority(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if err := a.loadPrevious(ctx, storage, time.Now()); err != nil {
		return nil, err
	}
	return a, nil
}

func parseAuthority(certPEM, keyPEM []byte) (*Authority, error) {
	cert, err := DecodeCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("itp ca: root certificate: %w", err)
	}
	key, err := DecodeKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("itp ca: root key: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("itp ca: root key does not match the root certificate")
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("itp ca: root certificate %q is not a CA certificate", cert.Subject)
	}
	a := &Authority{Root: cert, RootPEM: EncodeCertPEM(cert.Raw), key: key}
	a.index()
	return a, nil
}

// index builds the pool and the trust bundle from the roots.
func (a *Authority) index() {
	a.pool = x509.NewCertPool()
	a.pool.AddCert(a.Root)
	a.trustPEM = append([]byte(nil), a.RootPEM...)
	for _, p := range a.previous {
		a.pool.AddCert(p.cert)
		a.trustPEM = append(a.trustPEM, EncodeCertPEM(p.cert.Raw)...)
	}
}

func warnMismatch(logger *zap.Logger, a *Authority, opts Options) {
	if opts.ImportCert != "" {
		certPEM, err := os.ReadFile(opts.ImportCert)
		if err != nil {
			logger.Warn("configured CA import file unreadable; keeping the CA in storage", zap.String("file", opts.ImportCert), zap.Error(err))
			return
		}
		cert, err := DecodeCertPEM(certPEM)
		if err != nil || !cert.Equal(a.Root) {
			logger.Warn("configured CA import differs from the root already in storage; keeping the stored root (delete "+RootCertKey+" and "+RootKeyKey+" from storage to replace it)",
				zap.String("file", opts.ImportCert),
				zap.String("stored_subject", a.Root.Subject.String()))
		}
		return
	}
	want := strings.ToLower(opts.KeyType)
	if want == "" {
		want = KeyECDSAP256
	}
	if got := KeyTypeOf(a.Root.PublicKey); got != want {
		logger.Warn("configured CA key type differs from the root already in storage; keeping the stored root",
			zap.String("configured", want), zap.String("stored", got))
	}
}

func generateRoot(opts Options) (certPEM, keyPEM []byte, err error) {
	key, err := GenerateKey(opts.KeyType)
	if err != nil {
		return nil, nil, fmt.Errorf("itp ca: %w", err)
	}
	validity := opts.Validity
	if validity <= 0 {
		validity = DefaultRootValidity
	}
	cn := opts.CommonName
	if cn == "" {
		cn = DefaultRootCommonName
	}
	serial, err := RandomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now().Add(-time.Minute).UTC()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Caddy ITP"}},
		NotBefore:             now,
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	if len(opts.NameConstraints) > 0 {
		if err := applyNameConstraints(tmpl, opts.NameConstraints); err != nil {
			return nil, nil, err
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("itp ca: creating root certificate: %w", err)
	}
	keyPEM, err = EncodeKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return EncodeCertPEM(der), keyPEM, nil
}

// applyNameConstraints permits the given DNS names and IP addresses or
// ranges, and nothing else, for names in certificates below the root.
// Participant client certificates carry no SANs, so the constraints limit
// only what server certificates the root can vouch for.
func applyNameConstraints(tmpl *x509.Certificate, names []string) error {
	for _, n := range names {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
			return fmt.Errorf("itp ca: empty name constraint")
		case strings.Contains(n, "/"):
			_, ipnet, err := net.ParseCIDR(n)
			if err != nil {
				return fmt.Errorf("itp ca: name constraint %q: %w", n, err)
			}
			tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges, ipnet)
		case net.ParseIP(n) != nil:
			ip := net.ParseIP(n)
			bits := 128
			if ip4 := ip.To4(); ip4 != nil {
				ip, bits = ip4, 32
			}
			tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		default:
			tmpl.PermittedDNSDomains = append(tmpl.PermittedDNSDomains, n)
		}
	}
	tmpl.PermittedDNSDomainsCritical = true
	return nil
}

func importCA(certFile, keyFile string) (certPEM, keyPEM []byte, err error) {
	certPEM, err = os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("itp ca: reading CA certificate to import: %w", err)
	}
	keyPEM, err = os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("itp ca: reading CA key to import: %w", err)
	}
	a, err := parseAuthority(certPEM, keyPEM)
	if err != nil {
		return nil, nil, err
	}
	// store the key in one canonical form
	keyPEM, err = EncodeKeyPEM(a.key)
	if err != nil {
		return nil, nil, err
	}
	return a.RootPEM, keyPEM, nil
}

// RandomSerial returns a random positive serial number of 128 bits with the
// top bit set, so it always has at least 64 bits of randomness and a fixed
// length.
func RandomSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	b[0] = b[0]&0x7f | 0x40 // positive, 127 significant bits
	return new(big.Int).SetBytes(b), nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}
