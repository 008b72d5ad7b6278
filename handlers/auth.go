package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/clientaddr"
	"github.com/tokend/tokend/config"
	authpb "github.com/tokend/tokend/gen/auth"
	"github.com/tokend/tokend/gen/auth/authpbconnect"
	basepb "github.com/tokend/tokend/gen/base"
	"github.com/tokend/tokend/redisstore"
)

// CodeStore keeps authorization codes.
type CodeStore interface {
	// CreateCode stores a new code for c, living for ttl, and returns it.
	CreateCode(ctx context.Context, c redisstore.AuthCode, ttl time.Duration) (string, error)
	// ExchangeCode atomically redeems code once, after checking the client,
	// redirect URI and PKCE challenge, and starts the refresh-token family
	// the code names with a first token living for refreshTTL. A reused
	// code (ErrCodeReused) revokes that family in the same step.
	ExchangeCode(ctx context.Context, code string, check redisstore.CodeCheck, refreshTTL time.Duration) (redisstore.AuthCode, redisstore.IssuedRefresh, error)
	// RevokeFamily revokes a refresh-token family; idempotent.
	RevokeFamily(ctx context.Context, familyID string) error
}

// Auth implements auth.AuthService: authorization codes for signed-in users,
// exchanged by clients for a session (RFC 6749 §4.1, with RFC 7636 PKCE).
//
// GenerateAuthorizationCode trusts exactly one caller: the user, through an
// access token of their own first-party sign-in (authz.FirstParty) whose sub
// is user_id. There is no trusted front-end scope: a login/consent front end
// calls with the token the user just signed in with. Tokens issued to a
// client, or minted from an API token, are refused (authz.Table), so that
// one client holding a user's token cannot mint codes for another.
type Auth struct {
	codes    CodeStore
	sessions *Sessions
	clients  *Clients
	users    *Users
	codeTTL  time.Duration
	log      *slog.Logger
}

var _ authpbconnect.AuthServiceHandler = (*Auth)(nil)

// NewAuth returns the auth.AuthService handler. Exchanged codes start their
// sessions through sessions (shared with AuthV1), so their refresh tokens
// rotate with auth.v1 RefreshToken and their access tokens carry the
// session id.
func NewAuth(codes CodeStore, sessions *Sessions, clients *Clients, users *Users, codeTTL time.Duration, log *slog.Logger) *Auth {
	return &Auth{codes: codes, sessions: sessions, clients: clients, users: users, codeTTL: codeTTL, log: log}
}

func okResp() *basepb.BaseResp { return &basepb.BaseResp{Code: 0, Message: "OK"} }

// GenerateAuthorizationCode issues a code for user_id and client_id. The
// bearer check of the server's middleware has already run.
func (h *Auth) GenerateAuthorizationCode(ctx context.Context, req *connect.Request[authpb.GenerateAuthorizationCodeRequest]) (*connect.Response[authpb.GenerateAuthorizationCodeResponse], error) {
	m := req.Msg
	who, err := caller(ctx) // a first-party session: the authorization table allows no other
	if err != nil {
		return nil, err
	}
	if m.GetUserId() == 0 {
		return nil, invalidArgument("user_id is required")
	}
	userID := strconv.FormatUint(uint64(m.GetUserId()), 10)
	if who.Owner != userID || !h.users.Exists(userID) {
		return nil, errNotUsersToken
	}
	if m.GetClientId() == 0 {
		return nil, invalidArgument("client_id is required")
	}
	cl, ok := h.clients.Get(strconv.FormatUint(uint64(m.GetClientId()), 10))
	if !ok {
		return nil, invalidArgument("unknown client_id")
	}
	if _, numeric := cl.NumericID(); !numeric || !cl.AllowsGrant(config.GrantAuthorizationCode) {
		return nil, badArgument{errNotCodeClient} // client_id is an argument here, not the caller
	}
	if m.GetRedirectUri() == "" {
		return nil, invalidArgument("redirect_uri is required")
	}
	if !slices.Contains(cl.RedirectURIs, m.GetRedirectUri()) {
		return nil, invalidArgument("redirect_uri is not registered for this client")
	}
	scope, ok := SubsetScope(m.GetScope(), cl.Scopes)
	if !ok {
		return nil, invalidArgument("scope outside the client's scopes")
	}
	challenge, method := m.GetCodeChallenge(), m.GetCodeChallengeMethod()
	switch {
	case challenge == "" && method == "":
		if cl.IsPublic() {
			return nil, invalidArgument("public clients must use PKCE: code_challenge with code_challenge_method S256")
		}
	case method != "S256":
		// RFC 7636 §4.3: an absent method means "plain", which RFC 9700
		// §2.1.1 advises against; only S256 is served.
		return nil, invalidArgument("code_challenge_method must be S256")
	case len(challenge) != 43 || !isBase64URL(challenge):
		return nil, invalidArgument("code_challenge must be BASE64URL(SHA256(code_verifier)): 43 characters")
	}

	code, err := h.codes.CreateCode(ctx, redisstore.AuthCode{
		UserID: userID, ClientID: cl.ID, RedirectURI: m.GetRedirectUri(), Scope: scope,
		Challenge: challenge, ChallengeMethod: method, FamilyID: redisstore.NewFamilyID(),
	}, h.codeTTL)
	if err != nil {
		return nil, fmt.Errorf("create authorization code: %w", err)
	}
	h.log.InfoContext(ctx, "authorization code issued", "event", "code.issued", "sub", userID, "client_id", cl.ID, "pkce", challenge != "")
	return connect.NewResponse(&authpb.GenerateAuthorizationCodeResponse{Code: code, BaseResp: okResp()}), nil
}

// ExchangeToken trades a code for an access and a refresh token.
func (h *Auth) ExchangeToken(ctx context.Context, req *connect.Request[authpb.ExchangeTokenRequest]) (*connect.Response[authpb.ExchangeTokenResponse], error) {
	m := req.Msg
	res, err := h.exchange(ctx, exchangeInput{
		Code: m.GetCode(), ClientID: strconv.FormatUint(uint64(m.GetClientId()), 10), ClientSecret: m.GetClientSecret(),
		RedirectURI: m.GetRedirectUri(), Verifier: m.GetCodeVerifier(),
	})
	if err != nil {
		return nil, err
	}
	resp := &authpb.ExchangeTokenResponse{
		AccessToken:    res.Access,
		RefreshToken:   res.Refresh,
		AccessExpireAt: res.AccessExp.Unix(),
		BaseResp:       okResp(),
	}
	if res.Refresh != "" {
		resp.RefreshExpireAt = res.RefreshExp.Unix()
	}
	return connect.NewResponse(resp), nil
}

// AuthorizationCodeGrant is the authorization_code grant of /oauth/token
// (RFC 6749 §4.1.3, RFC 7636 §4.5): the same exchange as ExchangeToken,
// with RFC 6749's error codes.
func (h *Auth) AuthorizationCodeGrant() GrantFunc {
	return func(ctx context.Context, req *OAuthTokenRequest) (*OAuthTokenResponse, error) {
		in := exchangeInput{
			Code: req.Form.Get("code"), ClientID: req.ClientID, ClientSecret: req.ClientSecret,
			RedirectURI: req.Form.Get("redirect_uri"), Verifier: req.Form.Get("code_verifier"),
		}
		res, err := h.exchange(ctx, in)
		if err != nil {
			return nil, clientError(err)
		}
		return &OAuthTokenResponse{
			AccessToken:  res.Access,
			TokenType:    tokenType(res.JKT),
			ExpiresIn:    secondsUntil(res.AccessExp, time.Now()),
			RefreshToken: res.Refresh,
			Scope:        res.Scope,
		}, nil
	}
}

type exchangeInput struct {
	Code, ClientID, ClientSecret, RedirectURI, Verifier string
}

type exchanged struct {
	sessionTokens
	Scope string
}

// exchange is ExchangeToken without the envelope. Its errors are connect
// errors; client-authentication failures all wrap errBadClient.
func (h *Auth) exchange(ctx context.Context, in exchangeInput) (exchanged, error) {
	if in.Code == "" {
		return exchanged{}, invalidArgument("code is required")
	}
	if in.RedirectURI == "" {
		return exchanged{}, invalidArgument("redirect_uri is required")
	}
	if in.Verifier != "" && !validVerifier(in.Verifier) {
		return exchanged{}, invalidArgument("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1)")
	}
	cl, err := h.authenticate(ctx, in.ClientID, in.ClientSecret)
	if err != nil {
		return exchanged{}, err
	}
	if cl.IsPublic() && in.Verifier == "" {
		return exchanged{}, errVerifierMismatch
	}
	if err := h.users.Ready(); err != nil { // before the code is consumed
		return exchanged{}, err
	}
	jkt, err := bindProof(ctx, h.log, cl)
	if err != nil {
		return exchanged{}, err
	}
	check := redisstore.CodeCheck{ClientID: cl.ID, RedirectURI: in.RedirectURI, JKT: sessionKey(jkt, cl)}
	if in.Verifier != "" {
		check.Challenge = s256(in.Verifier)
	}
	ac, rt, err := h.codes.ExchangeCode(ctx, in.Code, check, h.sessions.policy.refreshTTL())
	switch {
	case errors.Is(err, redisstore.ErrNotFound):
		return exchanged{}, errBadCode
	case errors.Is(err, redisstore.ErrRedirectMismatch):
		return exchanged{}, errRedirectMismatch
	case errors.Is(err, redisstore.ErrVerifierMismatch):
		return exchanged{}, errVerifierMismatch
	case errors.Is(err, redisstore.ErrCodeReused):
		// RFC 6749 §4.1.2: deny; the store has revoked what the code gave.
		h.log.WarnContext(ctx, "authorization code reused; its session revoked", "event", "session.revoked", "reason", "code reuse", "client_id", cl.ID)
		return exchanged{}, errBadCode
	case err != nil:
		return exchanged{}, fmt.Errorf("exchange authorization code: %w", err)
	}
	if err := h.users.Current(ac.UserID, ac.IssuedAt); err != nil { // removed from the configuration since
		if errors.Is(err, errNotSynced) {
			return exchanged{}, err
		}
		if err := h.codes.RevokeFamily(ctx, ac.FamilyID); err != nil {
			return exchanged{}, fmt.Errorf("revoke session of a removed user: %w", err)
		}
		return exchanged{}, errBadCode
	}
	sess := redisstore.Session{UserID: ac.UserID, ClientID: cl.ID, Scope: ac.Scope, AuthTime: ac.IssuedAt.Unix(), JKT: check.JKT}
	pair, err := h.sessions.mintPair(ctx, sess, rt, jkt)
	if err != nil {
		return exchanged{}, err
	}
	if !cl.AllowsGrant(config.GrantRefreshToken) { // the session exists (sid), but only its access token is handed out
		pair.Refresh, pair.RefreshExp = "", time.Time{}
	}
	h.log.InfoContext(ctx, "authorization code exchanged", "event", "code.exchanged", "sub", ac.UserID, "client_id", cl.ID)
	return exchanged{sessionTokens: pair, Scope: ac.Scope}, nil
}

// authenticate checks the client of an exchange: a confidential client by
// its secret (through the shared cache), a public one by its id alone (its
// codes always carry a PKCE challenge). Unknown clients, wrong secrets and
// secrets sent by public clients fail alike.
func (h *Auth) authenticate(ctx context.Context, id, secret string) (*config.Client, error) {
	cl, known := h.clients.Get(id)
	if !(known && cl.IsPublic() && secret == "") {
		var err error
		if cl, err = h.clients.Check(ctx, id, secret, clientaddr.String(ctx, "")); err != nil {
			return nil, err
		}
	}
	if _, numeric := cl.NumericID(); !numeric || !cl.AllowsGrant(config.GrantAuthorizationCode) {
		return nil, errNotCodeClient
	}
	return cl, nil
}

// s256 is the PKCE S256 transform: BASE64URL(SHA256(ASCII(verifier))).
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// validVerifier checks RFC 7636 §4.1: 43 to 128 unreserved characters.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := range len(v) {
		c := v[i]
		if !(isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

func isBase64URL(s string) bool {
	for i := range len(s) {
		if c := s[i]; !(isAlnum(c) || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
