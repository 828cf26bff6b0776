package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-itp/caddy-itp/internal/ids"
)

// Start launches the goroutine that reads storage every
// Options.SyncInterval, so that sessions and groups created, changed or
// deleted by other instances sharing the storage appear here. One pass lists
// the two prefixes and reads only the records whose modification time or size
// changed. Close stops it.
func (r *Registry) Start() {
	r.startOnce.Do(func() {
		go r.run()
	})
}

// Close stops the sync goroutine, if started, and waits for it. It is safe
// to call more than once.
func (r *Registry) Close() error {
	r.stopOnce.Do(func() { close(r.stop) })
	r.startOnce.Do(func() { close(r.done) }) // never started
	<-r.done
	return nil
}

func (r *Registry) run() {
	defer close(r.done)
	interval := time.Duration(r.syncInterval.Load())
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			if next := time.Duration(r.syncInterval.Load()); next != interval {
				interval = next
				t.Reset(interval)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			r.syncOnce(ctx)
			cancel()
		}
	}
}

// Sync reads storage for changes now, as one pass of the sync goroutine does.
func (r *Registry) Sync(ctx context.Context) { r.syncOnce(ctx) }

// scan lists the records under prefix with their current versions.
func (r *Registry) scan(ctx context.Context, prefix string) (map[string]keyState, error) {
	keys, err := r.storage.List(ctx, strings.TrimSuffix(prefix, "/"), false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return map[string]keyState{}, nil
		}
		return nil, err
	}
	out := make(map[string]keyState, len(keys))
	for _, key := range keys {
		if _, ok := ids.FromKey(prefix, key); !ok {
			continue // temporary files of atomic writes, stray files
		}
		info, err := r.storage.Stat(ctx, key)
		if err != nil || !info.IsTerminal {
			continue
		}
		out[key] = keyState{modified: info.Modified, size: info.Size}
	}
	return out, nil
}

// syncOnce brings memory in step with storage. Listing and statting every
// record costs O(records) storage calls, so a pass first reads RevisionKey
// and skips the listing while it has not changed (and the last full pass
// is younger than FullSyncInterval): with 10,000 sessions an idle pass is
// one read, not 10,000 stats.
func (r *Registry) syncOnce(ctx context.Context) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	rev, err := r.storage.Load(ctx, RevisionKey)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.logger.Warn("reading the registry revision; listing storage", zap.Error(err))
		rev = nil
	}
	if rev != nil && string(rev) == r.lastRev && time.Since(r.lastFull) < FullSyncInterval {
		return
	}
	// the revision read before listing: a write during the listing
	// changes it again, and the next pass lists again
	r.lastRev, r.lastFull = string(rev), time.Now()
	r.fullSync(ctx)
}

// fullSync lists storage and applies every change.
func (r *Registry) fullSync(ctx context.Context) {
	groups, gerr := r.scan(ctx, GroupsPrefix)
	if gerr != nil {
		r.logger.Error("listing groups in storage", zap.String("prefix", GroupsPrefix), zap.Error(gerr))
	}
	sessions, serr := r.scan(ctx, SessionsPrefix)
	if serr != nil {
		r.logger.Error("listing sessions in storage", zap.String("prefix", SessionsPrefix), zap.Error(serr))
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	groupsChanged := false
	if gerr == nil {
		for key, st := range groups {
			if r.known[key] == st {
				continue
			}
			if f, ok := r.failed[key]; ok && f == st {
				continue
			}
			if r.applyGroup(ctx, key, st) {
				groupsChanged = true
			}
		}
		groupsChanged = r.applyDeletions(ctx, GroupsPrefix, groups) || groupsChanged
	}
	if serr == nil {
		for key, st := range sessions {
			if r.known[key] == st {
				continue
			}
			if f, ok := r.failed[key]; ok && f == st && !groupsChanged {
				continue
			}
			r.applySession(ctx, key, st)
		}
		r.applyDeletions(ctx, SessionsPrefix, sessions)
	}
}

// applyDeletions forgets the records under prefix that are gone from
// storage. It reports whether anything was forgotten.
func (r *Registry) applyDeletions(ctx context.Context, prefix string, present map[string]keyState) bool {
	changed := false
	for _, m := range []map[string]keyState{r.known, r.failed} {
		for key := range m {
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			if _, ok := present[key]; ok {
				continue
			}
			// Written here after the scan? Then it exists.
			if r.storage.Exists(ctx, key) {
				continue
			}
			delete(r.known, key)
			delete(r.failed, key)
			id, _ := ids.FromKey(prefix, key)
			switch prefix {
			case GroupsPrefix:
				if r.groupSet[id] != nil {
					if sids := r.groupSessions(id); len(sids) > 0 {
						r.logger.Warn("group deleted in storage while sessions use it; they keep its last version",
							zap.String("group", id), zap.Strings("sessions", sids))
					}
					r.publishGroup(id, nil)
					changed = true
				}
			case SessionsPrefix:
				if r.stored[id] != nil {
					delete(r.stored, id)
					r.publish(id)
					changed = true
				}
			}
		}
	}
	return changed
}

// load reads and decodes the record at key.
func (r *Registry) load(ctx context.Context, key string, v any) error {
	b, err := r.storage.Load(ctx, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding %s: %w", key, err)
	}
	return nil
}

// fail logs a record that cannot be used, once per version.
func (r *Registry) fail(key string, st keyState, err error) {
	if f, ok := r.failed[key]; !ok || f != st {
		r.logger.Error("skipping stored record", zap.String("key", key), zap.Error(err))
	}
	r.failed[key] = st
	delete(r.known, key)
}

// applyGroup installs the stored version of a group. It reports whether the
// group changed.
func (r *Registry) applyGroup(ctx context.Context, key string, st keyState) bool {
	id, _ := ids.FromKey(GroupsPrefix, key)
	var g Group
	if err := r.load(ctx, key, &g); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false
		}
		r.fail(key, st, err)
		return false
	}
	if g.ID != id {
		r.fail(key, st, fmt.Errorf("record holds group %q", g.ID))
		return false
	}
	e, err := r.compiler(false).compileGroup(g)
	if err != nil {
		r.fail(key, st, err)
		return false
	}
	r.publishGroup(id, e)
	delete(r.failed, key)
	r.known[key] = st
	c := r.compiler(false)
	for _, sid := range r.groupSessions(id) {
		res := r.visible(sid)
		nres, err := c.compileSession(res.Session, e)
		if err != nil {
			r.logger.Error("session no longer valid with the group changed in storage; keeping its last version",
				zap.String("session", sid), zap.String("group", id), zap.Error(err))
			continue
		}
		if res.Session.Static {
			r.static[sid] = nres
		} else {
			r.stored[sid] = nres
		}
		r.publish(sid)
	}
	return true
}

// applySession installs the stored version of a session.
func (r *Registry) applySession(ctx context.Context, key string, st keyState) {
	id, _ := ids.FromKey(SessionsPrefix, key)
	var s Session
	if err := r.load(ctx, key, &s); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		r.fail(key, st, err)
		return
	}
	if s.ID != id {
		r.fail(key, st, fmt.Errorf("record holds session %q", s.ID))
		return
	}
	s.Static = false
	res, err := r.compileSessionLocked(s, false)
	if err != nil {
		r.fail(key, st, err)
		return
	}
	delete(r.failed, key)
	r.known[key] = st
	r.stored[id] = res
	r.publish(id)
}

// retryFailed tries again the stored sessions that could not be used, e.g.
// because their group was not there yet.
func (r *Registry) retryFailed(ctx context.Context) {
	for key, st := range r.failed {
		if strings.HasPrefix(key, SessionsPrefix) {
			r.applySession(ctx, key, st)
		}
	}
}
