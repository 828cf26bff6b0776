// Package proxy holds the building blocks of the ITP testing
// routes (DESIGN.md §4) that the itp HTTP handler calls. None
// of them has Caddy configuration of its own, and none imports
// the rest of the plugin; each concern is in its own file:
//
//   - route.go: ParseRoute, the grammar of
//     /testing[-insecure][-group]/{source}/{target}/{id}/{path...},
//     parsed on the escaped path without allocating, and
//     JoinPath, which appends the forwarded path to a base_url.
//   - judge.go: Judge, the per-request decision about the
//     Client → Proxy certificate (chain to the ITP CA with
//     clientAuth, validity, revocation, allowed_clients), with a
//     bounded cache of chain verifications.
//   - transport.go: Pool, the Proxy → Server http.RoundTripper
//     with one pooled *http.Transport per upstream Identity.
//   - tlserror.go: ClassifyUpstreamError, which turns a failed
//     round trip into a check name and a message for the
//     participant.
//   - headers.go: StripClientIdentityHeaders.
//
// # Why by hand
//
// Go's crypto/x509 and crypto/tls do the cryptography. What is
// written here is what no library does: the ITP's route
// grammar, a verdict with plain-English reasons and a cache that
// keeps revocation live, a transport pool keyed by TLS client
// identity (Caddy's HTTPTransport has one fixed TLS config per
// handler), and the mapping of TLS failures to messages.
//
// # Plugging the Pool into Caddy's reverse proxy
//
// The itp handler embeds a *reverseproxy.Handler whose Transport
// is the Pool, and whose single upstream dials a placeholder the
// itp handler sets per request; this keeps Caddy's streaming,
// hop-by-hop header handling, X-Forwarded-*, websockets,
// trailers and 1xx forwarding:
//
//	// Provision
//	h.pool = proxy.NewPool(proxy.PoolOptions{})
//	h.rp = &reverseproxy.Handler{
//		Upstreams: reverseproxy.UpstreamPool{{Dial: "{http.itp.upstream}"}},
//		Transport: h.pool, // set before Provision: Caddy keeps it
//	}
//	if err := h.rp.Provision(ctx); err != nil { ... }
//
//	// ServeHTTP, after the session, the target and its
//	// *proxy.Identity (kept per component, rebuilt when its
//	// certificates change) are known
//	route, err := proxy.ParseRoute(r.URL.EscapedPath())
//	...
//	proxy.StripClientIdentityHeaders(r.Header)
//	r = r.WithContext(proxy.WithIdentity(r.Context(), id))
//	r.URL.Path, r.URL.RawPath, err = proxy.JoinPath(base, route.Rest)
//	r.Host = base.Host // the SUT sees its base_url's Host
//	repl.Set("http.itp.upstream", proxy.HostPort(base))
//	err = h.rp.ServeHTTP(w, r, next)
//	if err != nil {
//		check, msg := proxy.ClassifyUpstreamError(err, route.Target, base)
//		// record check (fail) with msg; answer 502 with msg
//	}
//
// Integration details, from reverseproxy.go of Caddy v2.11.9:
//
//   - Caddy clears req.URL.Scheme and req.URL.Host when it clones
//     the request, then sets req.URL.Host to the upstream's dial
//     address. Pool.RoundTrip sets the scheme from the Identity
//     ("https" or "http"), as Caddy's HTTPTransport.SetScheme
//     does from its TLS setting, so the Pool needs none of
//     Caddy's TLSTransport, H2CTransport or
//     HealthCheckSchemeOverriderTransport interfaces; do not
//     configure active health checks (they carry no Identity and
//     would fail with ErrNoIdentity).
//   - The dial address must be the base_url's host name and
//     port, not a resolved IP: http.Transport takes the SNI and
//     the name it verifies the SUT's certificate for from
//     req.URL.Host, and one transport serves many hosts, so
//     TLSClientConfig.ServerName is left empty.
//   - The Host header comes from r.Host (Caddy resets the clone's
//     Host to it on every attempt), hence r.Host = base.Host.
//   - Errors: Caddy returns a caddyhttp.HandlerError (502, or 504
//     for a timeout: the Pool's errors implement net.Error) that
//     wraps the Pool's error, so ClassifyUpstreamError can be
//     given ServeHTTP's error as is. Dial failures match
//     reverseproxy.DialError, so Caddy's retry logic knows the
//     request never reached the SUT.
//   - Like stock reverse_proxy, the Pool speaks HTTP/1.1 and
//     HTTP/2 over TLS (ForceAttemptHTTP2) and HTTP/1.1 in the
//     clear, with Caddy's defaults: 3s dial timeout, 32 idle
//     connections per host, 2m idle timeout, 30s TCP keep-alive.
//     It differs in two ways, on purpose: it never uses a proxy
//     from the environment, and it never adds Accept-Encoding
//     nor decompresses, so the SUT and the participant see the
//     bytes the other sent.
package proxy
