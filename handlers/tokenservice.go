package handlers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokend/tokend/apitoken"
	"github.com/tokend/tokend/authz"
	tsv1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
	"github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1/tokenservicev1alpha1connect"
	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/tokens"
	"github.com/tokend/tokend/tracing"
)

// APITokenStore keeps API token records.
type APITokenStore interface {
	// CreateAPIToken stores rec and indexes it under its owner, refusing
	// with redisstore.ErrLimit when the owner already has max tokens.
	CreateAPIToken(ctx context.Context, rec redisstore.APIToken, max int) error
	// GetAPIToken returns the record of id in one round trip. Unknown,
	// deleted or expired ids are redisstore.ErrNotFound.
	GetAPIToken(ctx context.Context, id string) (redisstore.APIToken, error)
	// TouchAPITokens records last-use times; records that no longer exist
	// are skipped.
	TouchAPITokens(ctx context.Context, used map[string]time.Time) error
	// ListAPITokens returns owner's live tokens.
	ListAPITokens(ctx context.Context, owner string) ([]redisstore.APIToken, error)
	// DeleteAPIToken revokes owner's token id; another owner's id is
	// redisstore.ErrNotFound.
	DeleteAPIToken(ctx context.Context, owner, id string) error
}

// APITokenPolicy bounds API tokens.
type APITokenPolicy struct {
	AccessTTL   time.Duration // lifetime of the access tokens a secret buys
	MaxPerOwner int
}

// TokenService implements priv.tokenservice.v1alpha1.TokenService: users
// create long-lived API tokens and trade their secrets for short-lived
// access tokens.
type TokenService struct {
	store  APITokenStore
	users  *Users
	minter *tokens.Minter
	policy APITokenPolicy
	log    *slog.Logger
	now    func() time.Time
	usage  *usageRecorder
}

var _ tokenservicev1alpha1connect.TokenServiceHandler = (*TokenService)(nil)

// NewTokenService returns the API token handler.
func NewTokenService(store APITokenStore, users *Users, minter *tokens.Minter, policy APITokenPolicy, log *slog.Logger) *TokenService {
	return &TokenService{
		store: store, users: users, minter: minter, policy: policy, log: log, now: time.Now,
		usage: newUsageRecorder(store.TouchAPITokens, log),
	}
}

// RecordUsage writes last-use times in the background every interval until
// ctx is done.
func (h *TokenService) RecordUsage(ctx context.Context, every time.Duration) {
	h.usage.Run(ctx, every)
}

// CreateToken creates an API token owned by the signed-in user. The secret
// is in the response once and never stored.
func (h *TokenService) CreateToken(ctx context.Context, req *connect.Request[tsv1.CreateTokenRequest]) (*connect.Response[tsv1.CreateTokenResponse], error) {
	who, err := caller(ctx) // a first-party session: the authorization table allows no other
	if err != nil {
		return nil, err
	}
	owner := who.Owner
	name := req.Msg.GetName()
	if len(name) > maxTokenName || !utf8.ValidString(name) {
		return nil, invalidArgument("name must be valid UTF-8 of at most " + strconv.Itoa(maxTokenName) + " bytes")
	}
	now := h.now().Truncate(time.Second)
	var expires time.Time
	if et := req.Msg.GetExpireTime(); et != nil {
		if err := et.CheckValid(); err != nil {
			return nil, invalidArgument("expire_time is not a valid timestamp")
		}
		expires = et.AsTime().Truncate(time.Second)
		if !expires.After(now) {
			return nil, invalidArgument("expire_time must be in the future")
		}
	}
	id := apitoken.NewID()
	secret, err := apitoken.NewSecret(id)
	if err != nil {
		return nil, fmt.Errorf("new API token secret: %w", err)
	}
	sum := sha256.Sum256([]byte(secret))
	rec := redisstore.APIToken{ID: id, Owner: owner, Name: name, SecretHash: sum[:], CreatedAt: now, ExpiresAt: expires}
	switch err := h.store.CreateAPIToken(ctx, rec, h.policy.MaxPerOwner); {
	case errors.Is(err, redisstore.ErrLimit):
		return nil, errTooManyAPITokens
	case err != nil:
		return nil, fmt.Errorf("create API token: %w", err)
	}
	h.log.InfoContext(ctx, "API token created", "event", "api_token.created", "owner", owner, "token_id", id)
	tok := tokenMessage(rec)
	tok.Secret = secret
	return connect.NewResponse(&tsv1.CreateTokenResponse{Token: tok}), nil
}

// GetAccessToken trades an API token's secret for a short-lived access
// token for its owner. Unknown, revoked, expired and malformed secrets are
// all refused alike.
func (h *TokenService) GetAccessToken(ctx context.Context, req *connect.Request[tsv1.GetAccessTokenRequest]) (*connect.Response[tsv1.GetAccessTokenResponse], error) {
	secret := req.Msg.GetToken()
	if secret == "" {
		return nil, invalidArgument("token is required")
	}
	id, err := apitoken.ParseSecret(secret)
	if err != nil {
		return nil, errBadAPIToken
	}
	now := h.now()
	rec, err := h.store.GetAPIToken(ctx, id)
	switch {
	case errors.Is(err, redisstore.ErrNotFound):
		return nil, errBadAPIToken
	case err != nil:
		return nil, fmt.Errorf("use API token: %w", err)
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], rec.SecretHash) != 1 ||
		(!rec.ExpiresAt.IsZero() && !now.Before(rec.ExpiresAt)) {
		return nil, errBadAPIToken
	}
	// The owner must still be configured, and be who created it: an API
	// token of a removed user stays dead if the id is configured again.
	if err := h.users.Current(rec.Owner, rec.CreatedAt); err != nil {
		return nil, gone(err, errBadAPIToken)
	}
	jkt, err := bindProof(ctx, h.log, nil)
	if err != nil {
		return nil, err
	}
	h.usage.Record(id, now)
	ttl := h.policy.AccessTTL
	if !rec.ExpiresAt.IsZero() && rec.ExpiresAt.Sub(now) < ttl {
		ttl = rec.ExpiresAt.Sub(now) // an access token never outlives its API token
	}
	c := &tokens.Claims{Kind: tokens.KindAPIToken, APITokenID: rec.ID, ClientID: authz.FirstPartyClientID}
	c.Subject = rec.Owner
	c.Audience = []string{h.minter.Issuer()}
	_, end := tracing.Start(ctx, "tokens.sign")
	access, exp, err := h.minter.Mint(bind(c, jkt), ttl)
	end()
	if err != nil {
		return nil, fmt.Errorf("sign access token: %w", err)
	}
	return connect.NewResponse(&tsv1.GetAccessTokenResponse{
		AccessToken: access,
		ExpiresIn:   int64(exp.Sub(now).Round(time.Second) / time.Second),
	}), nil
}

// ListTokens lists the caller's API tokens, newest first, without secrets.
func (h *TokenService) ListTokens(ctx context.Context, _ *connect.Request[tsv1.ListTokensRequest]) (*connect.Response[tsv1.ListTokensResponse], error) {
	who, err := caller(ctx) // a first-party session: the authorization table allows no other
	if err != nil {
		return nil, err
	}
	owner := who.Owner
	// This replica's unwritten uses first, so the caller sees its own.
	if err := h.usage.Flush(ctx); err != nil {
		h.log.WarnContext(ctx, "recording API token use", "err", err)
	}
	recs, err := h.store.ListAPITokens(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("list API tokens: %w", err)
	}
	slices.SortFunc(recs, func(a, b redisstore.APIToken) int { return b.CreatedAt.Compare(a.CreatedAt) })
	resp := &tsv1.ListTokensResponse{Tokens: make([]*tsv1.Token, 0, len(recs))}
	for _, r := range recs {
		resp.Tokens = append(resp.Tokens, tokenMessage(r))
	}
	return connect.NewResponse(resp), nil
}

// DeleteToken revokes one of the caller's API tokens. Access tokens minted
// from it stop passing tokend's bearer check at once.
func (h *TokenService) DeleteToken(ctx context.Context, req *connect.Request[tsv1.DeleteTokenRequest]) (*connect.Response[tsv1.DeleteTokenResponse], error) {
	who, err := caller(ctx) // a first-party session: the authorization table allows no other
	if err != nil {
		return nil, err
	}
	owner := who.Owner
	id := req.Msg.GetId()
	if !apitoken.ValidID(id) {
		return nil, invalidArgument("id is not an API token id")
	}
	switch err := h.store.DeleteAPIToken(ctx, owner, id); {
	case errors.Is(err, redisstore.ErrNotFound):
		return nil, errNoSuchAPIToken
	case err != nil:
		return nil, fmt.Errorf("delete API token: %w", err)
	}
	h.log.InfoContext(ctx, "API token deleted", "event", "api_token.deleted", "owner", owner, "token_id", id)
	return connect.NewResponse(&tsv1.DeleteTokenResponse{}), nil
}

func tokenMessage(r redisstore.APIToken) *tsv1.Token {
	t := &tsv1.Token{Id: r.ID, Name: r.Name, CreateTime: timestamppb.New(r.CreatedAt)}
	if !r.ExpiresAt.IsZero() {
		t.ExpireTime = timestamppb.New(r.ExpiresAt)
	}
	if !r.LastUsedAt.IsZero() {
		t.LastUsedTime = timestamppb.New(r.LastUsedAt)
	}
	return t
}
