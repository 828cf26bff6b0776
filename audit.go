package itp

import (
	"net/http"

	"go.uber.org/zap"
)

// Audit actions.
const (
	auditCreate = "create"
	auditChange = "change"
	auditDelete = "delete"
)

// auditMessages are the log messages of the audit actions.
var auditMessages = map[string]string{
	auditCreate: "created",
	auditChange: "changed",
	auditDelete: "deleted",
}

// audit writes the one structured log entry that records a change made
// through the admin API (issue 6 item 9): who made it (the admin API
// caller's address) and what changed (the kind of record, its id and name,
// and the action). Validation warnings of the new record, such as a client
// certificate that expires soon, are included so that they reach the logs
// too.
func (a *App) audit(r *http.Request, kind, action, id, name string, warnings []string) {
	fields := []zap.Field{
		zap.String("action", action),
		zap.String(kind, id),
		zap.String("by", "admin "+r.RemoteAddr),
	}
	if name != "" {
		fields = append(fields, zap.String("name", name))
	}
	if len(warnings) > 0 {
		fields = append(fields, zap.Strings("warnings", warnings))
	}
	a.logger.Info(kind+" "+auditMessages[action], fields...)
}
