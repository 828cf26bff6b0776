package itp

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddy-itp/caddy-itp/ca"
	"github.com/caddy-itp/caddy-itp/proxy"
	"github.com/caddy-itp/caddy-itp/results"
	"github.com/caddy-itp/caddy-itp/session"
)

// state is what the itp app keeps across config reloads, one per storage:
// the CA and its records, the upstream key, the participants' rate limiter
// and the background sync with other instances.
type state struct {
	participants *ca.Participants
	upstreamKey  crypto.Signer
	limiter      *addrLimiter
	registry     *session.Registry
	results      *results.Store
	judge        *proxy.Judge
	upstreams    *proxy.Pool
	// checksCounter counts check outcomes across config reloads
	checksCounter *prometheus.CounterVec
	logger        *zap.Logger
	storage       certmagic.Storage

	// retention is how long expired sessions are kept (nanoseconds)
	retention atomic.Int64
	// interval is the sync interval (nanoseconds)
	interval atomic.Int64

	startOnce sync.Once
	cancel    context.CancelFunc
	done      chan struct{}
}

func newState(ctx caddy.Context, storage certmagic.Storage, logger *zap.Logger, app *App) (*state, error) {
	auth, err := ca.LoadOrCreate(ctx, storage, logger, ca.Options{
		KeyType:         app.CA.KeyType,
		Validity:        time.Duration(app.CA.Validity),
		CommonName:      app.CA.CommonName,
		ImportCert:      app.CA.ImportCert,
		ImportKey:       app.CA.ImportKey,
		NameConstraints: app.CA.NameConstraints,
	})
	if err != nil {
		return nil, err
	}
	participants, err := ca.NewParticipants(ctx, auth, storage, logger, ca.IssuerConfig{})
	if err != nil {
		return nil, err
	}
	upstreamKey, err := ca.LoadOrCreateUpstreamKey(ctx, storage, logger, app.UpstreamKeyType)
	if err != nil {
		return nil, err
	}
	registry, err := session.New(storage, logger.Named("sessions"), session.Options{
		UpstreamPublicKey: upstreamKey.Public(),
		ExpiryWarning:     time.Duration(app.ExpiryWarning),
		SyncInterval:      time.Duration(app.SyncInterval),
		CompileJWSRule:    compileJWSRule,
	})
	if err != nil {
		return nil, err
	}
	store := results.New(storage, logger.Named("results"), results.Options{PerSession: app.ResultsPerSession})
	return &state{
		participants:  participants,
		upstreamKey:   upstreamKey,
		limiter:       newAddrLimiter(),
		registry:      registry,
		results:       store,
		judge:         proxy.NewJudge(func() *x509.CertPool { return participants.Authority().Pool() }, participants.IsRevoked, proxy.JudgeOptions{}),
		upstreams:     proxy.NewPool(proxy.PoolOptions{}),
		checksCounter: newChecksCounter(),
		storage:       storage,
		logger:        logger,
	}, nil
}

// configure applies a (re)loaded config's settings to the shared state.
func (s *state) configure(app *App) {
	s.participants.Configure(ca.IssuerConfig{
		Validity:   time.Duration(app.Issuance.Validity),
		MaxRecords: app.Issuance.MaxRecords,
	})
	rate := app.Issuance.RatePerMinute
	if rate == 0 {
		rate = defaultRatePerMinute
	}
	s.limiter.setRate(rate)
	retention := time.Duration(app.SessionRetention)
	if retention == 0 {
		retention = DefaultSessionRetention
	}
	s.retention.Store(int64(retention))
	s.interval.Store(int64(app.SyncInterval))
	s.registry.SetSyncInterval(time.Duration(app.SyncInterval))
	s.registry.SetExpiryWarning(time.Duration(app.ExpiryWarning))
	s.results.SetPerSession(app.ResultsPerSession)
	s.judge.SetHowToGet("get one by uploading a CSR to " + joinBase(app.publicURL, DefaultCAPrefix+"/certificates"))
}

// start launches the background sync once per state.
func (s *state) start() {
	s.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel, s.done = cancel, make(chan struct{})
		go s.sync(ctx)
		s.registry.Start()
	})
}

func (s *state) sync(ctx context.Context) {
	defer close(s.done)
	interval := time.Duration(s.interval.Load())
	t := time.NewTicker(interval)
	defer t.Stop()
	purge := time.NewTicker(time.Minute)
	defer purge.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-purge.C:
			s.purgeExpired(ctx, time.Duration(s.retention.Load()), now)
		case <-t.C:
			if next := time.Duration(s.interval.Load()); next != interval {
				interval = next
				t.Reset(interval)
			}
			if err := s.participants.Refresh(ctx); err != nil && ctx.Err() == nil {
				s.logger.Error("refreshing revocations from storage", zap.Error(err))
			}
			s.reloadAuthority(ctx)
		}
	}
}

// Destruct stops the background sync when the last config using this
// state is unloaded.
func (s *state) Destruct() error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	s.upstreams.CloseIdleConnections()
	return errors.Join(s.registry.Close(), s.results.Close())
}

var _ caddy.Destructor = (*state)(nil)

// reloadAuthority picks up a root renewed by another instance sharing the
// storage, or a transition that has ended.
func (s *state) reloadAuthority(ctx context.Context) {
	next, changed, err := s.participants.Authority().Reload(ctx, s.storage)
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Error("reloading the ITP root from storage", zap.Error(err))
		}
		return
	}
	if changed {
		s.participants.SetAuthority(next)
		s.logger.Info("loaded a changed ITP root from storage", zap.String("serial", next.Root.SerialNumber.Text(16)))
	}
}
