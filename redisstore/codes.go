package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed create_code.lua
	createCodeSrc    string
	createCodeScript = redis.NewScript(createCodeSrc)

	//go:embed exchange_code.lua
	exchangeCodeSrc    string
	exchangeCodeScript = familyScript(exchangeCodeSrc)
)

// Errors of ExchangeCode besides ErrNotFound. None burns the code.
var (
	// ErrCodeReused: the code was already exchanged. The refresh-token
	// family it started has been revoked with it (RFC 6749 §4.1.2).
	ErrCodeReused = errors.New("redisstore: authorization code reused")
	// ErrRedirectMismatch: the exchange names another redirect URI than
	// the code was issued for.
	ErrRedirectMismatch = errors.New("redisstore: redirect URI mismatch")
	// ErrVerifierMismatch: the PKCE verifier is missing or wrong, or one was
	// sent for a code issued without a challenge.
	ErrVerifierMismatch = errors.New("redisstore: PKCE verifier mismatch")
)

// AuthCode is what an authorization code stands for.
type AuthCode struct {
	UserID      string
	ClientID    string
	RedirectURI string
	Scope       string
	// PKCE (RFC 7636): the challenge as sent, and its method; both empty
	// when the code was issued without one.
	Challenge, ChallengeMethod string
	// FamilyID is the refresh-token family the exchange starts
	// (NewFamilyID), chosen up front: the code names it, and a replay of the
	// code revokes it.
	FamilyID string
	IssuedAt time.Time // Redis' clock, whole seconds
}

// CodeCheck is what an exchange presents besides the code itself.
type CodeCheck struct {
	ClientID    string
	RedirectURI string
	// Challenge is the PKCE transform of the exchange's verifier
	// (BASE64URL(SHA256(verifier))), or "" when none was sent. It must
	// equal the stored challenge: both empty, or both the same.
	Challenge string
	// JKT binds the family the exchange starts to a DPoP key ("" for none).
	JKT string
}

// parseCode returns the family of a well-formed code and the code's hash;
// ok is false for anything tokend did not make. A code has a refresh
// token's shape, "<fam>.<secret>": the id of the family its exchange starts
// (so that the code's key and the family's share a hash tag) and 256 random
// bits, base64url without padding (well above RFC 6749's 128).
func parseCode(code string) (fam, hash string, ok bool) { return parseRefresh(code) }

// CreateCode stores a new authorization code for c, living for ttl, and
// returns it. The code names c.FamilyID; only its SHA-256 is stored, as the
// key's name. Atomic (one script).
func (s *Store) CreateCode(ctx context.Context, c AuthCode, ttl time.Duration) (string, error) {
	if ttl < time.Millisecond {
		return "", errors.New("redisstore: authorization code lifetime must be at least 1ms")
	}
	if !validFamily(c.FamilyID) {
		return "", fmt.Errorf("redisstore: malformed family id %q", c.FamilyID)
	}
	code, hash := newRefreshToken(c.FamilyID)
	n, err := s.run(ctx, createCodeScript, []string{s.keys.code(c.FamilyID, hash)},
		c.UserID, c.ClientID, c.RedirectURI, c.Scope, c.Challenge, c.ChallengeMethod,
		ttl.Milliseconds()).Int()
	if err != nil {
		return "", wrap("create authorization code", err)
	}
	if n != 1 {
		return "", errors.New("redisstore: create authorization code: code collision")
	}
	return code, nil
}

// ExchangeCode redeems code exactly once and starts the refresh-token
// family it names, with a first token living for refreshTTL: of any number
// of concurrent calls with the same code, one gets its AuthCode and the
// token. Atomic (one script on one slot), checks included:
//   - an unknown, malformed or expired code, or one issued to another
//     client, is ErrNotFound;
//   - another redirect URI is ErrRedirectMismatch, a PKCE failure
//     ErrVerifierMismatch; neither consumes the code;
//   - a code already exchanged is ErrCodeReused, and the family its
//     exchange started is revoked in the same script; the AuthCode returned
//     carries that FamilyID, for logs. The used code is kept until its
//     original expiry to recognise replays.
//
// The family's session is the code's: its user, client and scope, and the
// code's issue time as auth_time.
func (s *Store) ExchangeCode(ctx context.Context, code string, check CodeCheck, refreshTTL time.Duration) (AuthCode, IssuedRefresh, error) {
	fam, hash, ok := parseCode(code)
	if !ok {
		return AuthCode{}, IssuedRefresh{}, ErrNotFound
	}
	if refreshTTL < time.Millisecond {
		return AuthCode{}, IssuedRefresh{}, errBadTTL
	}
	token, tokenHash := newRefreshToken(fam)
	res, err := s.run(ctx, exchangeCodeScript,
		[]string{s.keys.code(fam, hash), s.keys.family(fam), s.keys.refresh(fam, tokenHash)},
		check.ClientID, check.RedirectURI, check.Challenge, refreshTTL.Milliseconds(), check.JKT).Slice()
	if err != nil {
		return AuthCode{}, IssuedRefresh{}, wrap("exchange authorization code", err)
	}
	status, _ := res[0].(int64)
	str := func(i int) string {
		if i < len(res) {
			v, _ := res[i].(string)
			return v
		}
		return ""
	}
	switch status {
	case 1:
		issued, _ := strconv.ParseInt(str(3), 10, 64)
		return AuthCode{
				UserID: str(1), ClientID: check.ClientID, RedirectURI: check.RedirectURI, Scope: str(2),
				Challenge: check.Challenge, ChallengeMethod: str(4), FamilyID: fam, IssuedAt: time.Unix(issued, 0),
			}, IssuedRefresh{
				Token: token, FamilyID: fam, ExpiresAt: time.Now().Add(refreshTTL),
			}, nil
	case -1:
		return AuthCode{}, IssuedRefresh{}, ErrNotFound
	case -2:
		return AuthCode{}, IssuedRefresh{}, ErrRedirectMismatch
	case -3:
		return AuthCode{}, IssuedRefresh{}, ErrVerifierMismatch
	case -4:
		return AuthCode{FamilyID: fam}, IssuedRefresh{}, ErrCodeReused
	case -5:
		return AuthCode{}, IssuedRefresh{}, errors.New("redisstore: exchange authorization code: family id already in use")
	default:
		return AuthCode{}, IssuedRefresh{}, fmt.Errorf("redisstore: exchange authorization code: unexpected script result %v", res)
	}
}
