package itp

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

const (
	defaultRatePerMinute = 30
	maxLimitedAddrs      = 100000
)

// addrLimiter is a token bucket per client address for participant
// issuance. It is bounded: idle addresses are forgotten, and past
// maxLimitedAddrs addresses the table is reset rather than grown.
type addrLimiter struct {
	perMinute atomic.Int64
	mu        sync.Mutex
	buckets   map[string]*bucket
	swept     time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newAddrLimiter() *addrLimiter {
	return &addrLimiter{buckets: make(map[string]*bucket)}
}

func (l *addrLimiter) setRate(perMinute int) {
	if l.perMinute.Swap(int64(perMinute)) != int64(perMinute) {
		l.mu.Lock()
		clear(l.buckets)
		l.mu.Unlock()
	}
}

// allow reports whether addr may make one more request now, and if not,
// how long until it may.
func (l *addrLimiter) allow(addr string) (bool, time.Duration) {
	per := l.perMinute.Load()
	if per < 0 {
		return true, 0
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.buckets {
			if now.Sub(b.last) > 2*time.Minute {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[addr]
	if !ok {
		if len(l.buckets) >= maxLimitedAddrs {
			clear(l.buckets)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Limit(float64(per)/60), int(per))}
		l.buckets[addr] = b
	}
	b.last = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
