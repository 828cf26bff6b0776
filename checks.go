package itp

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
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

// Messages of passing checks, fixed so that recording them allocates
// nothing; the result's source, target and client_cert say who and what.
const (
	msgMTLS              = "mutual TLS with a client certificate from the ITP CA"
	msgClientCertValid   = "the client certificate is valid for the source component"
	msgUpstreamEncrypted = "the platform reached the target over TLS"
	msgUpstreamPlain     = "use_encryption is off for the target: the platform reached it over plain HTTP"
	msgUpstreamTLS       = "TLS with the target succeeded"
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
	// pending are the checks recorded so far; flushed when the request
	// is done, so that they all carry the forwarded URI
	pending []results.Result
}

// exchanges recycles exchanges: one per request on the testing routes.
var exchanges = sync.Pool{New: func() any { return &exchange{pending: make([]results.Result, 0, 8)} }}

func newExchange() *exchange { return exchanges.Get().(*exchange) }

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
	// counters caches the counter vector's children by check name: a
	// *[2]prometheus.Counter of fail, pass
	counters sync.Map
}

// count adds one to the counter of a check outcome.
func (c *checkRecorder) count(check string, pass bool) {
	v, ok := c.counters.Load(check)
	if !ok {
		v, _ = c.counters.LoadOrStore(check, &[2]prometheus.Counter{
			c.counter.WithLabelValues(check, results.StatusFail),
			c.counter.WithLabelValues(check, results.StatusPass),
		})
	}
	i := 0
	if pass {
		i = 1
	}
	v.(*[2]prometheus.Counter)[i].Inc()
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
	status := results.StatusFail
	if pass {
		status = results.StatusPass
	}
	ex.pending = append(ex.pending, results.Result{
		Time:     timeNow(),
		Check:    check,
		Status:   status,
		Expected: expected,
		Actual:   actual,
		Message:  msg,
	})
}

// done records what is pending and recycles the exchange.
func (c *checkRecorder) done(ex *exchange) {
	c.flush(ex)
	clear(ex.pending)
	pending := ex.pending[:0]
	*ex = exchange{pending: pending}
	exchanges.Put(ex)
}

// flush records the pending checks of an exchange with what it knows by
// now (the forwarded URI).
func (c *checkRecorder) flush(ex *exchange) {
	if len(ex.pending) == 0 {
		return
	}
	for _, r := range ex.pending {
		r.Session, r.Source, r.Target = ex.session, ex.source, ex.target
		r.Method, r.URI, r.ForwardedURI = ex.method, ex.uri, ex.forwarded
		r.ClientCert = ex.cert // the results share it; a new one per request
		r = c.store.Record(r)
		c.count(r.Check, r.Status == results.StatusPass)
		level := zapcore.DebugLevel
		if r.Status == results.StatusFail {
			level = zapcore.WarnLevel
		}
		msg := "check fail"
		if r.Status == results.StatusPass {
			msg = "check pass"
		}
		if ce := c.logger.Check(level, msg); ce != nil {
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
	ex.pending = ex.pending[:0]
}
