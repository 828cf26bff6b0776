// Command caddy is Caddy with its standard modules and the caddy-itp plugin,
// so that `go run ./cmd/caddy` works without xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// The standard Caddy modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// The ITP plugin.
	_ "github.com/caddy-itp/caddy-itp"
)

func main() {
	caddycmd.Main()
}
