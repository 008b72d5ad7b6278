package clientaddr

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds client addresses, trusting the proxies in its prefixes.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a resolver that trusts the forwarding headers of peers in
// trusted (none: every client is its peer).
func New(trusted []netip.Prefix) *Resolver { return &Resolver{trusted: trusted} }

func (r *Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Resolve returns the client address of req. When the peer is not a
// trusted proxy it is the peer's address, whatever the headers say. When
// it is, the hops recorded in X-Forwarded-For (or, if the request has none,
// in Forwarded) are walked from the right, the nearest hop first, skipping
// trusted proxies: the first address that is not one is the client. A hop
// that is not an address (Forwarded's "unknown" or an obfuscated name)
// stops the walk at the proxy that recorded it. X-Forwarded-For wins when
// both are present: most proxies append to it, and a client could send a
// Forwarded header of its own through one that does not rewrite it (a
// proxy that speaks only Forwarded must drop a client's X-Forwarded-For).
func (r *Resolver) Resolve(req *http.Request) netip.Addr {
	peer := parseHost(req.RemoteAddr)
	if !peer.IsValid() || !r.isTrusted(peer) {
		return peer
	}
	hops := xForwardedFor(req.Header.Values("X-Forwarded-For"))
	if hops == nil {
		hops = forwardedFor(req.Header.Values("Forwarded"))
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a := hops[i]
		if !a.IsValid() {
			break
		}
		client = a
		if !r.isTrusted(a) {
			break
		}
	}
	return client
}

type ctxKey struct{}

// ConnContext is an http.Server's ConnContext: it records the peer's
// address in the connection's context, once per connection. A request from
// a peer that is not a trusted proxy then needs no work of its own in Wrap:
// its client is that peer.
func (r *Resolver) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if a := parseHost(c.RemoteAddr().String()); a.IsValid() {
		return context.WithValue(ctx, ctxKey{}, a)
	}
	return ctx
}

// Wrap puts every request's client address in its context (see addrFrom).
func (r *Resolver) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if peer, ok := addrFrom(req.Context()); ok && !r.isTrusted(peer) {
			h.ServeHTTP(w, req) // the connection's peer, recorded by ConnContext
			return
		}
		if a := r.Resolve(req); a.IsValid() {
			req = req.WithContext(context.WithValue(req.Context(), ctxKey{}, a))
		}
		h.ServeHTTP(w, req)
	})
}

// addrFrom returns the client address Wrap put in ctx.
func addrFrom(ctx context.Context) (netip.Addr, bool) {
	a, ok := ctx.Value(ctxKey{}).(netip.Addr)
	return a, ok
}

// String returns the client address in ctx, or else the host of peer (a
// "host:port" as in http.Request.RemoteAddr), for requests that did not
// pass through Wrap.
func String(ctx context.Context, peer string) string {
	if a, ok := addrFrom(ctx); ok {
		return a.String()
	}
	if a := parseHost(peer); a.IsValid() {
		return a.String()
	}
	return peer
}

// parseHost parses "host:port", "host", "[v6]:port" or "[v6]" into an
// address (IPv4-mapped IPv6 unmapped), or returns the zero Addr.
func parseHost(s string) netip.Addr {
	s = strings.TrimSpace(s)
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}
	}
	return a.Unmap()
}

// xForwardedFor lists the hops of X-Forwarded-For headers, in order
// (nil when there are none).
func xForwardedFor(values []string) []netip.Addr {
	var hops []netip.Addr
	for _, v := range values {
		for h := range strings.SplitSeq(v, ",") {
			hops = append(hops, parseHost(h))
		}
	}
	return hops
}

// forwardedFor lists the for= parameters of Forwarded headers (RFC 7239
// §4), in order; an element without one is an unknown hop.
func forwardedFor(values []string) []netip.Addr {
	var hops []netip.Addr
	for _, v := range values {
		for elem := range strings.SplitSeq(v, ",") {
			hop := netip.Addr{}
			for pair := range strings.SplitSeq(elem, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(k, "for") {
					hop = parseHost(strings.Trim(val, `"`))
				}
			}
			hops = append(hops, hop)
		}
	}
	return hops
}
