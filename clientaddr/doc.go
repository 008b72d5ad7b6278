// Package clientaddr finds the address of the client behind a request: the
// peer's, or, when the peer is a trusted reverse proxy, the address the
// proxies recorded in X-Forwarded-For or Forwarded (RFC 7239). Middleware
// puts it in the request's context once; rate limits and logs read it
// from there.
package clientaddr
