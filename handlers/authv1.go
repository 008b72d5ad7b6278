package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/clientaddr"
	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/dpop"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/tracing"
)

// Input bounds: far above any real credential, low enough that nobody can
// make the password hash chew on megabytes.
const (
	maxUsernameLen = 256
	maxPasswordLen = 1024
	maxTokenLen    = 512
)

// AuthV1 implements auth.v1.AuthService: password login, refresh-token
// rotation with reuse detection, and logout.
type AuthV1 struct {
	sessions *Sessions
	throttle Limiter
	login    LoginPolicy
	users    *Users
	clients  *Clients
	log      *slog.Logger
}

// LoginPolicy bounds failed logins.
type LoginPolicy struct {
	MaxFailures int // failed logins per (username, address) and per address within Window
	// MaxFailuresPerUser bounds failed logins per username from every
	// address within Window: far above MaxFailures, so that one attacker
	// cannot lock a user out from elsewhere, yet a guess spread over many
	// addresses stays bounded.
	MaxFailuresPerUser int
	Window             time.Duration
}

var _ authv1connect.AuthServiceHandler = (*AuthV1)(nil)

// NewAuthV1 returns the auth.v1 handler: logins throttled by throttle under
// login, sessions kept by sessions. clients are the clients whose
// sessions' refresh tokens it rotates.
func NewAuthV1(sessions *Sessions, throttle Limiter, login LoginPolicy, users *Users, clients *Clients, log *slog.Logger) *AuthV1 {
	return &AuthV1{sessions: sessions, throttle: throttle, login: login, users: users, clients: clients, log: log}
}

// Token logs a user in with username and password.
func (h *AuthV1) Token(ctx context.Context, req *connect.Request[authv1.TokenRequest]) (*connect.Response[authv1.TokenResponse], error) {
	cred := req.Msg.GetPasswordCredential()
	if cred == nil {
		return nil, invalidArgument("password_credential is required")
	}
	if err := checkCredentials(cred.GetUsername(), cred.GetPassword()); err != nil {
		return nil, err
	}

	resp, err := h.Login(ctx, cred.GetUsername(), cred.GetPassword(), clientaddr.String(ctx, req.Peer().Addr), "", "")
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// checkCredentials bounds a login's username and password before anything
// hashes them.
func checkCredentials(username, password string) error {
	if username == "" || password == "" {
		return invalidArgument("username and password are required")
	}
	if len(username) > maxUsernameLen || len(password) > maxPasswordLen {
		return invalidArgument("username or password too long")
	}
	return nil
}

// Login checks a username and password and starts a session for clientID
// (empty for first-party logins) with scope. Token and the password grant
// share it. Attempts are throttled (loginGroups): a password is checked
// only after the attempt is counted, so parallel guesses cannot overshoot
// the limits; a refused attempt counts nowhere and a successful one is
// taken back.
func (h *AuthV1) Login(ctx context.Context, username, password, peerAddr, clientID, scope string) (*authv1.TokenResponse, error) {
	groups := h.loginGroups(username, peerAddr)
	wait, err := takeLimits(ctx, h.throttle, h.login.Window, groups...)
	if err != nil {
		return nil, fmt.Errorf("login limit: %w", err)
	}
	if wait > 0 {
		h.log.InfoContext(ctx, "login throttled", "event", "login.throttled", "peer", peerIP(peerAddr))
		return nil, throttledError{wait}
	}

	_, end := tracing.Start(ctx, "passhash.verify")
	userID, ok := h.users.Authenticate(username, password)
	end()
	if !ok {
		h.log.InfoContext(ctx, "login failed", "event", "login.refused", "peer", peerIP(peerAddr))
		return nil, errBadLogin
	}
	if err := h.throttle.LimitForgive(ctx, groups...); err != nil {
		return nil, fmt.Errorf("login limit: %w", err)
	}
	var cl *config.Client
	if clientID != "" {
		cl, _ = h.clients.Get(clientID)
	}
	jkt, err := bindProof(ctx, h.log, cl)
	if err != nil {
		return nil, err
	}
	resp, err := h.sessions.Start(ctx, redisstore.Session{UserID: userID, ClientID: clientID, Scope: scope, AuthTime: time.Now().Unix(),
		JKT: sessionKey(jkt, cl)}, jkt)
	if err != nil {
		return nil, err
	}
	h.log.InfoContext(ctx, "login", "event", "login", "sub", userID, "client_id", clientID)
	return resp, nil
}

// loginGroups are the limiter's counters for a login: per (username,
// address) and per address (MaxFailures), under the address; per username
// from every address (MaxFailuresPerUser), under the username.
func (h *AuthV1) loginGroups(username, addr string) []redisstore.LimitGroup {
	username = strings.ToLower(username) // one counter whatever the case typed
	return []redisstore.LimitGroup{
		{Tag: addrTag(peerIP(addr)), Limits: []redisstore.Limit{
			{Name: "login-user:" + username, Max: h.login.MaxFailures},
			{Name: "login-addr", Max: h.login.MaxFailures},
		}},
		{Tag: "u:" + username, Limits: []redisstore.Limit{{Name: "login-user", Max: h.login.MaxFailuresPerUser}}},
	}
}

// RefreshToken rotates a refresh token: the presented one is consumed and a
// new access and refresh token are returned. A token issued to a
// confidential client needs that client's credentials (client_id and
// client_secret); a public client may name itself; first-party sign-ins
// send neither.
func (h *AuthV1) RefreshToken(ctx context.Context, req *connect.Request[authv1.RefreshTokenRequest]) (*connect.Response[authv1.TokenResponse], error) {
	by, err := h.presenter(ctx, req.Msg.GetClientId(), req.Msg.GetClientSecret())
	if err != nil {
		return nil, err
	}
	resp, _, err := h.refresh(ctx, req.Msg.GetRefreshToken(), by)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// presenter is who presents a refresh token: nobody in particular (ClientID
// ""), a client that authenticated with its secret, or a public client that
// named itself.
type presenter struct {
	ClientID      string
	Authenticated bool
}

// presenter checks the client credentials sent with a refresh token: none,
// a public client's id alone, or a confidential client's id and secret.
// Failures are errBadClient (unauthenticated), alike.
func (h *AuthV1) presenter(ctx context.Context, id, secret string) (presenter, error) {
	if id == "" && secret == "" {
		return presenter{}, nil
	}
	if cl, known := h.clients.Get(id); known && cl.IsPublic() && secret == "" {
		return presenter{ClientID: cl.ID}, nil
	}
	cl, err := h.clients.Check(ctx, id, secret, clientaddr.String(ctx, ""))
	if err != nil {
		return presenter{}, err // unauthenticated (errBadClient), throttled or unavailable
	}
	return presenter{ClientID: cl.ID, Authenticated: true}, nil
}

// refresh is RefreshToken without the RPC envelope; the refresh_token grant
// of /oauth/token calls it too. It returns the session the token belongs to.
//
// After the rotation, the session must still be one tokend would start: its
// user configured; a first-party session presented by no client; a client's
// session presented by that client — authenticated when it is confidential
// (RFC 6749 §6) — which is still configured and allowed the refresh_token
// grant. Otherwise the family is revoked (the token is in the wrong hands,
// or what it stood for is gone) and the refresh refused.
func (h *AuthV1) refresh(ctx context.Context, token string, by presenter) (*authv1.TokenResponse, redisstore.Session, error) {
	if token == "" {
		return nil, redisstore.Session{}, invalidArgument("refresh_token is required")
	}
	if len(token) > maxTokenLen {
		return nil, redisstore.Session{}, errBadRefreshToken
	}
	if err := errors.Join(h.users.Ready(), h.clients.Ready()); err != nil { // before the token is consumed
		return nil, redisstore.Session{}, err
	}
	// The proof is checked before the token is consumed (a client told to fetch a nonce retries
	// with the same token) and recorded against replay once the rotation has authenticated it.
	proof, err := dpop.Peek(ctx)
	if err != nil {
		return nil, redisstore.Session{}, dpopError(ctx, h.log, err)
	}
	next, sess, err := h.sessions.rotate(ctx, token)
	switch {
	case errors.Is(err, redisstore.ErrReused):
		h.log.WarnContext(ctx, "refresh token reused; session revoked", "event", "session.revoked", "reason", "reuse", "sub", sess.UserID)
		return nil, sess, errBadRefreshToken
	case errors.Is(err, redisstore.ErrNotFound), errors.Is(err, redisstore.ErrRevoked):
		return nil, sess, errBadRefreshToken
	case err != nil:
		return nil, sess, fmt.Errorf("rotate refresh token: %w", err)
	}
	if refusal := h.mayRefresh(sess, by); refusal != nil {
		if errors.Is(refusal, errNotSynced) {
			return nil, sess, refusal
		}
		if err := h.sessions.store.RevokeFamily(ctx, next.FamilyID); err != nil {
			return nil, sess, fmt.Errorf("revoke refresh family: %w", err)
		}
		h.log.WarnContext(ctx, "refresh refused; session revoked", "event", "session.revoked", "sub", sess.UserID, "issued_to", sess.ClientID,
			"presented_by", by.ClientID, "reason", refusal.Error())
		return nil, sess, refusal
	}
	jkt, err := h.refreshKey(ctx, sess, proof)
	if err != nil {
		if _, stolen := dpop.As(err); stolen && sess.JKT != "" { // a bound refresh token without its key
			if rerr := h.sessions.store.RevokeFamily(ctx, next.FamilyID); rerr != nil {
				return nil, sess, fmt.Errorf("revoke refresh family: %w", rerr)
			}
			h.log.WarnContext(ctx, "DPoP-bound refresh token presented without its key; session revoked",
				"event", "session.revoked", "reason", "dpop key", "sub", sess.UserID)
		}
		return nil, sess, err
	}
	resp, err := h.sessions.tokenResponse(ctx, sess, next, jkt)
	return resp, sess, err
}

// refreshKey is refresh's DPoP step after the rotation: a session bound to a key needs a proof of
// that key, a client with dpop_bound_access_tokens a proof; the proof, if any, is recorded against
// replay. It returns the key to bind the new access token to.
func (h *AuthV1) refreshKey(ctx context.Context, sess redisstore.Session, proof *dpop.Proof) (string, error) {
	var cl *config.Client
	if sess.ClientID != "" {
		cl, _ = h.clients.Get(sess.ClientID)
	}
	switch {
	case proof == nil && sess.JKT != "":
		return "", dpop.ErrRequired().ConnectError()
	case proof == nil && cl != nil && cl.DPoPBoundAccessTokens:
		return "", dpop.ErrRequired().ConnectError()
	case proof == nil:
		return "", nil
	case sess.JKT != "" && proof.JKT != sess.JKT:
		return "", dpop.ErrKeyMismatch().ConnectError()
	}
	if err := dpop.Record(ctx, proof); err != nil {
		return "", dpopError(ctx, h.log, err)
	}
	return proof.JKT, nil
}

// mayRefresh is refresh's check of a rotated session against who presented
// it and the configuration: nil, errNotSynced, or the refusal.
func (h *AuthV1) mayRefresh(sess redisstore.Session, by presenter) error {
	created := time.Unix(sess.Created, 0)
	if err := h.users.Current(sess.UserID, created); err != nil {
		return gone(err, errBadRefreshToken)
	}
	if sess.ClientID == "" { // a first-party sign-in
		if by.ClientID != "" {
			return errBadRefreshToken
		}
		return nil
	}
	cl, err := h.clients.Current(sess.ClientID, created)
	switch {
	case err != nil:
		return gone(err, errBadRefreshToken)
	case by.ClientID != "" && by.ClientID != cl.ID:
		return errBadRefreshToken
	case !cl.IsPublic() && !by.Authenticated:
		return errBadClient
	case !cl.AllowsGrant(config.GrantRefreshToken):
		return errNoRefreshGrant
	}
	return nil
}

// Logout revokes the refresh token's whole family. It is idempotent.
func (h *AuthV1) Logout(ctx context.Context, req *connect.Request[authv1.LogoutRequest]) (*connect.Response[authv1.LogoutResponse], error) {
	token := req.Msg.GetRefreshToken()
	if token == "" {
		return nil, invalidArgument("refresh_token is required")
	}
	if len(token) <= maxTokenLen {
		if err := h.sessions.store.RevokeRefresh(ctx, token); err != nil {
			return nil, fmt.Errorf("revoke refresh token: %w", err)
		}
	}
	h.log.InfoContext(ctx, "logout", "event", "session.revoked", "reason", "logout")
	return connect.NewResponse(&authv1.LogoutResponse{}), nil
}

// peerIP strips the port from a peer address.
func peerIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
