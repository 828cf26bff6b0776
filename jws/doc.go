// Package jws verifies and signs JSON Web Signatures in the wire formats
// used by payment-scheme APIs. It has no Caddy imports.
package jws
