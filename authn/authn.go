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

// DeferredCheck starts the revocation check of a verified token without
// waiting for it: it returns ctx carrying the pending check, so that the
// handler's first store read can take it along in the same round trip, and
// settle, which returns its verdict (running it then if no read took it).
type DeferredCheck func(ctx context.Context, c *tokens.Claims) (_ context.Context, settle func(context.Context) (revoked bool, err error))

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
	deferred  map[string]bool
	deferFn   DeferredCheck
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

// Defer has the protected procedures given run check instead of the
// revocation checks, without waiting for it: the handler starts at once, its
// first store read takes the check along, and the response is held back until
// the check has passed (a refused token gets the same refusal as ever, and
// nothing the handler wrote). Only for procedures whose handlers read and
// never write before their first response byte.
func (m *Middleware) Defer(check DeferredCheck, procedures ...string) {
	m.deferFn = check
	m.deferred = make(map[string]bool, len(procedures))
	for _, p := range procedures {
		m.deferred[p] = true
	}
}

// Wrap returns next guarded by m.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !m.protected[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		if m.deferred[r.URL.Path] {
			claims, err := m.verify(ctx, r.Header.Get("Authorization"))
			if err != nil {
				m.refuse(w, r, err)
				return
			}
			ctx, settle := m.deferFn(ctx, claims)
			hw := &heldWriter{ResponseWriter: w, check: func() error {
				revoked, err := settle(ctx)
				return m.revocationError(ctx, claims, revoked, err)
			}, refuse: func(w http.ResponseWriter, err error) { m.refuse(w, r, err) }}
			next.ServeHTTP(hw, r.WithContext(WithClaims(ctx, claims)))
			hw.settle() // a handler that wrote nothing
			return
		}
		claims, err := m.Authenticate(ctx, r.Header.Get("Authorization"))
		if err != nil {
			m.refuse(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithClaims(ctx, claims)))
	})
}

// Authenticate verifies an Authorization header value ("Bearer <jwt>") and
// runs the revocation checks. It returns a *connect.Error: unauthenticated
// for any token problem, unavailable when a revocation check cannot reach
// its store.
func (m *Middleware) Authenticate(ctx context.Context, header string) (*tokens.Claims, error) {
	claims, err := m.verify(ctx, header)
	if err != nil {
		return nil, err
	}
	for _, check := range m.checks {
		revoked, err := check(ctx, claims)
		if err := m.revocationError(ctx, claims, revoked, err); err != nil {
			return nil, err
		}
	}
	return claims, nil
}

// verify checks the token's signature and claims, not revocation.
func (m *Middleware) verify(ctx context.Context, header string) (*tokens.Claims, error) {
	raw, ok := BearerToken(header)
	if !ok {
		return nil, connect.NewError(connect.CodeUnauthenticated, errUnauthenticated)
	}
	claims, err := m.verifier.Verify(raw)
	if err != nil {
		m.log.DebugContext(ctx, "bearer token refused", "reason", err.Error())
		return nil, connect.NewError(connect.CodeUnauthenticated, errUnauthenticated)
	}
	return claims, nil
}

// revocationError turns a revocation check's answer into the request's
// refusal, or nil when the token passes.
func (m *Middleware) revocationError(ctx context.Context, claims *tokens.Claims, revoked bool, err error) error {
	if err != nil {
		m.log.WarnContext(ctx, "revocation check failed", "err", err)
		return connect.NewError(connect.CodeUnavailable, errors.New("token store unavailable"))
	}
	if revoked {
		m.log.DebugContext(ctx, "bearer token refused", "reason", "revoked", "jti", claims.ID)
		return connect.NewError(connect.CodeUnauthenticated, errUnauthenticated)
	}
	return nil
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

// heldWriter holds a deferred-check request's response back until the check
// has passed: the first WriteHeader, Write or Flush settles it, and a refused
// request gets the refusal instead of the handler's answer, whose later
// writes fail.
type heldWriter struct {
	http.ResponseWriter
	check   func() error // the refusal, or nil
	refuse  func(http.ResponseWriter, error)
	settled bool
	refused bool
}

// errRefusedWrite is what a refused request's handler gets from its writes.
var errRefusedWrite = errors.New("authn: request refused; response dropped")

// settle runs the check once and reports whether the handler may write.
func (w *heldWriter) settle() bool {
	if !w.settled {
		w.settled = true
		if err := w.check(); err != nil {
			w.refused = true
			h := w.ResponseWriter.Header()
			for k := range h { // the handler's headers belong to its answer
				delete(h, k)
			}
			w.refuse(w.ResponseWriter, err)
		}
	}
	return !w.refused
}

// Header is the real header until the request is refused; then the
// handler's later headers and trailers go nowhere.
func (w *heldWriter) Header() http.Header {
	if w.refused {
		return http.Header{}
	}
	return w.ResponseWriter.Header()
}

func (w *heldWriter) WriteHeader(code int) {
	if w.settle() {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *heldWriter) Write(b []byte) (int, error) {
	if !w.settle() {
		return 0, errRefusedWrite
	}
	return w.ResponseWriter.Write(b)
}

func (w *heldWriter) Flush() {
	if w.settle() {
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *heldWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
