package redisstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Session is what a refresh-token family stands for.
type Session struct {
	UserID   string // decimal user id (the access token's sub)
	ClientID string // "" for first-party password login
	Scope    string // space-separated
	AuthTime int64  // unix seconds of the original login
}

// IssuedRefresh is a refresh token just issued. Token is shown to the client
// once; only its SHA-256 is stored.
type IssuedRefresh struct {
	Token     string
	FamilyID  string
	ExpiresAt time.Time
}

var (
	//go:embed rotate_refresh.lua
	rotateRefreshSrc    string
	rotateRefreshScript = redis.NewScript(rotateRefreshSrc)

	//go:embed revoke_family.lua
	revokeFamilySrc    string
	revokeFamilyScript = redis.NewScript(revokeFamilySrc)
)

// Refresh tokens are "<family>.<secret>": 128 random bits naming the family
// (so that a token's keys share the family's hash tag) and 256 more.
const (
	familyLen = 22 // 16 bytes, base64url
	secretLen = 43 // 32 bytes, base64url
)

// NewFamilyID returns a new random family id.
func NewFamilyID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func newRefreshToken(fam string) string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return fam + "." + base64.RawURLEncoding.EncodeToString(b[:])
}

// parseRefresh returns the family of a well-formed token and its hash.
func parseRefresh(token string) (fam, hash string, ok bool) {
	fam, secret, found := strings.Cut(token, ".")
	if !found || len(fam) != familyLen || len(secret) != secretLen || !base64url(fam) || !base64url(secret) {
		return "", "", false
	}
	sum := sha256.Sum256([]byte(token))
	return fam, hex.EncodeToString(sum[:]), true
}

func base64url(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// CreateRefresh starts a new family and issues its first token. Atomic
// (MULTI/EXEC on one slot).
func (s *Store) CreateRefresh(ctx context.Context, sess Session, ttl time.Duration) (IssuedRefresh, error) {
	return s.CreateRefreshInFamily(ctx, NewFamilyID(), sess, ttl)
}

// CreateRefreshInFamily is CreateRefresh with a family id chosen by the
// caller (NewFamilyID), for callers that must record the family before the
// token exists (an authorization code remembers the family it started).
func (s *Store) CreateRefreshInFamily(ctx context.Context, fam string, sess Session, ttl time.Duration) (IssuedRefresh, error) {
	token := newRefreshToken(fam)
	_, hash, _ := parseRefresh(token)
	famKey, tokKey := s.keys.family(fam), s.keys.refresh(fam, hash)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, famKey, "user", sess.UserID, "client", sess.ClientID, "scope", sess.Scope,
			"auth_time", sess.AuthTime, "revoked", "0")
		p.PExpire(ctx, famKey, ttl)
		p.HSet(ctx, tokKey, "state", "active")
		p.PExpire(ctx, tokKey, ttl)
		return nil
	})
	if err != nil {
		return IssuedRefresh{}, wrap("create refresh token", err)
	}
	return IssuedRefresh{Token: token, FamilyID: fam, ExpiresAt: time.Now().Add(ttl)}, nil
}

// RotateRefresh atomically (one Lua script) consumes token and issues its
// successor in the same family:
//   - an unknown, malformed or expired token is ErrNotFound;
//   - a token of a revoked family is ErrRevoked;
//   - a token consumed less than grace ago gets a fresh successor anyway
//     (two parallel refreshes from one client);
//   - a token consumed longer ago revokes the whole family: ErrReused.
//
// The Session is returned with ErrReused and ErrRevoked too, for logging.
func (s *Store) RotateRefresh(ctx context.Context, token string, ttl, grace time.Duration) (IssuedRefresh, Session, error) {
	fam, hash, ok := parseRefresh(token)
	if !ok {
		return IssuedRefresh{}, Session{}, ErrNotFound
	}
	next := newRefreshToken(fam)
	_, nextHash, _ := parseRefresh(next)
	res, err := rotateRefreshScript.Run(ctx, s.rdb,
		[]string{s.keys.family(fam), s.keys.refresh(fam, hash), s.keys.refresh(fam, nextHash)},
		time.Now().UnixMilli(), grace.Milliseconds(), ttl.Milliseconds()).Slice()
	if err != nil {
		return IssuedRefresh{}, Session{}, wrap("rotate refresh token", err)
	}
	code, _ := res[0].(int64)
	var sess Session
	if len(res) == 5 {
		sess.UserID, _ = res[1].(string)
		sess.ClientID, _ = res[2].(string)
		sess.Scope, _ = res[3].(string)
		at, _ := res[4].(string)
		sess.AuthTime, _ = strconv.ParseInt(at, 10, 64)
	}
	switch code {
	case 1:
		return IssuedRefresh{Token: next, FamilyID: fam, ExpiresAt: time.Now().Add(ttl)}, sess, nil
	case -2:
		return IssuedRefresh{}, sess, ErrRevoked
	case -3:
		return IssuedRefresh{}, sess, ErrReused
	case -1:
		return IssuedRefresh{}, Session{}, ErrNotFound
	default:
		return IssuedRefresh{}, Session{}, fmt.Errorf("rotate refresh token: unexpected script result %v", res)
	}
}

// RevokeRefresh revokes the family of token. Idempotent: unknown or
// malformed tokens are not an error.
func (s *Store) RevokeRefresh(ctx context.Context, token string) error {
	fam, _, ok := parseRefresh(token)
	if !ok {
		return nil
	}
	return s.RevokeFamily(ctx, fam)
}

// RevokeFamily revokes a family by id. Idempotent.
func (s *Store) RevokeFamily(ctx context.Context, fam string) error {
	err := revokeFamilyScript.Run(ctx, s.rdb, []string{s.keys.family(fam)}).Err()
	return wrap("revoke refresh family", err)
}

// FamilyActive reports whether a family exists and is not revoked: one
// round trip (the bearer-token revocation hook).
func (s *Store) FamilyActive(ctx context.Context, fam string) (bool, error) {
	v, err := s.rdb.HGet(ctx, s.keys.family(fam), "revoked").Result()
	if err != nil {
		if err = wrap("family active", err); err == ErrNotFound {
			return false, nil
		}
		return false, err
	}
	return v == "0", nil
}
