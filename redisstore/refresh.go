package redisstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
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
	Created  int64  // unix seconds the family was created (set by RotateRefresh)
	// JKT is the thumbprint of the DPoP key the family is bound to ("" for none): its refresh
	// tokens are good only with a proof of that key.
	JKT string
}

// Rotation is how RotateRefresh rotates.
type Rotation struct {
	TTL         time.Duration // the successor's lifetime
	Grace       time.Duration // a consumed token may be presented again this long
	MaxReplays  int           // ... this many times
	MaxLifetime time.Duration // no rotation takes the session past its creation plus this (0: no limit)
}

// IssuedRefresh is a refresh token just issued. Token is shown to the client
// once; only its SHA-256 is stored.
type IssuedRefresh struct {
	// Token is "<family id>.<secret>": 128 random bits naming the family
	// (so that the token's keys share the family's hash tag) and 256 more,
	// base64url without padding.
	Token     string
	FamilyID  string
	ExpiresAt time.Time
}

// familyLua is the fragment that writes a new refresh-token family
// (family.lua): the one place its layout is written.
//
//go:embed family.lua
var familyLua string

// familyScript is a script that starts families: src with family.lua's
// start_family defined before it.
func familyScript(src string) *redis.Script { return redis.NewScript(familyLua + src) }

var (
	//go:embed create_refresh.lua
	createRefreshSrc    string
	createRefreshScript = familyScript(createRefreshSrc)

	//go:embed rotate_refresh.lua
	rotateRefreshSrc    string
	rotateRefreshScript = redis.NewScript(rotateRefreshSrc)

	//go:embed revoke_refresh.lua
	revokeRefreshSrc    string
	revokeRefreshScript = redis.NewScript(revokeRefreshSrc)

	//go:embed revoke_family.lua
	revokeFamilySrc    string
	revokeFamilyScript = redis.NewScript(revokeFamilySrc)
)

const (
	familyLen = 22 // 16 random bytes, base64url
	secretLen = 43 // 32 random bytes, base64url
)

var errBadTTL = errors.New("redisstore: refresh token lifetime must be at least 1ms")

// NewFamilyID returns a new random refresh-token family id, for CreateCode
// (an authorization code names the family its exchange starts).
func NewFamilyID() string { return randomB64(16) }

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func newRefreshToken(fam string) (token, hash string) {
	token = fam + "." + randomB64(32)
	return token, hashToken(token)
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// parseRefresh returns the family of a well-formed token and the token's
// hash; ok is false for anything tokend did not make.
func parseRefresh(token string) (fam, hash string, ok bool) {
	fam, secret, found := strings.Cut(token, ".")
	if !found || len(secret) != secretLen || !validFamily(fam) || !base64url(secret) {
		return "", "", false
	}
	return fam, hashToken(token), true
}

func validFamily(fam string) bool { return len(fam) == familyLen && base64url(fam) }

func base64url(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// CreateRefresh starts a new family for sess and issues its first token,
// which lives for ttl; so does the family record. Atomic (one script). Only
// the SHA-256 of the token is stored.
func (s *Store) CreateRefresh(ctx context.Context, sess Session, ttl time.Duration) (IssuedRefresh, error) {
	if ttl < time.Millisecond {
		return IssuedRefresh{}, errBadTTL
	}
	fam := NewFamilyID()
	token, hash := newRefreshToken(fam)
	n, err := s.run(ctx, createRefreshScript, []string{s.keys.family(fam), s.keys.refresh(fam, hash)},
		sess.UserID, sess.ClientID, sess.Scope, sess.AuthTime, ttl.Milliseconds(), sess.JKT).Int()
	if err != nil {
		return IssuedRefresh{}, wrap("create refresh token", err)
	}
	if n != 1 {
		return IssuedRefresh{}, errors.New("redisstore: create refresh token: family id already in use")
	}
	return IssuedRefresh{Token: token, FamilyID: fam, ExpiresAt: time.Now().Add(ttl)}, nil
}

// RotateRefresh atomically (one Lua script) consumes token and issues its
// successor in the same family:
//   - an unknown, malformed or expired token, or one whose session is past
//     its absolute lifetime, is ErrNotFound;
//   - a token of a revoked family is ErrRevoked;
//   - a token consumed less than r.Grace ago, at most r.MaxReplays times and
//     while none of its successors has been used, gets a fresh successor
//     anyway (parallel refreshes from one client);
//   - any other consumed token, or a successor whose sibling was used first
//     (the family never forks), revokes the whole family: ErrReused.
//
// The successor lives r.TTL, cut to what is left of the session's
// r.MaxLifetime; the family record lives as long as its newest token. Time
// is measured on Redis' clock. With ErrRevoked and ErrReused the family's
// Session is returned too, for logs.
func (s *Store) RotateRefresh(ctx context.Context, token string, r Rotation) (IssuedRefresh, Session, error) {
	fam, hash, ok := parseRefresh(token)
	if !ok {
		return IssuedRefresh{}, Session{}, ErrNotFound
	}
	if r.TTL < time.Millisecond {
		return IssuedRefresh{}, Session{}, errBadTTL
	}
	next, nextHash := newRefreshToken(fam)
	res, err := s.run(ctx, rotateRefreshScript,
		[]string{s.keys.family(fam), s.keys.refresh(fam, hash), s.keys.refresh(fam, nextHash)},
		max(r.Grace.Milliseconds(), 0), r.TTL.Milliseconds(), max(r.MaxLifetime.Milliseconds(), 0), max(r.MaxReplays, 0)).Slice()
	if err != nil {
		return IssuedRefresh{}, Session{}, wrap("rotate refresh token", err)
	}
	code, _ := res[0].(int64)
	var sess Session
	if len(res) >= 5 {
		sess.UserID, _ = res[1].(string)
		sess.ClientID, _ = res[2].(string)
		sess.Scope, _ = res[3].(string)
		at, _ := res[4].(string)
		sess.AuthTime, _ = strconv.ParseInt(at, 10, 64)
	}
	if len(res) >= 6 {
		created, _ := res[5].(string)
		sess.Created, _ = strconv.ParseInt(created, 10, 64)
	}
	if len(res) >= 7 {
		sess.JKT, _ = res[6].(string)
	}
	switch code {
	case 1:
		exp := time.Now().Add(r.TTL)
		if end := sess.End(r.MaxLifetime); !end.IsZero() && end.Before(exp) {
			exp = end
		}
		return IssuedRefresh{Token: next, FamilyID: fam, ExpiresAt: exp}, sess, nil
	case -1:
		return IssuedRefresh{}, Session{}, ErrNotFound
	case -2:
		return IssuedRefresh{}, sess, ErrRevoked
	case -3:
		return IssuedRefresh{}, sess, ErrReused
	default:
		return IssuedRefresh{}, Session{}, fmt.Errorf("redisstore: rotate refresh token: unexpected script result %v", res)
	}
}

// End is when a session created at sess.Created ends under an absolute
// lifetime of maxLifetime; zero when either is unknown or none.
func (sess Session) End(maxLifetime time.Duration) time.Time {
	if sess.Created == 0 || maxLifetime <= 0 {
		return time.Time{}
	}
	return time.Unix(sess.Created, 0).Add(maxLifetime)
}

// RevokeRefresh revokes the family of token, if token is one of the family's
// real tokens (a family id alone, visible as sid in access tokens, is not
// enough). Idempotent: unknown, expired or malformed tokens are not an
// error. Atomic (one script).
func (s *Store) RevokeRefresh(ctx context.Context, token string) error {
	fam, hash, ok := parseRefresh(token)
	if !ok {
		return nil
	}
	err := s.revoke(ctx, revokeRefreshScript, []string{s.keys.family(fam), s.keys.refresh(fam, hash)}).Err()
	return wrap("revoke refresh token", err)
}

// RevokeFamily revokes the family familyID: every token of it is refused
// with ErrRevoked from now on. Idempotent: unknown or malformed ids are not
// an error. Atomic (one script).
func (s *Store) RevokeFamily(ctx context.Context, familyID string) error {
	if !validFamily(familyID) {
		return nil
	}
	err := s.revoke(ctx, revokeFamilyScript, []string{s.keys.family(familyID)}).Err()
	return wrap("revoke refresh family", err)
}

// RefreshClient returns the client a refresh token's family was issued to
// ("" for first-party sign-ins), or ErrNotFound when the token is malformed
// or its family is gone.
func (s *Store) RefreshClient(ctx context.Context, token string) (string, error) {
	fam, _, ok := parseRefresh(token)
	if !ok {
		return "", ErrNotFound
	}
	client, err := do(ctx, s, func(p redis.Pipeliner) *redis.StringCmd { return p.HGet(ctx, s.keys.family(fam), "client") })
	if err != nil {
		return "", wrap("read refresh family", err)
	}
	return client.Val(), nil
}
