// Package results is the per-session store of check results of the
// Interoperability Test Platform (DESIGN.md §6).
//
// Every check outcome the platform produces (a client certificate judged, a
// JWS signature verified, an upstream TLS handshake, …) becomes one Result in
// the results of its session. Ids increase within a session, also across
// restarts. Each session keeps at most Options.PerSession results in memory
// (oldest dropped first), so memory is bounded by sessions × PerSession
// whatever the rate of results.
//
// Recording never touches storage: Record appends to an in-memory ring and
// marks the session dirty; a background goroutine writes each dirty session's
// whole bounded list to the key itp/results/<session>.json once per
// Options.FlushInterval, with one Store call per session per flush (certmagic's
// FileStorage writes a temporary file, syncs it and renames it over the old
// one, so a reader or a crash sees the old or the new list, never a torn one).
//
// Loading: New lists itp/results/ once and loads every stored list, so that
// ids continue after a restart without Record ever waiting on storage; this
// costs one read per stored session at start and memory within the same
// sessions × PerSession bound. A stored list that cannot be read or decoded is
// logged with its key and skipped. Query of a session that has no results in
// memory reads its stored list (so results written by another instance that
// shares the storage can be read), without keeping it.
//
// Limitation: two instances sharing storage that record results for the same
// session each write their own list to the same key, the last flush winning.
package results
