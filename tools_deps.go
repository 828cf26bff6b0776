package itp

import (
	_ "github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/certmagic"
	_ "github.com/go-jose/go-jose/v4"
	_ "go.uber.org/zap"
)
