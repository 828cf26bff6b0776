package session

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-itp/caddy-itp/internal/storelock"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Storage key prefixes. A session is stored at SessionsPrefix + id + ".json",
// a group at GroupsPrefix + id + ".json".
const (
	SessionsPrefix = "itp/sessions/"
	GroupsPrefix   = "itp/groups/"
	// RevisionKey changes (to a random value) on every write, so a sync
	// pass lists the records only when something changed.
	RevisionKey = "itp/registry.rev"
)

// FullSyncInterval bounds how long a sync pass trusts an unchanged
// revision before it lists storage anyway (for a writer that crashed
// between its record and the revision).
const FullSyncInterval = 30 * time.Second

// Defaults of Options.
const (
	DefaultExpiryWarning = 14 * 24 * time.Hour
	DefaultSyncInterval  = 2 * time.Second
)

// Options configures a Registry.
type Options struct {
	// UpstreamPublicKey is the public key of the platform's upstream client
	// key. A component's client_cert must be for this key. When nil, the
	// check is skipped.
	UpstreamPublicKey crypto.PublicKey
	// ExpiryWarning is how close to expiry a certificate gets a warning.
	// Default: 14 days.
	ExpiryWarning time.Duration
	// SyncInterval is how often the registry reads storage for changes
	// made by other instances sharing it. Default: 2s.
	SyncInterval time.Duration
	// CompileJWSRule, when set, compiles a resolved JWS rule once, when its
	// session is registered (parsed keys, a verifier or signer, a private
	// key that must match its public key); what it returns is kept in
	// ResolvedJWSRule.Compiled for the request path. An error refuses the
	// session (a *FieldError's Field is taken as relative to the rule, e.g.
	// "private_key"); for a session read back from storage it becomes a
	// warning and Compiled stays nil.
	CompileJWSRule func(ResolvedJWSRule) (any, error)
	// Now returns the current time. Default: time.Now.
	Now func() time.Time
}

// Registry holds the groups and sessions, kept in storage and cached in
// memory. Lookups (Session, GroupDefault) take no lock and do not allocate;
// changes are serialised among themselves and never block lookups. Its
// methods are safe for concurrent use.
//
// Durability: certmagic's FileStorage.Store (v0.25.6) is atomic: it writes
// a temporary file in the same folder, syncs it and renames it over the key
// (internal/atomicfile), so a crash leaves the old or the new record, never
// a torn one. Other storage modules are trusted to give the same guarantee.
// Creation takes the storage lock "itp/sessions/<id>" (or "itp/groups/<id>")
// and then checks that the key does not exist, so that of two instances
// sharing storage that create the same id, one wins and the other gets
// ErrConflict; replacement and deletion take the same lock.
type Registry struct {
	storage certmagic.Storage
	logger  *zap.Logger
	opts    Options
	upDER   []byte

	// What lookups see: id -> *Resolved and id -> *groupEntry.
	sessions sync.Map
	groups   sync.Map

	// mu serialises changes; the fields below are guarded by it.
	mu       sync.Mutex
	stored   map[string]*Resolved           // sessions from storage
	static   map[string]*Resolved           // sessions from the Caddy config
	byGroup  map[string]map[string]struct{} // group id -> ids of the visible sessions in it
	groupSet map[string]*groupEntry         // mirror of groups
	known    map[string]keyState            // storage key -> state last read or written
	failed   map[string]keyState            // storage key -> state that could not be used

	startOnce sync.Once
	stopOnce  sync.Once

	// syncMu serialises sync passes; lastRev and lastFull tell whether a
	// pass can skip listing storage (see syncOnce).
	syncMu       sync.Mutex
	syncInterval atomic.Int64
	lastRev      string
	lastFull     time.Time
	stop         chan struct{}
	done         chan struct{}
}

// groupEntry is a compiled group.
type groupEntry struct {
	group Group
	certs map[string]upstreamCerts
}

// keyState identifies one version of a stored record.
type keyState struct {
	modified time.Time
	size     int64
}

// New returns a Registry that keeps its records in storage and loads those
// already there. A record that cannot be read, decoded or validated is
// logged with its key and skipped. Call Start to follow changes made by
// other instances, and Close to stop.
func New(storage certmagic.Storage, logger *zap.Logger, opts Options) (*Registry, error) {
	if storage == nil {
		return nil, errors.New("session registry: no storage")
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	if opts.ExpiryWarning <= 0 {
		opts.ExpiryWarning = DefaultExpiryWarning
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Registry{
		storage:  storage,
		logger:   logger,
		opts:     opts,
		stored:   map[string]*Resolved{},
		static:   map[string]*Resolved{},
		byGroup:  map[string]map[string]struct{}{},
		groupSet: map[string]*groupEntry{},
		known:    map[string]keyState{},
		failed:   map[string]keyState{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	r.syncInterval.Store(int64(opts.SyncInterval))
	if opts.UpstreamPublicKey != nil {
		der, err := x509.MarshalPKIXPublicKey(opts.UpstreamPublicKey)
		if err != nil {
			return nil, fmt.Errorf("session registry: upstream public key: %w", err)
		}
		r.upDER = der
	}
	r.syncOnce(context.Background())
	return r, nil
}

func (r *Registry) compiler(strict bool) *compiler {
	opts := r.opts // a copy: SetExpiryWarning may change r.opts later
	return &compiler{opts: &opts, upstreamDER: r.upDER, strict: strict, now: r.opts.Now()}
}

// SessionKey returns the storage key of a session.
func SessionKey(id string) string { return SessionsPrefix + id + ".json" }

// GroupKey returns the storage key of a group.
func GroupKey(id string) string { return GroupsPrefix + id + ".json" }

// NewID returns a random UUID (version 4) from crypto/rand.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("session: crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Session returns the compiled session with the given id. It takes no lock.
func (r *Registry) Session(id string) (*Resolved, bool) {
	v, ok := r.sessions.Load(id)
	if !ok {
		return nil, false
	}
	return v.(*Resolved), true
}

// GroupDefault returns the compiled default session of a group. It takes no
// lock.
func (r *Registry) GroupDefault(groupID string) (*Resolved, bool) {
	v, ok := r.groups.Load(groupID)
	if !ok {
		return nil, false
	}
	id := v.(*groupEntry).group.DefaultSession
	if id == "" {
		return nil, false
	}
	return r.Session(id)
}

// HasGroup reports whether a group exists.
func (r *Registry) HasGroup(groupID string) bool {
	_, ok := r.groups.Load(groupID)
	return ok
}

// ---- publication (callers hold mu) ----

// publish makes the visible version of session id (static over stored)
// what lookups see, and keeps byGroup in step.
func (r *Registry) publish(id string) {
	if v, ok := r.sessions.Load(id); ok {
		old := v.(*Resolved)
		if g := old.Session.Group; g != "" {
			delete(r.byGroup[g], id)
			if len(r.byGroup[g]) == 0 {
				delete(r.byGroup, g)
			}
		}
	}
	res := r.static[id]
	if res == nil {
		res = r.stored[id]
	}
	if res == nil {
		r.sessions.Delete(id)
		return
	}
	if g := res.Session.Group; g != "" {
		if r.byGroup[g] == nil {
			r.byGroup[g] = map[string]struct{}{}
		}
		r.byGroup[g][id] = struct{}{}
	}
	r.sessions.Store(id, res)
}

func (r *Registry) publishGroup(id string, e *groupEntry) {
	if e == nil {
		delete(r.groupSet, id)
		r.groups.Delete(id)
		return
	}
	r.groupSet[id] = e
	r.groups.Store(id, e)
}

// groupSessions returns the sorted ids of the visible sessions of a group.
func (r *Registry) groupSessions(groupID string) []string {
	ids := make([]string, 0, len(r.byGroup[groupID]))
	for id := range r.byGroup[groupID] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// GroupSessions returns the ids of the sessions in a group, sorted.
func (r *Registry) GroupSessions(groupID string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.groupSessions(groupID)
}

// ExpiredBefore returns the ids of the stored sessions (not those of the
// Caddy config, which the config owns) whose expires is before t.
func (r *Registry) ExpiredBefore(t time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id, res := range r.stored {
		if r.static[id] == nil && !res.Expires.IsZero() && res.Expires.Before(t) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// visible returns the visible version of a session.
func (r *Registry) visible(id string) *Resolved {
	if res := r.static[id]; res != nil {
		return res
	}
	return r.stored[id]
}

// ---- storage helpers ----

// lock takes the storage lock of a key's record and returns its release.
func (r *Registry) lock(ctx context.Context, name string) (func(), error) {
	return storelock.Lock(ctx, r.storage, r.logger, name)
}

// write stores v at key and remembers the version written, so that the sync
// loop does not read it back.
func (r *Registry) write(ctx context.Context, key string, v any) error {
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", key, err)
	}
	if err := r.storage.Store(ctx, key, b); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	r.remember(ctx, key)
	r.bumpRevision(ctx)
	return nil
}

// bumpRevision tells the instances sharing the storage that a record
// changed, so their next sync pass lists storage (see syncOnce). It is
// written after the record: a reader that sees the new revision finds the
// record too.
func (r *Registry) bumpRevision(ctx context.Context) {
	if err := r.storage.Store(ctx, RevisionKey, []byte(NewID())); err != nil {
		r.logger.Warn("storing the registry revision; other instances see the change within FullSyncInterval", zap.Error(err))
	}
}

// remember records the current version of key as known.
func (r *Registry) remember(ctx context.Context, key string) {
	delete(r.failed, key)
	if info, err := r.storage.Stat(ctx, key); err == nil {
		r.known[key] = keyState{modified: info.Modified, size: info.Size}
	} else {
		delete(r.known, key)
	}
}

func (r *Registry) remove(ctx context.Context, key string) error {
	if err := r.storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	delete(r.known, key)
	delete(r.failed, key)
	r.bumpRevision(ctx)
	return nil
}

// ---- sessions ----

// CreateSession validates s, stores it and makes it visible. An empty id is
// replaced by a random UUID. It returns a *FieldError for an invalid
// session and ErrConflict when the id exists (here, in the Caddy config or in
// storage written by another instance).
func (r *Registry) CreateSession(ctx context.Context, s Session) (*Resolved, error) {
	s.Static = false
	if s.ID == "" {
		s.ID = NewID()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	res, err := r.compileSessionLocked(s, true)
	if err != nil {
		return nil, err
	}
	if r.visible(s.ID) != nil {
		return nil, fmt.Errorf("session %s: %w", s.ID, ErrConflict)
	}
	key := SessionKey(s.ID)
	unlock, err := r.lock(ctx, strings.TrimSuffix(key, ".json"))
	if err != nil {
		return nil, fmt.Errorf("creating session %s: %w", s.ID, err)
	}
	defer unlock()
	if r.storage.Exists(ctx, key) {
		return nil, fmt.Errorf("session %s: %w", s.ID, ErrConflict)
	}
	if err := r.write(ctx, key, res.Session); err != nil {
		return nil, fmt.Errorf("creating session %s: %w", s.ID, err)
	}
	r.stored[s.ID] = res
	r.publish(s.ID)
	return res, nil
}

// PutSession validates s and replaces the session id with it. s.ID may be
// empty or must equal id. It returns ErrNotFound for an unknown session and
// ErrReadOnly for one declared in the Caddy config.
func (r *Registry) PutSession(ctx context.Context, id string, s Session) (*Resolved, error) {
	if s.ID == "" {
		s.ID = id
	}
	if s.ID != id {
		return nil, fieldErr("id", "is %q but the URL names session %q", s.ID, id)
	}
	s.Static = false
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.static[id] != nil {
		return nil, fmt.Errorf("session %s: %w", id, ErrReadOnly)
	}
	if r.stored[id] == nil {
		return nil, fmt.Errorf("session %s: %w", id, ErrNotFound)
	}
	res, err := r.compileSessionLocked(s, true)
	if err != nil {
		return nil, err
	}
	key := SessionKey(id)
	unlock, err := r.lock(ctx, strings.TrimSuffix(key, ".json"))
	if err != nil {
		return nil, fmt.Errorf("replacing session %s: %w", id, err)
	}
	defer unlock()
	if !r.storage.Exists(ctx, key) {
		// Deleted by another instance since we last synced.
		delete(r.stored, id)
		delete(r.known, key)
		r.publish(id)
		return nil, fmt.Errorf("session %s: %w", id, ErrNotFound)
	}
	if err := r.write(ctx, key, res.Session); err != nil {
		return nil, fmt.Errorf("replacing session %s: %w", id, err)
	}
	r.stored[id] = res
	r.publish(id)
	return res, nil
}

// DeleteSession deletes a session from storage and memory. It returns
// ErrNotFound for an unknown session and ErrReadOnly for one declared in the
// Caddy config. The session's results are not touched.
func (r *Registry) DeleteSession(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.static[id] != nil {
		return fmt.Errorf("session %s: %w", id, ErrReadOnly)
	}
	if r.stored[id] == nil {
		return fmt.Errorf("session %s: %w", id, ErrNotFound)
	}
	key := SessionKey(id)
	unlock, err := r.lock(ctx, strings.TrimSuffix(key, ".json"))
	if err != nil {
		return fmt.Errorf("deleting session %s: %w", id, err)
	}
	defer unlock()
	if err := r.remove(ctx, key); err != nil {
		return fmt.Errorf("deleting session %s: %w", id, err)
	}
	delete(r.stored, id)
	r.publish(id)
	return nil
}

// GetSession returns the session id, redacted, with its warnings and Static
// flag. It returns ErrNotFound for an unknown session.
func (r *Registry) GetSession(id string) (Session, error) {
	res, ok := r.Session(id)
	if !ok {
		return Session{}, fmt.Errorf("session %s: %w", id, ErrNotFound)
	}
	return res.Session.Redacted(), nil
}

// ListSessions returns every session, redacted, sorted by id.
func (r *Registry) ListSessions() []Session {
	var out []Session
	r.sessions.Range(func(_, v any) bool {
		out = append(out, v.(*Resolved).Session.Redacted())
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// SetStatic installs the sessions declared in the Caddy config, replacing
// those of an earlier call. They are validated like uploads, are not
// written to storage, and are read-only through the API. A static session
// hides a stored session with the same id. Nothing changes when any of them
// is invalid.
func (r *Registry) SetStatic(list []Session) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	next, err := r.compileStaticLocked(list)
	if err != nil {
		return err
	}
	old := r.static
	r.static = next
	for id := range old {
		if next[id] == nil {
			r.publish(id)
		}
	}
	for id := range next {
		if r.stored[id] != nil {
			r.logger.Warn("a session in the config hides the stored session with the same id", zap.String("session", id))
		}
		r.publish(id)
	}
	return nil
}

// CheckStatic validates sessions for the Caddy config as SetStatic does,
// without installing them: a config being loaded is checked before it is
// known to replace the running one.
func (r *Registry) CheckStatic(list []Session) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.compileStaticLocked(list)
	return err
}

// compileStaticLocked compiles the sessions of the Caddy config.
func (r *Registry) compileStaticLocked(list []Session) (map[string]*Resolved, error) {
	next := make(map[string]*Resolved, len(list))
	for i, s := range list {
		if s.ID == "" {
			return nil, &FieldError{Field: fmt.Sprintf("sessions[%d].id", i), Msg: "is required for a session in the config"}
		}
		if next[s.ID] != nil {
			return nil, &FieldError{Field: fmt.Sprintf("sessions[%d].id", i), Msg: fmt.Sprintf("duplicates session %q", s.ID)}
		}
		s.Static = true
		res, err := r.compileSessionLocked(s, true)
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return nil, &FieldError{Field: fmt.Sprintf("sessions[%d].%s", i, fe.Field), Msg: fe.Msg}
			}
			return nil, fmt.Errorf("session %s: %w", s.ID, err)
		}
		next[s.ID] = res
	}
	return next, nil
}

// SetExpiryWarning changes how close to expiry a certificate gets a
// warning, for sessions validated from now on (a config reload).
func (r *Registry) SetExpiryWarning(d time.Duration) {
	if d <= 0 {
		d = DefaultExpiryWarning
	}
	r.mu.Lock()
	r.opts.ExpiryWarning = d
	r.mu.Unlock()
}

// SetSyncInterval changes how often storage is read for other instances'
// changes (a config reload); the running ticker follows at its next tick.
func (r *Registry) SetSyncInterval(d time.Duration) {
	if d <= 0 {
		d = DefaultSyncInterval
	}
	r.syncInterval.Store(int64(d))
}

// compileSessionLocked compiles s against the current groups.
func (r *Registry) compileSessionLocked(s Session, strict bool) (*Resolved, error) {
	return r.compiler(strict).compileSession(s, r.groupSet[s.Group])
}

// ---- groups ----

// CreateGroup validates g, stores it and returns it redacted, with its
// warnings. An empty id is replaced by a random UUID. It returns a
// *FieldError for an invalid group and ErrConflict when the id exists.
func (r *Registry) CreateGroup(ctx context.Context, g Group) (Group, error) {
	if g.ID == "" {
		g.ID = NewID()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, err := r.compiler(true).compileGroup(g)
	if err != nil {
		return Group{}, err
	}
	r.warnDefault(e)
	if r.groupSet[g.ID] != nil {
		return Group{}, fmt.Errorf("group %s: %w", g.ID, ErrConflict)
	}
	key := GroupKey(g.ID)
	unlock, err := r.lock(ctx, strings.TrimSuffix(key, ".json"))
	if err != nil {
		return Group{}, fmt.Errorf("creating group %s: %w", g.ID, err)
	}
	defer unlock()
	if r.storage.Exists(ctx, key) {
		return Group{}, fmt.Errorf("group %s: %w", g.ID, ErrConflict)
	}
	if err := r.write(ctx, key, e.group); err != nil {
		return Group{}, fmt.Errorf("creating group %s: %w", g.ID, err)
	}
	r.publishGroup(g.ID, e)
	// Sessions read from storage before their group may now compile.
	r.retryFailed(ctx)
	return e.group.redacted(r.groupSecretNames(g.ID)), nil
}

// warnDefault adds a warning when the default session is unknown.
func (r *Registry) warnDefault(e *groupEntry) {
	id := e.group.DefaultSession
	if id == "" {
		return
	}
	res := r.visible(id)
	switch {
	case res == nil:
		e.group.Warnings = append(e.group.Warnings, fmt.Sprintf("default_session: no session %q (yet)", id))
	case res.Session.Group != e.group.ID:
		e.group.Warnings = append(e.group.Warnings, fmt.Sprintf("default_session: session %q is not in this group", id))
	}
}

// PutGroup validates g and replaces the group id with it, then recompiles
// the sessions of the group. It returns ErrNotFound for an unknown group,
// an *InUseError (ErrInUse) when a certificate that sessions use is
// removed, and a *FieldError when a session of the group would no longer be
// valid (e.g. it references a variable that g no longer defines).
func (r *Registry) PutGroup(ctx context.Context, id string, g Group) (Group, error) {
	if g.ID == "" {
		g.ID = id
	}
	if g.ID != id {
		return Group{}, fieldErr("id", "is %q but the URL names group %q", g.ID, id)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.groupSet[id] == nil {
		return Group{}, fmt.Errorf("group %s: %w", id, ErrNotFound)
	}
	e, err := r.compiler(true).compileGroup(g)
	if err != nil {
		return Group{}, err
	}
	r.warnDefault(e)
	// Certificates still in use.
	users := map[string][]string{}
	for _, sid := range r.groupSessions(id) {
		for _, c := range r.visible(sid).Session.Components {
			if c.Certificate != "" {
				if _, ok := e.certs[c.Certificate]; !ok {
					users[c.Certificate] = append(users[c.Certificate], sid)
				}
			}
		}
	}
	if len(users) > 0 {
		certs := make([]string, 0, len(users))
		for c := range users {
			certs = append(certs, c)
		}
		sort.Strings(certs)
		sids := sortedCopy(users[certs[0]])
		return Group{}, &InUseError{What: fmt.Sprintf("certificate %s of group %s", certs[0], id), Sessions: sids}
	}
	// Recompile the group's sessions against the new group.
	recompiled := map[string]*Resolved{}
	c := r.compiler(false)
	for _, sid := range r.groupSessions(id) {
		res := r.visible(sid)
		nres, err := c.compileSession(res.Session, e)
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return Group{}, &FieldError{Field: fe.Field, Msg: fmt.Sprintf("%s (in session %s, which this change would break)", fe.Msg, sid)}
			}
			return Group{}, fmt.Errorf("session %s: %w", sid, err)
		}
		recompiled[sid] = nres
	}
	key := GroupKey(id)
	unlock, err := r.lock(ctx, strings.TrimSuffix(key, ".json"))
	if err != nil {
		return Group{}, fmt.Errorf("replacing group %s: %w", id, err)
	}
	defer unlock()
	if !r.storage.Exists(ctx, key) {
		return Group{}, fmt.Errorf("group %s: %w", id, ErrNotFound)
	}
	if err := r.write(ctx, key, e.group); err != nil {
		return Group{}, fmt.Errorf("replacing group %s: %w", id, err)
	}
	r.publishGroup(id, e)
	for sid, nres := range recompiled {
		if nres.Session.Static {
			r.static[sid] = nres
		} else {
			r.stored[sid] = nres
		}
		r.publish(sid)
	}
	return e.group.redacted(r.groupSecretNames(id)), nil
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// DeleteGroup deletes a group. It returns ErrNotFound for an unknown group
// and an *InUseError (ErrInUse) naming the sessions that still use it.
func (r *Registry) DeleteGroup(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.groupSet[id] == nil {
		return fmt.Errorf("group %s: %w", id, ErrNotFound)
	}
	if sids := r.groupSessions(id); len(sids) > 0 {
		return &InUseError{What: "group " + id, Sessions: sids}
	}
	key := GroupKey(id)
	unlock, err := r.lock(ctx, strings.TrimSuffix(key, ".json"))
	if err != nil {
		return fmt.Errorf("deleting group %s: %w", id, err)
	}
	defer unlock()
	if err := r.remove(ctx, key); err != nil {
		return fmt.Errorf("deleting group %s: %w", id, err)
	}
	r.publishGroup(id, nil)
	return nil
}

// GetGroup returns the group id, redacted (also hiding the variables its
// sessions' secrets reference), with its warnings. It returns ErrNotFound
// for an unknown group.
func (r *Registry) GetGroup(id string) (Group, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.groupSet[id]
	if e == nil {
		return Group{}, fmt.Errorf("group %s: %w", id, ErrNotFound)
	}
	return e.group.redacted(r.groupSecretNames(id)), nil
}

// ListGroups returns every group, redacted, sorted by id.
func (r *Registry) ListGroups() []Group {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Group, 0, len(r.groupSet))
	for id, e := range r.groupSet {
		out = append(out, e.group.redacted(r.groupSecretNames(id)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// groupSecretNames returns the variables the secrets of a group's sessions
// reference.
func (r *Registry) groupSecretNames(id string) map[string]bool {
	var names map[string]bool
	for sid := range r.byGroup[id] {
		names = secretNames(r.visible(sid).Session.JWS, names)
	}
	return names
}
