package itp

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-itp/caddy-itp/session"
)

// DefaultSessionRetention is how long an expired session and its results
// are kept before they are purged.
const DefaultSessionRetention = 7 * 24 * time.Hour

// purgeExpired deletes the sessions (with their results) that expired more
// than retention ago. Sessions declared in the config are left alone: the
// config owns them.
func (s *state) purgeExpired(ctx context.Context, retention time.Duration, now time.Time) {
	for _, id := range s.registry.ExpiredBefore(now.Add(-retention)) {
		err := s.registry.DeleteSession(ctx, id)
		if err != nil && !errors.Is(err, session.ErrNotFound) {
			s.logger.Error("purging expired session", zap.String("session", id), zap.Error(err))
			continue
		}
		if err := s.results.Delete(ctx, id); err != nil {
			s.logger.Error("purging results of expired session", zap.String("session", id), zap.Error(err))
			continue
		}
		s.logger.Info("purged expired session",
			zap.String("action", "purge"),
			zap.String("session", id),
			zap.Duration("retention", retention),
			zap.String("by", "retention"))
	}
}
