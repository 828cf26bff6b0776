// Package proxy holds the building blocks of the ITP testing
// routes (DESIGN.md §4) that the itp HTTP handler calls. They
// have no Caddy configuration of their own.
package proxy
