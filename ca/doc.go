// Package ca is the ITP's private certificate authority: the root key and
// certificate kept in Caddy storage, the policy that turns a participant's
// CSR into a client certificate, the record of every issuance and
// revocation, the platform's own server certificates, and the platform's
// upstream client key.
//
// Everything here is built on crypto/x509; the only thing written by hand is
// the participant signing policy, because it must ignore everything a CSR
// asks for (extensions, SANs, attributes) and no maintained library has that
// policy. Smallstep's authority, which Caddy's pki app uses, copies
// requested SANs and extensions through its templates.
package ca
