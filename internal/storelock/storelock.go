// Package storelock takes a named lock of a Caddy storage (certmagic's
// Lock, which works across processes sharing the storage) and gives back
// the function that releases it, logging a failed release: the one way the
// ca and session packages serialise writes that several instances may race
// on.
package storelock

import (
	"context"
	"fmt"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Lock locks name in storage; call the returned function to unlock.
func Lock(ctx context.Context, storage certmagic.Storage, logger *zap.Logger, name string) (unlock func(), err error) {
	if err := storage.Lock(ctx, name); err != nil {
		return nil, fmt.Errorf("locking %s: %w", name, err)
	}
	return func() {
		if err := storage.Unlock(context.Background(), name); err != nil && logger != nil {
			logger.Error("unlocking storage", zap.String("lock", name), zap.Error(err))
		}
	}, nil
}
