package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tokend/tokend/authn"
	"github.com/tokend/tokend/clientaddr"
	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/dpop"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/tokens"
	"github.com/tokend/tokend/tracing"
)

// M2MStore keeps M2M token records, their owner index and blacklists.
type M2MStore interface {
	CreateM2MToken(ctx context.Context, rec redisstore.M2MToken) error
	// GetM2MTokens and ListM2MTokens read behind gate, the caller's
	// pending revocation check (redisstore.ErrRefused when it refuses).
	GetM2MTokens(ctx context.Context, gate redisstore.Gate, owner string, ids []string) ([]redisstore.M2MToken, error)
	ListM2MTokens(ctx context.Context, gate redisstore.Gate, owner string, f func([]redisstore.M2MToken) error) error
	DeleteM2MTokens(ctx context.Context, owner string, ids []string) (blacklisted, deleted int64, err error)
}

// M2M implements m2moauthserver.pb.M2MOAuthService: client-credentials
// tokens for machines, listed and blacklisted by their owner.
type M2M struct {
	store      M2MStore
	clients    *Clients
	assertions *Assertions
	minter     *tokens.Minter
	log        *slog.Logger
	now        func() time.Time
}

var _ m2mpbconnect.M2MOAuthServiceHandler = (*M2M)(nil)

// NewM2M returns the M2M service handler.
func NewM2M(store M2MStore, clients *Clients, assertions *Assertions, minter *tokens.Minter, log *slog.Logger) *M2M {
	return &M2M{store: store, clients: clients, assertions: assertions, minter: minter, log: log, now: time.Now}
}

// CreateToken issues an M2M access token (API.md section 4).
func (h *M2M) CreateToken(ctx context.Context, req *connect.Request[m2mpb.CreateTokenRequest]) (*connect.Response[m2mpb.CreateTokenResponse], error) {
	resp, err := h.create(ctx, req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

func (h *M2M) create(ctx context.Context, m *m2mpb.CreateTokenRequest) (*m2mpb.CreateTokenResponse, error) {
	cl, asserted, err := h.authenticate(ctx, m)
	if err != nil {
		return nil, err
	}
	if m.GrantType != config.GrantClientCredentials {
		return nil, invalidArgument("grant_type must be client_credentials")
	}
	if !cl.AllowsGrant(config.GrantClientCredentials) {
		return nil, errNoClientCredentials
	}
	aud := m.Audience
	for _, a := range aud {
		if !slices.Contains(cl.Audiences, a) {
			return nil, invalidArgument("audience " + strconv.Quote(a) + " is not allowed for this client")
		}
	}
	if len(aud) == 0 {
		aud = cl.Audiences
	}
	var scopes []string
	for _, s := range m.Scope {
		scopes = append(scopes, strings.Fields(s)...)
	}
	for _, s := range scopes {
		if !slices.Contains(cl.Scopes, s) {
			return nil, invalidArgument("scope " + strconv.Quote(s) + " is not allowed for this client")
		}
	}
	if len(scopes) == 0 {
		scopes = cl.Scopes
	}
	if len(m.TokenName) > maxTokenName {
		return nil, invalidArgument("token_name is longer than " + strconv.Itoa(maxTokenName) + " bytes")
	}

	now := h.now().Truncate(time.Second)
	max := cl.AccessTokenLifetime.D()
	ttl := max // absent: the client's lifetime (none when it is 0)
	if m.Expiration != 0 {
		exp := time.Unix(m.Expiration, 0)
		switch {
		case !exp.After(now):
			return nil, invalidArgument("expiration is in the past")
		case max > 0 && exp.Sub(now) > max:
			return nil, invalidArgument("expiration is beyond the client's maximum lifetime of " + max.String())
		}
		ttl = exp.Sub(now)
	}

	// The owner: with the client's secret, the client's configured owner;
	// with an assertion, whom the assertion speaks for (never the client's
	// owner).
	owner := cl.Owner
	var rawClaims []byte
	if asserted != nil {
		owner = asserted.Owner
		rawClaims, _ = json.Marshal(asserted.Claims)
	}
	if owner == "" {
		return nil, errNoOwner
	}
	jkt, err := bindProof(ctx, h.log, cl)
	if err != nil {
		return nil, err
	}
	if asserted != nil { // a bound assertion (one of tokend's DPoP-bound tokens) is good only with its key
		if cnf, bound := asserted.Claims["cnf"].(map[string]any); bound && (jkt == "" || cnf["jkt"] != jkt) {
			return nil, dpop.ErrKeyMismatch().ConnectError()
		}
	}

	claims := &tokens.Claims{ClientID: cl.ID, Scope: strings.Join(scopes, " "), Kind: tokens.KindClient,
		Owner: owner, Name: m.TokenName}
	if asserted != nil { // the M2M token dies with the sign-in or API token it was bought with, and the trust
		claims.SessionID, claims.APITokenID = asserted.SessionID, asserted.APITokenID
		claims.AssertionIssuer = asserted.Issuer
	}
	claims.Subject = cl.ID
	claims.Audience = aud
	_, end := tracing.Start(ctx, "tokens.sign")
	tok, exp, err := h.minter.Mint(bind(claims, jkt), ttl)
	end()
	if err != nil {
		return nil, fmt.Errorf("sign M2M token: %w", err)
	}
	rec := redisstore.M2MToken{ID: claims.ID, Name: m.TokenName, Owner: owner, ClientID: cl.ID, Subject: cl.ID,
		Audience: aud, Scope: scopes, IssuedAt: claims.IssuedAt.Time, ExpiresAt: exp, Claims: rawClaims}
	if err := h.store.CreateM2MToken(ctx, rec); err != nil {
		return nil, fmt.Errorf("store M2M token: %w", err)
	}
	h.log.InfoContext(ctx, "M2M token created", "event", "m2m_token.created", "owner", owner, "client_id", cl.ID, "token_id", claims.ID)
	var expiresIn int64
	if !exp.IsZero() {
		expiresIn = int64(exp.Sub(h.now()).Round(time.Second) / time.Second)
	}
	return &m2mpb.CreateTokenResponse{AccessToken: tok, TokenType: tokenType(jkt), ExpiresIn: expiresIn, Scope: scopes}, nil
}

// authenticate checks the client's secret or client assertion; with an
// assertion it returns whom the assertion speaks for. Every failure,
// including no credential at all, is the same unauthenticated error; a store
// failure while checking an assertion is unavailable.
func (h *M2M) authenticate(ctx context.Context, m *m2mpb.CreateTokenRequest) (*config.Client, *Asserted, error) {
	fail := errBadClient
	switch {
	case m.ClientAssertion != "" || m.ClientAssertionType != "":
		cl, ok := h.clients.Get(m.ClientId)
		if !ok || m.ClientAssertionType != AssertionType || m.ClientSecret != "" || len(cl.AssertionIssuers) == 0 {
			return nil, nil, fail
		}
		asserted, err := h.assertions.Verify(ctx, m.ClientAssertion, cl)
		if err != nil {
			if errors.Is(err, errAssertion) {
				h.log.DebugContext(ctx, "client assertion refused", "client_id", cl.ID, "reason", err.Error())
				return nil, nil, fail
			}
			return nil, nil, fmt.Errorf("check client assertion: %w", err)
		}
		return cl, asserted, nil
	case m.ClientSecret != "":
		cl, err := h.clients.Check(ctx, m.ClientId, m.ClientSecret, clientaddr.String(ctx, ""))
		if err != nil {
			return nil, nil, err
		}
		return cl, nil, nil
	}
	return nil, nil, fail
}

// caller is the verified caller of a protected procedure (authn.Middleware
// has applied the authorization table to it).
func caller(ctx context.Context) (*authn.Caller, error) {
	c, ok := authn.CallerFrom(ctx)
	if !ok {
		return nil, authn.ErrUnauthenticated()
	}
	return c, nil
}

// GetTokens streams the caller's tokens, a batch from Redis at a time.
func (h *M2M) GetTokens(ctx context.Context, req *connect.Request[m2mpb.GetTokensRequest], stream *connect.ServerStream[m2mpb.Token]) error {
	who, err := caller(ctx)
	if err != nil {
		return err
	}
	var sendErr error // the stream's own failure (client gone), returned as is
	emit := func(batch []redisstore.M2MToken) error {
		for _, t := range batch {
			if t.Blacklisted() && !req.Msg.IncludeBlacklisted {
				continue
			}
			if sendErr = stream.Send(m2mMessage(t)); sendErr != nil {
				return sendErr
			}
		}
		return nil
	}
	send := func(batch []redisstore.M2MToken) error { // a batch of many: flushed as it comes
		if err := emit(batch); err != nil {
			return err
		}
		FlushStream(ctx)
		return nil
	}
	if ids := req.Msg.IdFilter; len(ids) > 0 {
		if err := checkIDFilter(ids); err != nil {
			return err
		}
		batch, err := h.store.GetM2MTokens(ctx, who.Pending, who.Owner, ids)
		if err != nil {
			return fmt.Errorf("read M2M tokens: %w", err)
		}
		return emit(batch) // the only batch: the end of the call flushes it
	}
	if err := h.store.ListM2MTokens(ctx, who.Pending, who.Owner, send); err != nil && sendErr == nil {
		return fmt.Errorf("list M2M tokens: %w", err)
	}
	return sendErr
}

// DeleteTokens blacklists the caller's live tokens and deletes the expired
// ones, among id_filter or all.
func (h *M2M) DeleteTokens(ctx context.Context, req *connect.Request[m2mpb.DeleteTokensRequest]) (*connect.Response[m2mpb.DeleteTokensResponse], error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkIDFilter(req.Msg.IdFilter); err != nil {
		return nil, err
	}
	bl, del, err := h.store.DeleteM2MTokens(ctx, who.Owner, req.Msg.IdFilter)
	if err != nil {
		return nil, fmt.Errorf("delete M2M tokens: %w", err)
	}
	h.log.InfoContext(ctx, "M2M tokens blacklisted", "event", "m2m_token.blacklisted", "owner", who.Owner, "blacklisted", bl, "deleted", del)
	return connect.NewResponse(&m2mpb.DeleteTokensResponse{BlacklistedCount: bl, DeletedCount: del}), nil
}

func m2mMessage(t redisstore.M2MToken) *m2mpb.Token {
	msg := &m2mpb.Token{Id: t.ID, Version: t.Version, Name: t.Name, Owner: t.Owner, IssuedAt: t.IssuedAt.Unix(),
		Audience: t.Audience, Scope: t.Scope, ClientId: t.ClientID, Subject: t.Subject}
	if !t.ExpiresAt.IsZero() {
		msg.Expiration = t.ExpiresAt.Unix()
	}
	if t.Blacklisted() {
		msg.Blacklisted = &m2mpb.Token_BlackListed{Flag: true, Timestamp: t.BlacklistedAt.Unix()}
	}
	if len(t.Claims) > 0 {
		var v any
		if json.Unmarshal(t.Claims, &v) == nil {
			msg.OriginalTokenClaims, _ = structpb.NewValue(v)
		}
	}
	return msg
}

// ClientCredentialsGrant serves grant_type=client_credentials on
// /oauth/token with the same code as CreateToken, including the original
// server's extra form fields (audience, token_name, expiration,
// client_assertion, client_assertion_type).
func (h *M2M) ClientCredentialsGrant() GrantFunc {
	return func(ctx context.Context, req *OAuthTokenRequest) (*OAuthTokenResponse, error) {
		f := req.Form
		m := &m2mpb.CreateTokenRequest{GrantType: req.GrantType, ClientId: req.ClientID, ClientSecret: req.ClientSecret,
			TokenName: f.Get("token_name"), ClientAssertion: f.Get("client_assertion"),
			ClientAssertionType: f.Get("client_assertion_type")}
		for _, a := range f["audience"] {
			m.Audience = append(m.Audience, strings.Fields(a)...)
		}
		if s := f.Get("scope"); s != "" {
			m.Scope = strings.Fields(s)
		}
		if e := f.Get("expiration"); e != "" {
			n, err := strconv.ParseInt(e, 10, 64)
			if err != nil {
				return nil, &OAuthError{Status: 400, Code: "invalid_request", Description: "expiration must be Unix seconds"}
			}
			m.Expiration = n
		}
		resp, err := h.create(ctx, m)
		if err != nil {
			if errors.Is(err, errBadClient) {
				return nil, InvalidClient()
			}
			return nil, err
		}
		return &OAuthTokenResponse{AccessToken: resp.AccessToken, TokenType: resp.TokenType,
			ExpiresIn: resp.ExpiresIn, Scope: strings.Join(resp.Scope, " ")}, nil
	}
}

// checkIDFilter refuses an id_filter longer than maxIDFilter.
func checkIDFilter(ids []string) error {
	if len(ids) > maxIDFilter {
		return invalidArgument("id_filter names more than " + strconv.Itoa(maxIDFilter) + " ids")
	}
	return nil
}
