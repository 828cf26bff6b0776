// Package session is the registry of groups, sessions and certificates of the
// Interoperability Test Platform (DESIGN.md §3).
//
// A Session lists components (systems under test, or simulated by the
// platform), an environment and JWS rules; a Group holds an environment and
// upstream certificates that its sessions inherit. The Registry validates
// them (a *FieldError names the offending field with its JSON path), keeps
// them in Caddy storage under itp/sessions/<id>.json and itp/groups/<id>.json,
// and compiles each session into an immutable Resolved value that the request
// path looks up by id without taking a lock.
//
// Key fields (ca_cert, client_cert, public_key, private_key, secret) take PEM
// text or {{ env.NAME }} / {{ file_env.NAME }} references, which both read
// NAME from the session's environment over its group's; never from a file of
// the server. Redacted copies for GETs hide every private key and secret.
//
// The package depends on no other package of the plugin: the app passes what
// it needs (the platform's upstream public key, a JWS rule check) in Options.
package session
