package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/caddy-itp/caddy-itp/internal/storelock"
)

// Storage keys of the platform's upstream client key.
const (
	UpstreamKeyKey = "itp/upstream/client.key"
	upstreamLock   = "itp/upstream"
)

// DefaultUpstreamCommonName is the subject of the platform's upstream CSR.
const DefaultUpstreamCommonName = "Caddy ITP platform"

// LoadOrCreateUpstreamKey loads the platform's upstream client key, the key
// the platform presents to systems under test, creating it once under a
// storage lock like the root. The key never leaves the platform: SUT owners
// get a CSR for it and sign that.
func LoadOrCreateUpstreamKey(ctx context.Context, storage certmagic.Storage, logger *zap.Logger, keyType string) (crypto.Signer, error) {
	load := func() (crypto.Signer, error) {
		data, err := storage.Load(ctx, UpstreamKeyKey)
		if err != nil {
			return nil, err
		}
		k, err := DecodeKeyPEM(data)
		if err != nil {
			return nil, fmt.Errorf("itp upstream key %s: %w", UpstreamKeyKey, err)
		}
		return k, nil
	}
	key, err := load()
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	unlock, err := storelock.Lock(ctx, storage, logger, upstreamLock)
	if err != nil {
		return nil, fmt.Errorf("itp upstream key: %w", err)
	}
	defer unlock()
	key, err = load()
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key, err = GenerateKey(keyType)
	if err != nil {
		return nil, fmt.Errorf("itp upstream key: %w", err)
	}
	data, err := EncodeKeyPEM(key)
	if err != nil {
		return nil, err
	}
	if err := storage.Store(ctx, UpstreamKeyKey, data); err != nil {
		return nil, fmt.Errorf("itp upstream key: storing: %w", err)
	}
	if logger != nil {
		logger.Info("created the platform's upstream client key", zap.String("key", DescribeKey(key.Public())))
	}
	return key, nil
}

// UpstreamCSR makes a PEM CSR for the upstream key, for a SUT owner to sign
// with their CA.
func UpstreamCSR(key crypto.Signer, commonName string) ([]byte, error) {
	if commonName == "" {
		commonName = DefaultUpstreamCommonName
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("itp upstream csr: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}
