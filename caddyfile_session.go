package itp

import "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

// unmarshalSessionOption parses the session-related subdirectives of the
// itp global option.
func (a *App) unmarshalSessionOption(d *caddyfile.Dispenser) error {
	return d.Errf("unrecognized itp option %q", d.Val())
}
