// Package itp is a Caddy v2 plugin that turns Caddy into the
// secure-connections layer of an Interoperability Test Platform.
package itp
