package server

import (
	"net/http"
	"strings"
)

// noStore marks every response but the public well-known documents
// Cache-Control: no-store (RFC 6749 §5.1, RFC 9111): token and secret
// responses on every protocol (Connect, gRPC, gRPC-Web, the OAuth forms),
// and the rest for simplicity, since none of them is worth caching.
func noStore(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/.well-known/") {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Pragma", "no-cache")
		}
		h.ServeHTTP(w, r)
	})
}
