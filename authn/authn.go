package authn

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/tokens"
)

// RevocationCheck reports whether a verified token has been revoked since it
// was signed: its session logged out, its API token deleted, or it was
// blacklisted. Errors reaching Redis are returned, not guessed at.
type RevocationCheck func(ctx context.Context, c *tokens.Claims) (revoked bool, err error)

// Verifier verifies an access token's signature and claims.
type Verifier interface {
	Verify(token string) (*tokens.Claims, error)
}

type claimsKey struct{}

// WithClaims returns ctx carrying the caller's verified claims.
func WithClaims(ctx context.Context, c *tokens.Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFrom returns the claims Middleware verified for this request.
func ClaimsFrom(ctx context.Context) (*tokens.Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*tokens.Claims)
	return c, ok && c != nil
}

// errUnauthenticated is the single message every refused bearer token gets:
// the caller learns nothing about which check failed.
var errUnauthenticated = errors.New("missing or invalid access token")

// Middleware verifies the bearer token of every request whose path is in
// protected ("/package.Service/Method") and refuses the request otherwise.
// Other paths pass through untouched.
type Middleware struct {
	verifier  Verifier
	checks    []RevocationCheck
	protected map[string]bool
	errW      *connect.ErrorWriter
	log       *slog.Logger
	// OnRefused, if set, is called with the procedure and code of every
	// request the middleware refuses (for metrics).
	OnRefused func(procedure string, code connect.Code)
}

// NewMiddleware returns a Middleware guarding the given procedures.
func NewMiddleware(v Verifier, log *slog.Logger, protected []string, checks ...RevocationCheck) *Middleware {
	m := &Middleware{
		verifier:  v,
		checks:    checks,
		protected: make(map[string]bool, len(protected)),
		errW:      connect.NewErrorWriter(),
		log:       log,
	}
	for _, p := range protected {
		m.protected[p] = true
	}
	return m
}

// Wrap returns next guarded by m.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !m.protected[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		claims, err := m.Authenticate(r.Context(), r.Header.Get("Authorization"))
		if err != nil {
			m.refuse(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), claims)))
	})
}

// Authenticate verifies an Authorization header value ("Bearer <jwt>") and
// runs the revocation checks. It returns a *connect.Error: unauthenticated
// for any token problem, unavailable when a revocation check cannot reach
// its store.
func (m *Middleware) Authenticate(ctx context.Context, header string) (*tokens.Claims, error) {
	raw, ok := BearerToken(header)
	if !ok {
		return nil, connect.NewError(connect.CodeUnauthenticated, errUnauthenticated)
	}
	claims, err := m.verifier.Verify(raw)
	if err != nil {
		m.log.DebugContext(ctx, "bearer token refused", "reason", err.Error())
		return nil, connect.NewError(connect.CodeUnauthenticated, errUnauthenticated)
	}
	for _, check := range m.checks {
		revoked, err := check(ctx, claims)
		if err != nil {
			m.log.WarnContext(ctx, "revocation check failed", "err", err)
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("token store unavailable"))
		}
		if revoked {
			m.log.DebugContext(ctx, "bearer token refused", "reason", "revoked", "jti", claims.ID)
			return nil, connect.NewError(connect.CodeUnauthenticated, errUnauthenticated)
		}
	}
	return claims, nil
}

func (m *Middleware) refuse(w http.ResponseWriter, r *http.Request, err error) {
	code := connect.CodeOf(err)
	if m.OnRefused != nil {
		m.OnRefused(r.URL.Path, code)
	}
	if code == connect.CodeUnauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	// The error is written in the caller's protocol; requests in no known
	// protocol get a Connect unary JSON error.
	_ = m.errW.Write(w, r, err)
}

// BearerToken extracts the token from an Authorization header value. The
// scheme is case-insensitive (RFC 6750 §2.1).
func BearerToken(header string) (string, bool) {
	const prefix = "bearer "
	if len(header) <= len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return "", false
	}
	tok := strings.TrimSpace(header[len(prefix):])
	return tok, tok != ""
}
