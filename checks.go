package itp

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-itp/caddy-itp/results"
)

// The checks the itp handler records (DESIGN.md §4).
const (
	checkEncrypted          = "Was encrypted?"
	checkClientCert         = "Client certificate"
	checkUpstreamEncryption = "Upstream encryption"
	checkUpstreamTLS        = "Upstream TLS"
	// checkUpstreamCertificate fails when an uploaded certificate expired
	// after it was accepted.
	checkUpstreamCertificate = "Upstream certificate"
)

// Expected and actual values, allocated once.
var (
	mtlsTrue       = json.RawMessage(`{"mtls":true}`)
	mtlsFalse      = json.RawMessage(`{"mtls":false}`)
	certValid      = json.RawMessage(`{"client_certificate":"valid"}`)
	certMissing    = json.RawMessage(`{"client_certificate":"none"}`)
	certInvalid    = json.RawMessage(`{"client_certificate":"invalid"}`)
	encryptedTrue  = json.RawMessage(`{"encrypted":true}`)
	encryptedFalse = json.RawMessage(`{"encrypted":false}`)
)

// timeNow is the clock of the handlers.
var timeNow = time.Now

// clientCertInfo identifies the client certificate of a request.
type clientCertInfo = results.ClientCert

// exchange is what the results of one request share, and the checks
// pending until the forwarded URI is known.
type exchange struct {
	session, source, target string
	method, uri, forwarded  string
	cert                    *clientCertInfo
	pending                 [6]results.Result
	n                       int
}

// certActual is the actual value of a refused client certificate.
func certActual(present bool) json.RawMessage {
	if present {
		return certInvalid
	}
	return certMissing
}

// checkRecorder records check outcomes: one result in the session's
// results, one log entry (failures at WARN, passes at DEBUG, logger
// http.handlers.itp) and one count in the Prometheus counter
// caddy_itp_checks_total{check, status}.
type checkRecorder struct {
	logger  *zap.Logger
	store   *results.Store
	counter *prometheus.CounterVec
}

// newChecksCounter makes the counter of check outcomes. It lives in the
// state that outlives config reloads, so counts do not restart at every
// reload.
func newChecksCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "itp",
		Name:      "checks_total",
		Help:      "Check outcomes of the ITP testing routes, by check and status.",
	}, []string{"check", "status"})
}

func newCheckRecorder(ctx caddy.Context, logger *zap.Logger, store *results.Store, counter *prometheus.CounterVec) (*checkRecorder, error) {
	// Caddy makes a new metrics registry per config load: register the
	// long-lived counter with this one (several itp handlers in one config
	// find it already there)
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		if err := reg.Register(counter); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("itp handler: registering metrics: %w", err)
			}
		}
	}
	return &checkRecorder{logger: logger, store: store, counter: counter}, nil
}

// record adds a check outcome to the exchange; flush records them.
func (c *checkRecorder) record(ex *exchange, check string, pass bool, expected, actual json.RawMessage, msg string) {
	if ex.n == len(ex.pending) {
		c.flush(ex)
	}
	status := results.StatusFail
	if pass {
		status = results.StatusPass
	}
	ex.pending[ex.n] = results.Result{
		Time:     timeNow(),
		Check:    check,
		Status:   status,
		Expected: expected,
		Actual:   actual,
		Message:  msg,
	}
	ex.n++
}

// flush records the pending checks of an exchange with what it knows by
// now (the forwarded URI).
func (c *checkRecorder) flush(ex *exchange) {
	for i := range ex.n {
		r := ex.pending[i]
		r.Session, r.Source, r.Target = ex.session, ex.source, ex.target
		r.Method, r.URI, r.ForwardedURI = ex.method, ex.uri, ex.forwarded
		r.ClientCert = ex.cert
		r = c.store.Record(r)
		c.counter.WithLabelValues(r.Check, r.Status).Inc()
		level := zapcore.DebugLevel
		if r.Status == results.StatusFail {
			level = zapcore.WarnLevel
		}
		if ce := c.logger.Check(level, "check "+r.Status); ce != nil {
			fields := []zap.Field{
				zap.String("check", r.Check),
				zap.String("status", r.Status),
				zap.String("session", r.Session),
				zap.Int64("result_id", r.ID),
				zap.String("source", r.Source),
				zap.String("target", r.Target),
				zap.String("method", r.Method),
				zap.String("uri", r.URI),
				zap.String("forwarded_uri", r.ForwardedURI),
				zap.String("message", r.Message),
			}
			if r.ClientCert != nil {
				fields = append(fields, zap.String("client_subject", r.ClientCert.Subject), zap.String("client_serial", r.ClientCert.Serial))
			}
			ce.Write(fields...)
		}
	}
	ex.n = 0
}
