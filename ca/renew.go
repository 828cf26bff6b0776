package ca

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/caddy-itp/caddy-itp/internal/storelock"
)

// previousPrefix holds replaced roots: <serial>.crt, <serial>.key and
// <serial>.until (RFC 3339), written before the new root replaces them.
const previousPrefix = "itp/ca/previous"

// DefaultTransition is how long a replaced root stays trusted.
const DefaultTransition = 30 * 24 * time.Hour

// Renew replaces the root with a new one, explicitly: the old root (with
// its key) stays trusted for the transition period, so participant
// certificates it signed keep working and the platform's server
// certificates keep being signed by it while participants fetch the new
// RootCA.crt (which holds both). The new root has opts' key type (the
// current root's when empty), validity, name and name constraints.
func Renew(ctx context.Context, storage certmagic.Storage, logger *zap.Logger, opts Options, transition time.Duration) (*Authority, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	if transition <= 0 {
		transition = DefaultTransition
	}
	unlock, err := storelock.Lock(ctx, storage, logger, rootLock)
	if err != nil {
		return nil, fmt.Errorf("itp ca: %w", err)
	}
	defer unlock()
	cur, err := loadAuthority(ctx, storage)
	if err != nil {
		return nil, err
	}
	if opts.KeyType == "" {
		opts.KeyType = KeyTypeOf(cur.Root.PublicKey)
	}
	certPEM, keyPEM, err := generateRoot(opts)
	if err != nil {
		return nil, err
	}
	until := time.Now().Add(transition).UTC()
	if until.After(cur.Root.NotAfter) {
		until = cur.Root.NotAfter
	}
	oldKey, err := EncodeKeyPEM(cur.key)
	if err != nil {
		return nil, err
	}
	base := previousPrefix + "/" + cur.Root.SerialNumber.Text(16)
	// the previous root first, complete with its until, then the new
	// root (key before certificate): a crash at any point leaves a
	// loadable CA, at worst with the old root listed twice
	for _, w := range []struct {
		key  string
		data []byte
	}{
		{base + ".key", oldKey},
		{base + ".crt", cur.RootPEM},
		{base + ".until", []byte(until.Format(time.RFC3339))},
		{RootKeyKey, keyPEM},
		{RootCertKey, certPEM},
	} {
		if err := storage.Store(ctx, w.key, w.data); err != nil {
			return nil, fmt.Errorf("itp ca: renewing, storing %s: %w", w.key, err)
		}
	}
	a, err := loadAuthority(ctx, storage)
	if err != nil {
		return nil, err
	}
	logger.Info("renewed the ITP root CA",
		zap.String("action", "renew"),
		zap.String("new_serial", a.Root.SerialNumber.Text(16)),
		zap.String("previous_serial", cur.Root.SerialNumber.Text(16)),
		zap.Time("previous_trusted_until", until))
	return a, nil
}

// loadPrevious loads the previous roots whose transition has not ended.
func (a *Authority) loadPrevious(ctx context.Context, storage certmagic.Storage, now time.Time) error {
	keys, err := storage.List(ctx, previousPrefix, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("itp ca: listing previous roots: %w", err)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !strings.HasSuffix(k, ".until") {
			continue
		}
		base := strings.TrimSuffix(k, ".until")
		untilText, err := storage.Load(ctx, k)
		if err != nil {
			return fmt.Errorf("itp ca: loading %s: %w", k, err)
		}
		until, err := time.Parse(time.RFC3339, strings.TrimSpace(string(untilText)))
		if err != nil {
			return fmt.Errorf("itp ca: %s: %w", k, err)
		}
		if !now.Before(until) {
			continue
		}
		certPEM, err := storage.Load(ctx, base+".crt")
		if err != nil {
			return fmt.Errorf("itp ca: loading %s.crt: %w", base, err)
		}
		keyPEM, err := storage.Load(ctx, base+".key")
		if err != nil {
			return fmt.Errorf("itp ca: loading %s.key: %w", base, err)
		}
		prev, err := parseAuthority(certPEM, keyPEM)
		if err != nil {
			return err
		}
		if prev.Root.Equal(a.Root) {
			continue
		}
		a.previous = append(a.previous, previousRoot{cert: prev.Root, key: prev.key, until: until})
	}
	// newest transition first: the one the server certificates come from
	sort.Slice(a.previous, func(i, j int) bool { return a.previous[i].until.After(a.previous[j].until) })
	a.index()
	return nil
}

// Reload returns the root as storage has it now; changed reports whether it
// differs from a (a renewal by another instance sharing the storage, or a
// transition that ended). It runs on every sync tick, so while the stored
// root certificate is the same and no transition has ended it reads one
// key and parses nothing.
func (a *Authority) Reload(ctx context.Context, storage certmagic.Storage) (next *Authority, changed bool, err error) {
	certPEM, err := storage.Load(ctx, RootCertKey)
	if err != nil {
		return nil, false, fmt.Errorf("itp ca: loading %s: %w", RootCertKey, err)
	}
	now := time.Now()
	ended := false
	for _, p := range a.previous {
		ended = ended || !now.Before(p.until)
	}
	if bytes.Equal(certPEM, a.RootPEM) && !ended {
		return a, false, nil
	}
	next, err = loadAuthority(ctx, storage)
	if err != nil {
		return nil, false, err
	}
	if next.Root.Equal(a.Root) && len(next.previous) == len(a.previous) {
		return a, false, nil // the same root, stored in another PEM form
	}
	return next, true, nil
}
