// Package authn checks bearer access tokens in front of the RPCs that need a
// signed-in caller, and hands the verified claims to handlers through the
// request context.
//
// The check runs as HTTP middleware around the mux, as connectrpc/authn-go
// does: a request without a valid token is refused before its body is read,
// with an error written in the caller's protocol (Connect, gRPC or gRPC-Web).
package authn
