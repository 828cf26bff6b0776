package results

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/caddy-itp/caddy-itp/internal/ids"
)

// KeyPrefix is the storage key prefix of the stored result lists; a
// session's list is at KeyPrefix + session + ".json".
const KeyPrefix = "itp/results/"

// Defaults of Options.
const (
	DefaultPerSession    = 1000
	DefaultFlushInterval = time.Second
)

// Options configures a Store.
type Options struct {
	// PerSession is the most results kept per session; the oldest are
	// dropped first. Default: 1000.
	PerSession int
	// FlushInterval is how often the results of sessions that changed are
	// written to storage. Default: 1s.
	FlushInterval time.Duration
	// MaxFlushPerTick caps how many sessions one background flush writes,
	// those waiting longest first. Default: 256.
	MaxFlushPerTick int
}

// Store holds the results of every session, bounded per session, and
// persists them in the background. Its methods are safe for concurrent use.
type Store struct {
	storage certmagic.Storage
	logger  *zap.Logger
	opts    Options

	logs sync.Map // session id -> *sessionLog

	// perSession is Options.PerSession, changed by SetPerSession
	perSession atomic.Int64

	// flushMu serialises flushes and deletions so that a flush never writes
	// back a session that Delete just removed.
	flushMu sync.Mutex

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// sessionLog is the bounded ring of one session's results.
type sessionLog struct {
	mu  sync.Mutex
	buf []Result // ring of at most PerSession results
	// enc holds buf[i]'s JSON once a flush has encoded it (nil before):
	// each result is encoded once, not at every flush of its session
	enc    [][]byte
	start  int // index of the oldest result in buf once it is full
	lastID int64
	dirty  bool
	// dirtySince is when the log became dirty: the background flush
	// writes the longest-waiting logs first
	dirtySince time.Time
	deleted    bool
}

// storedList is the JSON document stored for one session.
type storedList struct {
	Session string   `json:"session"`
	LastID  int64    `json:"last_id"`
	Results []Result `json:"results"`
}

// New returns a Store that keeps results in storage under KeyPrefix. It loads
// the stored lists (logging and skipping those that cannot be read) and
// starts the background flusher, which Close stops.
func New(storage certmagic.Storage, logger *zap.Logger, opts Options) *Store {
	if logger == nil {
		logger = zap.NewNop()
	}
	if opts.PerSession <= 0 {
		opts.PerSession = DefaultPerSession
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.MaxFlushPerTick <= 0 {
		opts.MaxFlushPerTick = 256
	}
	s := &Store{
		storage: storage,
		logger:  logger,
		opts:    opts,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.perSession.Store(int64(opts.PerSession))
	s.loadAll(context.Background())
	go s.run()
	return s
}

// loadAll reads every stored list into memory.
func (s *Store) loadAll(ctx context.Context) {
	keys, err := s.storage.List(ctx, strings.TrimSuffix(KeyPrefix, "/"), false)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.logger.Error("listing stored results", zap.String("prefix", KeyPrefix), zap.Error(err))
		}
		return
	}
	for _, key := range keys {
		session, ok := ids.FromKey(KeyPrefix, key)
		if !ok {
			continue
		}
		list, err := s.load(ctx, key)
		if err != nil {
			s.logger.Error("skipping stored results", zap.String("key", key), zap.Error(err))
			continue
		}
		l := &sessionLog{lastID: list.LastID}
		for _, r := range list.Results {
			if r.ID > l.lastID {
				l.lastID = r.ID
			}
			l.push(r, int(s.perSession.Load()))
		}
		s.logs.Store(session, l)
	}
}

// load reads and decodes the stored list at key.
func (s *Store) load(ctx context.Context, key string) (storedList, error) {
	var list storedList
	b, err := s.storage.Load(ctx, key)
	if err != nil {
		return list, err
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return list, fmt.Errorf("decoding %s: %w", key, err)
	}
	return list, nil
}

// Key returns the storage key of a session's stored list.
func Key(session string) string { return KeyPrefix + session + ".json" }

// push appends r to the ring, dropping the oldest result when full. When
// max changed since the last push (SetPerSession), the ring is first laid
// out oldest first and cut to the newest max results.
func (l *sessionLog) push(r Result, max int) {
	if l.start != 0 && len(l.buf) != max || len(l.buf) > max {
		n := len(l.buf)
		ordered, enc := make([]Result, 0, n), make([][]byte, 0, n)
		for i := range n {
			k := (l.start + i) % n
			ordered, enc = append(ordered, l.buf[k]), append(enc, l.enc[k])
		}
		if n > max {
			ordered, enc = ordered[n-max:], enc[n-max:]
		}
		l.buf, l.enc, l.start = ordered, enc, 0
	}
	if len(l.buf) < max {
		l.buf, l.enc = append(l.buf, r), append(l.enc, nil)
		return
	}
	l.buf[l.start], l.enc[l.start] = r, nil
	l.start++
	if l.start == len(l.buf) {
		l.start = 0
	}
}

// ordered calls fn for each result, oldest first, until fn returns false.
func (l *sessionLog) ordered(fn func(*Result) bool) {
	n := len(l.buf)
	for i := 0; i < n; i++ {
		if !fn(&l.buf[(l.start+i)%n]) {
			return
		}
	}
}

// Record assigns r the next id of its session (and the current time when
// r.Time is zero), keeps it in memory and marks the session for the next
// flush. It never waits for storage. A result whose session id is not a safe
// id (see DESIGN.md §3) is not kept and is returned with id 0.
func (s *Store) Record(r Result) Result {
	if !ids.Valid(r.Session) {
		s.logger.Warn("dropping result with an invalid session id", zap.String("session", r.Session))
		r.ID = 0
		return r
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	v, ok := s.logs.Load(r.Session)
	if !ok {
		v, _ = s.logs.LoadOrStore(r.Session, &sessionLog{})
	}
	l := v.(*sessionLog)
	l.mu.Lock()
	if l.deleted {
		// Delete removed this log after we loaded it: start a new one.
		l.mu.Unlock()
		nl := &sessionLog{}
		v, _ = s.logs.LoadOrStore(r.Session, nl)
		l = v.(*sessionLog)
		l.mu.Lock()
	}
	l.lastID++
	r.ID = l.lastID
	l.push(r, int(s.perSession.Load()))
	if !l.dirty {
		l.dirty, l.dirtySince = true, r.Time
	}
	l.mu.Unlock()
	return r
}

// SetPerSession changes the most results kept per session (a config
// reload); each session's list follows at its next result. n <= 0 means
// DefaultPerSession.
func (s *Store) SetPerSession(n int) {
	if n <= 0 {
		n = DefaultPerSession
	}
	s.perSession.Store(int64(n))
}

// Query returns the results of session, oldest first, with an id greater than
// since, and, when status or check is not empty, with that status and check.
// A session with no results in memory is read from storage (see the package
// documentation).
func (s *Store) Query(session string, since int64, status, check string) []Result {
	match := func(r *Result) bool {
		return r.ID > since && (status == "" || r.Status == status) && (check == "" || r.Check == check)
	}
	out := []Result{}
	if v, ok := s.logs.Load(session); ok {
		l := v.(*sessionLog)
		l.mu.Lock()
		if !l.deleted {
			l.ordered(func(r *Result) bool {
				if match(r) {
					out = append(out, *r)
				}
				return true
			})
			l.mu.Unlock()
			return out
		}
		l.mu.Unlock()
	}
	if !ids.Valid(session) {
		return out
	}
	list, err := s.load(context.Background(), Key(session))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.logger.Error("reading stored results", zap.String("key", Key(session)), zap.Error(err))
		}
		return out
	}
	for i := range list.Results {
		if match(&list.Results[i]) {
			out = append(out, list.Results[i])
		}
	}
	return out
}

// Delete removes a session's results from memory and storage. Later results
// of the same session start again at id 1.
func (s *Store) Delete(ctx context.Context, session string) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if v, ok := s.logs.LoadAndDelete(session); ok {
		l := v.(*sessionLog)
		l.mu.Lock()
		l.deleted = true
		l.buf, l.enc = nil, nil
		l.mu.Unlock()
	}
	if !ids.Valid(session) {
		return nil
	}
	if err := s.storage.Delete(ctx, Key(session)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting results of session %s: %w", session, err)
	}
	return nil
}

// Flush writes the results of every session that changed since its last
// write, one Store per session. It returns the first error, after trying
// every session; sessions that failed stay marked for the next flush.
func (s *Store) Flush(ctx context.Context) error {
	return s.flush(ctx, 0)
}

// flush writes at most max dirty sessions (0: all), those dirty the
// longest first. Each write rewrites a session's whole bounded list, so the
// background flush caps the writes per tick: with thousands of active
// sessions, each is written every few ticks instead of every tick, and
// storage I/O stays bounded whatever the number of sessions.
func (s *Store) flush(ctx context.Context, max int) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	type pending struct {
		session string
		since   time.Time
		log     *sessionLog
	}
	var dirty []pending
	s.logs.Range(func(k, v any) bool {
		l := v.(*sessionLog)
		l.mu.Lock()
		if l.dirty && !l.deleted {
			dirty = append(dirty, pending{k.(string), l.dirtySince, l})
		}
		l.mu.Unlock()
		return true
	})
	if max > 0 && len(dirty) > max {
		sort.Slice(dirty, func(i, j int) bool { return dirty[i].since.Before(dirty[j].since) })
		dirty = dirty[:max]
	}
	var firstErr error
	for _, d := range dirty {
		if ctx.Err() != nil {
			break
		}
		session, l := d.session, d.log
		l.mu.Lock()
		if !l.dirty || l.deleted {
			l.mu.Unlock()
			continue
		}
		doc, err := l.document(session)
		l.dirty = false
		l.mu.Unlock()

		if err == nil {
			err = s.write(ctx, session, doc)
		}
		if err != nil {
			l.mu.Lock()
			if !l.dirty {
				l.dirty, l.dirtySince = true, d.since
			}
			l.mu.Unlock()
			s.logger.Error("writing results", zap.String("key", Key(session)), zap.Error(err))
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// write stores one session's list.
func (s *Store) write(ctx context.Context, session string, doc []byte) error {
	if err := s.storage.Store(ctx, Key(session), doc); err != nil {
		return fmt.Errorf("storing results of session %s: %w", session, err)
	}
	return nil
}

// document is the storedList JSON of the log, oldest result first, built
// from each result's cached encoding (encoding those not encoded yet).
// l.mu must be held.
func (l *sessionLog) document(session string) ([]byte, error) {
	name, err := json.Marshal(session)
	if err != nil {
		return nil, err
	}
	n := len(l.buf)
	size := 64
	for _, e := range l.enc {
		size += len(e) + 1
	}
	doc := make([]byte, 0, size)
	doc = append(doc, `{"session":`...)
	doc = append(doc, name...)
	doc = append(doc, `,"last_id":`...)
	doc = strconv.AppendInt(doc, l.lastID, 10)
	doc = append(doc, `,"results":[`...)
	for i := range n {
		k := (l.start + i) % n
		if l.enc[k] == nil {
			if l.enc[k], err = json.Marshal(l.buf[k]); err != nil {
				return nil, fmt.Errorf("encoding results of session %s: %w", session, err)
			}
		}
		if i > 0 {
			doc = append(doc, ',')
		}
		doc = append(doc, l.enc[k]...)
	}
	return append(doc, "]}"...), nil
}

// run flushes every FlushInterval until Close.
func (s *Store) run() {
	defer close(s.done)
	t := time.NewTicker(s.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = s.flush(ctx, s.opts.MaxFlushPerTick) // errors are logged by flush
			cancel()
		}
	}
}

// Close stops the background flusher and writes what is left. It is safe to
// call more than once.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.Flush(ctx)
}
