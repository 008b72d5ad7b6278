package authn

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/authz"
	"github.com/tokend/tokend/dpop"
	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/tokens"
)

// Revocation returns the revocation checks of a verified token (one per source it depends on, see
// authz.Sources), or refused when the answer needs no Redis (its user or client is no longer
// configured, or the token is malformed); err when it cannot tell yet (answered unavailable).
type Revocation func(c *tokens.Claims) (checks redisstore.Gate, refused bool, err error)

// Verifier verifies an access token's signature and claims.
type Verifier interface {
	Verify(token string) (*tokens.Claims, error)
}

// Caller is the verified caller of a protected procedure: its principal, which the authorization table
// allowed to call the procedure, and its token's claims.
type Caller struct {
	authz.Principal
	Claims *tokens.Claims
	// Pending is the token's revocation check when the procedure defers it (Middleware.Defer): the
	// handler passes it to its first store read, which sends it in the same round trip, and the
	// response is held back until it has passed. Nil when the check has passed already.
	Pending redisstore.Gate
	// proof is the replay record of the call's DPoP proof, one of Pending (nil without a proof).
	proof *redisstore.Precheck
}

type callerKey struct{}

// WithCaller returns ctx carrying the verified caller (the middleware, and
// tests of handlers that read CallerFrom).
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller Middleware verified for this request.
func CallerFrom(ctx context.Context) (*Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*Caller)
	return c, ok && c != nil
}

// errUnauthenticated is the single message every refused bearer token gets:
// the caller learns nothing about which check failed.
var errUnauthenticated = errors.New("missing or invalid access token")

// ErrUnauthenticated is the refusal of a request without a valid bearer token.
func ErrUnauthenticated() *connect.Error {
	return connect.NewError(connect.CodeUnauthenticated, errUnauthenticated)
}

// errUnavailable is the one message of a check that could not reach the
// token store: the caller may retry.
var errUnavailable = errors.New("token store unavailable; try again")

// ErrUnavailable is the answer when the token store cannot be reached
// (here and in the handlers).
func ErrUnavailable() *connect.Error {
	return connect.NewError(connect.CodeUnavailable, errUnavailable)
}

// Middleware guards the procedures of authz.Table: it verifies the bearer token, applies the table
// (permission_denied), and runs the token's revocation checks (unauthenticated when one refuses). Other
// paths pass through untouched.
type Middleware struct {
	verifier   Verifier
	issuer     string
	revocation Revocation
	deferred   map[string]bool
	errW       *connect.ErrorWriter
	log        *slog.Logger
	// OnRefused, if set, is called with the procedure and code of every
	// request the middleware refuses (for metrics).
	OnRefused func(procedure string, code connect.Code)
	// dpop checks the proofs that go with DPoP-bound tokens (see UseDPoP).
	dpop       *dpop.Checker
	proofCheck func(id string, ttl time.Duration) *redisstore.Precheck
}

// UseDPoP has m accept DPoP-bound tokens (cnf.jkt): sent as "Authorization: DPoP <token>" with a
// proof of the bound key checked by c, whose replay record proofCheck makes (it joins the token's
// revocation checks: one round trip for both). Without it, bound tokens are refused.
func (m *Middleware) UseDPoP(c *dpop.Checker, proofCheck func(id string, ttl time.Duration) *redisstore.Precheck) {
	m.dpop, m.proofCheck = c, proofCheck
}

// NewMiddleware returns a Middleware for tokens of issuer, verified by v, whose revocation checks
// revocation returns.
func NewMiddleware(v Verifier, issuer string, revocation Revocation, log *slog.Logger) *Middleware {
	return &Middleware{verifier: v, issuer: issuer, revocation: revocation, errW: connect.NewErrorWriter(), log: log}
}

// Defer has the procedures given start at once, their revocation check pending in Caller.Pending for
// the handler's first store read to carry (one round trip for both); the response is held back until
// the check has passed (a refused token gets the same refusal as ever, and nothing the handler wrote).
// Only for procedures whose handlers read and never write before their first response byte.
func (m *Middleware) Defer(procedures ...string) {
	m.deferred = make(map[string]bool, len(procedures))
	for _, p := range procedures {
		m.deferred[p] = true
	}
}

// Wrap returns next guarded by m.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, protected := authz.Table[r.URL.Path]; !protected {
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		header := r.Header.Get("Authorization")
		caller, err := m.authorize(ctx, r.URL.Path, header)
		if err == nil {
			err = m.checkProof(ctx, r, header, caller)
		}
		if err != nil {
			m.refuse(w, r, err)
			return
		}
		if !m.deferred[r.URL.Path] {
			if err := m.settle(ctx, caller); err != nil {
				m.refuse(w, r, err)
				return
			}
			caller.Pending = nil
			next.ServeHTTP(w, r.WithContext(WithCaller(ctx, caller)))
			return
		}
		hw := &heldWriter{ResponseWriter: w, check: func() error { return m.settle(ctx, caller) },
			refuse: func(w http.ResponseWriter, err error) { m.refuse(w, r, err) }}
		next.ServeHTTP(hw, r.WithContext(WithCaller(ctx, caller)))
		hw.settle() // a handler that wrote nothing
	})
}

// authorize verifies the token in an Authorization header value ("Bearer <jwt>") and applies the
// authorization table to its principal for procedure. The caller it returns has its revocation checks
// pending. Errors are *connect.Error: unauthenticated for any token problem (one message for all),
// permission_denied when the table refuses.
func (m *Middleware) authorize(ctx context.Context, procedure, header string) (*Caller, error) {
	raw, ok := BearerToken(header)
	if !ok {
		raw, ok = DPoPToken(header)
	}
	if !ok {
		return nil, ErrUnauthenticated()
	}
	claims, err := m.verifier.Verify(raw)
	if err != nil {
		m.log.DebugContext(ctx, "bearer token refused", "reason", err.Error())
		return nil, ErrUnauthenticated()
	}
	checks, refused, err := m.revocation(claims)
	if err != nil {
		m.log.WarnContext(ctx, "revocation check failed", "err", err)
		return nil, ErrUnavailable()
	}
	if refused {
		m.log.DebugContext(ctx, "bearer token refused", "reason", "source gone", "jti", claims.ID)
		return nil, ErrUnauthenticated()
	}
	c := &Caller{Principal: authz.FromClaims(claims), Claims: claims, Pending: checks}
	if err := authz.Authorize(procedure, c.Principal, m.issuer); err != nil {
		m.log.DebugContext(ctx, "bearer token not allowed", "procedure", procedure, "kind", c.Kind.String(), "jti", claims.ID)
		return nil, connect.NewError(connect.CodePermissionDenied, err)
	}
	return c, nil
}

// checkProof applies the DPoP rules to a caller authorized with header: a bound token (cnf.jkt)
// needs the DPoP scheme and a proof, for this call and this token, by the bound key, whose replay
// record joins the caller's pending checks; a bearer token may not use the DPoP scheme (RFC 9449
// §7.1). Refusals are *dpop.Error.
func (m *Middleware) checkProof(ctx context.Context, r *http.Request, header string, c *Caller) error {
	raw, isDPoP := DPoPToken(header)
	bound := c.Claims.BoundKey()
	switch {
	case bound == "" && !isDPoP:
		return nil
	case bound == "" || m.dpop == nil:
		m.log.DebugContext(ctx, "bearer token refused", "reason", "DPoP scheme with an unbound token", "jti", c.Claims.ID)
		return &dpop.Error{Code: dpop.CodeInvalidToken, Description: "the access token is not DPoP-bound", Resource: true}
	case !isDPoP:
		m.log.DebugContext(ctx, "bearer token refused", "reason", "DPoP-bound token sent as Bearer", "jti", c.Claims.ID)
		return &dpop.Error{Code: dpop.CodeInvalidToken, Description: "a DPoP-bound token needs the DPoP scheme and a proof", Resource: true}
	}
	proofs := r.Header.Values(dpop.ProofHeader)
	if len(proofs) != 1 {
		return &dpop.Error{Code: dpop.CodeInvalidProof, Description: "exactly one DPoP proof is required", Resource: true}
	}
	p, err := m.dpop.Check(ctx, proofs[0], dpop.TargetOf(r, raw))
	if err != nil {
		if de, ok := dpop.As(err); ok {
			de.Resource = true
			m.log.DebugContext(ctx, "DPoP proof refused", "reason", de.Description, "jti", c.Claims.ID)
			return de
		}
		m.log.WarnContext(ctx, "DPoP nonce store failed", "err", err)
		return connect.NewError(connect.CodeUnavailable, errors.New("token store unavailable"))
	}
	if p.JKT != bound {
		m.log.DebugContext(ctx, "DPoP proof refused", "reason", "key does not match cnf.jkt", "jti", c.Claims.ID)
		return &dpop.Error{Code: dpop.CodeInvalidToken, Description: "DPoP proof key does not match the token's cnf.jkt", Resource: true}
	}
	c.proof = m.proofCheck(p.ReplayID, p.ReplayTTL)
	c.Pending = append(c.Pending, c.proof)
	return nil
}

// settle waits for the caller's revocation checks: nil when they pass.
func (m *Middleware) settle(ctx context.Context, c *Caller) error {
	revoked, err := redisstore.Settle(ctx, c.Pending...)
	if err != nil {
		m.log.WarnContext(ctx, "revocation check failed", "err", err)
		return ErrUnavailable()
	}
	if revoked && c.proof != nil && c.proof.Refused() {
		m.log.DebugContext(ctx, "DPoP proof refused", "reason", "replayed", "jti", c.Claims.ID)
		e := dpop.ErrReplayed()
		e.Resource = true
		return e
	}
	if revoked {
		m.log.DebugContext(ctx, "bearer token refused", "reason", "revoked", "jti", c.Claims.ID)
		return ErrUnauthenticated()
	}
	return nil
}

func (m *Middleware) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if de, ok := dpop.As(err); ok {
		de.SetHeaders(w.Header())
		err = connect.NewError(connect.CodeUnauthenticated, errors.New(de.Error()))
		if m.OnRefused != nil {
			m.OnRefused(r.URL.Path, connect.CodeUnauthenticated)
		}
		_ = m.errW.Write(w, r, err)
		return
	}
	code := connect.CodeOf(err)
	if m.OnRefused != nil {
		m.OnRefused(r.URL.Path, code)
	}
	switch code {
	case connect.CodeUnauthenticated:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	case connect.CodePermissionDenied:
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
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

// DPoPToken extracts the token from an Authorization header value with the DPoP scheme
// (RFC 9449 §7.1; case-insensitive).
func DPoPToken(header string) (string, bool) {
	const prefix = "dpop "
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
