// Package jws verifies and signs JSON Web Signatures (RFC 7515) carried in
// HTTP headers, in the wire formats payment-scheme APIs use. It has no
// Caddy imports: it is a plain Go library, used by the itp_jws handler and
// by session JWS rules.
//
// # Formats
//
//   - mojaloop: Mojaloop's FSPIOP-Signature header, a JSON object
//     {"protectedHeader": ..., "signature": ...}; the payload is the body.
//     Only those two members are accepted (exact names, no duplicates, no
//     unprotected "header"). FSPIOP-URI, FSPIOP-HTTP-Method and
//     FSPIOP-Source must be signed, spelt so (Mojaloop looks them up
//     case-sensitively), and the signed URI and method must equal the
//     request the platform actually forwards (Message.URI, Message.Method)
//     — stricter than Mojaloop's validator, which compares them with the
//     client-set headers only.
//   - compact: a full compact JWS header.payload.signature; by default its
//     payload must equal the body (Config.StandalonePayload lifts that).
//   - detached: header..signature (RFC 7515 appendix F) whose payload is
//     the body, unencoded when the protected header has b64 false with crit
//     ["b64"] (RFC 7797), as Open Banking's x-jws-signature uses.
//
// # Verification rules
//
// The algorithm is fixed by Config.Alg and a token naming another one is
// refused ("none" in any casing always is). HS256/384/512 use only a
// configured shared secret, never a PEM key. The jwk, jku, x5u and x5c
// header parameters are refused with a clear reason rather than ignored:
// keys are never taken from the message and nothing is ever fetched, and
// saying so helps the sender. crit must be a non-empty array of distinct
// names that are present in the protected header and understood (b64, or
// a name in Config.Crit, whose configured value is then checked); b64, when
// present, must be a JSON boolean, and false requires crit to list it.
// Every HTTP header named in the protected header (a string parameter that
// is a valid field name and not a JOSE or configured crit parameter) must
// equal the message's header (names case-insensitive, values exact, several
// field lines joined with ", "), and every Config.ProtectedHeaders header
// present on the message must be signed.
//
// Input is bounded (Config.MaxHeaderBytes, 16 KiB by default) before any
// parsing; base64url must be canonical (no padding, no whitespace or line
// breaks, zero trailing bits, URL alphabet only); the segment count must be
// exact; JSON must be valid UTF-8 with no duplicate member at any level.
// When a signature fails over the raw body but verifies over a
// re-serialisation of the JSON body (safe-stable-stringify canonical form,
// compact, Go's encoding/json, or two-space indentation), the error says
// which: that is the commonest interop bug. Failures are *VerifyError
// values wrapping one of ErrMissing, ErrMalformed, ErrAlgorithm, ErrHeader,
// ErrSignature or ErrHTTPHeader, with the decoded protected header and,
// where two values differ, both of them.
//
// # Why the verification path is hand-written
//
// go-jose v4 (used here for JWK parsing, and in the tests as an independent
// implementation) is lenient where this package must not be: it accepts
// b64 false without crit, an empty crit, a crit naming an absent header, a
// non-boolean b64 (as true), PSS signatures of any salt length, and padding
// and whitespace in compact input, and it refuses every crit name but b64,
// so Open Banking's critical headers cannot be accepted through it. It
// exposes no lower-level verification than those entry points. So this
// package parses the wire formats itself and verifies over the JWS signing
// input directly with crypto/rsa (PKCS #1 v1.5; PSS with the salt length
// equal to the hash size, RFC 7518 §3.5), crypto/ecdsa (raw r||s of exactly
// twice the curve size, 0 < r, s < n, the curve matching the algorithm),
// crypto/ed25519, and crypto/hmac with a constant-time comparison. Signing
// uses any crypto.Signer, so keys in an HSM or KMS work too.
//
// # Mojaloop canonical JSON
//
// Mojaloop's validator does not verify the bytes received: it parses the
// JSON body and re-serialises it with safe-stable-stringify. A Signer in the
// mojaloop format therefore sends a JSON body in exactly that form (see
// Canonicalize, hand-written because no maintained Go library reproduces
// JavaScript's number formatting with that key order) and signs those
// bytes; a body that is not JSON is signed as it is. Note that the node jws
// package under Mojaloop's SDK encodes non-ASCII protected header values as
// Latin-1, which this package refuses as not UTF-8.
package jws
