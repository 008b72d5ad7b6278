package handlers

import (
	"context"
	"fmt"
	"time"

	"github.com/tokend/tokend/authz"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/tokens"
	"github.com/tokend/tokend/tracing"
)

// SessionStore keeps refresh-token families.
type SessionStore interface {
	// CreateRefresh starts a family and issues its first refresh token.
	CreateRefresh(ctx context.Context, sess redisstore.Session, ttl time.Duration) (redisstore.IssuedRefresh, error)
	// RotateRefresh atomically consumes token and issues its successor.
	RotateRefresh(ctx context.Context, token string, r redisstore.Rotation) (redisstore.IssuedRefresh, redisstore.Session, error)
	// RevokeFamily revokes a refresh-token family; idempotent.
	RevokeFamily(ctx context.Context, familyID string) error
	// RevokeRefresh revokes token's family; idempotent.
	RevokeRefresh(ctx context.Context, token string) error
}

// SessionPolicy holds the lifetimes of user sessions.
type SessionPolicy struct {
	AccessTTL   time.Duration
	RefreshTTL  time.Duration
	ReuseGrace  time.Duration // a consumed refresh token may be presented again this long
	MaxLifetime time.Duration // no session lives longer than this from its sign-in
}

// Sessions starts, rotates and ends user sessions (refresh-token families)
// and signs their access tokens. The login service (AuthV1) and the code
// service (Auth) share one: a session started by either rotates with
// auth.v1 RefreshToken.
type Sessions struct {
	store  SessionStore
	minter *tokens.Minter
	policy SessionPolicy
}

// NewSessions returns the session helper over store, signing with minter.
func NewSessions(store SessionStore, minter *tokens.Minter, policy SessionPolicy) *Sessions {
	return &Sessions{store: store, minter: minter, policy: policy}
}

// maxGraceReplays is how often one consumed refresh token may be presented
// again inside the grace window: enough for a few parallel tabs or retries,
// too few to farm successors.
const maxGraceReplays = 3

// refreshTTL is the lifetime of a session's first refresh token.
func (p SessionPolicy) refreshTTL() time.Duration {
	if p.MaxLifetime > 0 && p.MaxLifetime < p.RefreshTTL {
		return p.MaxLifetime
	}
	return p.RefreshTTL
}

// Start creates a refresh-token family for sess and returns the first
// token pair.
//
// The access token is bound to the DPoP key jkt ("" for none); sess.JKT
// binds the refresh tokens.
func (h *Sessions) Start(ctx context.Context, sess redisstore.Session, jkt string) (*authv1.TokenResponse, error) {
	issued, err := h.store.CreateRefresh(ctx, sess, h.policy.refreshTTL())
	if err != nil {
		return nil, fmt.Errorf("create refresh token: %w", err)
	}
	return h.tokenResponse(ctx, sess, issued, jkt)
}

// rotate consumes refresh token and issues its successor, within the
// policy's reuse grace and maximum lifetime.
func (h *Sessions) rotate(ctx context.Context, token string) (redisstore.IssuedRefresh, redisstore.Session, error) {
	return h.store.RotateRefresh(ctx, token, redisstore.Rotation{TTL: h.policy.RefreshTTL,
		Grace: h.policy.ReuseGrace, MaxReplays: maxGraceReplays, MaxLifetime: h.policy.MaxLifetime})
}

// sessionTokens is a session's token pair with absolute expiry times.
type sessionTokens struct {
	Access, Refresh       string
	AccessExp, RefreshExp time.Time
	JKT                   string // the DPoP key the access token is bound to ("" for none)
}

// mintPair signs the access token that goes with refresh token rt, bound to
// the DPoP key jkt ("" for a bearer token). It expires with the session at
// the latest.
func (h *Sessions) mintPair(ctx context.Context, sess redisstore.Session, rt redisstore.IssuedRefresh, jkt string) (sessionTokens, error) {
	_, end := tracing.Start(ctx, "tokens.sign")
	defer end()
	ttl := h.policy.AccessTTL
	if end := sess.End(h.policy.MaxLifetime); !end.IsZero() {
		ttl = min(ttl, max(time.Until(end), time.Second))
	}
	access, exp, err := h.minter.Mint(bind(SessionClaims(h.minter.Issuer(), sess, rt.FamilyID), jkt), ttl)
	if err != nil {
		return sessionTokens{}, fmt.Errorf("sign access token: %w", err)
	}
	return sessionTokens{Access: access, AccessExp: exp, Refresh: rt.Token, RefreshExp: rt.ExpiresAt, JKT: jkt}, nil
}

func (h *Sessions) tokenResponse(ctx context.Context, sess redisstore.Session, rt redisstore.IssuedRefresh, jkt string) (*authv1.TokenResponse, error) {
	p, err := h.mintPair(ctx, sess, rt, jkt)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &authv1.TokenResponse{
		AccessToken:      p.Access,
		RefreshToken:     p.Refresh,
		ExpiresIn:        secondsUntil(p.AccessExp, now),
		TokenType:        tokenType(jkt),
		RefreshExpiresIn: secondsUntil(p.RefreshExp, now),
	}, nil
}

func secondsUntil(t, now time.Time) int64 { return int64(t.Sub(now).Round(time.Second) / time.Second) }

// SessionClaims are the claims of a user's access token within session
// family: the user is the subject; tokend (and the client, if any) the
// audience; client_id is the client, or authz.FirstPartyClientID for a
// first-party sign-in.
func SessionClaims(issuer string, sess redisstore.Session, family string) *tokens.Claims {
	c := &tokens.Claims{
		Kind:      tokens.KindUser,
		SessionID: family,
		ClientID:  sess.ClientID,
		Scope:     sess.Scope,
	}
	if c.ClientID == "" {
		c.ClientID = authz.FirstPartyClientID
	}
	c.Subject = sess.UserID
	c.Audience = []string{issuer}
	if sess.ClientID != "" {
		c.Audience = append(c.Audience, sess.ClientID)
	}
	return c
}
