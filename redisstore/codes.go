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

	//go:embed consume_code.lua
	consumeCodeSrc    string
	consumeCodeScript = redis.NewScript(consumeCodeSrc)
)

// Errors of ConsumeCode besides ErrNotFound. Neither burns the code.
var (
	// ErrCodeReused: the code was already exchanged. The refresh-token
	// family it started should be revoked (RFC 6749 §4.1.2).
	ErrCodeReused = errors.New("redisstore: authorization code reused")
	// ErrRedirectMismatch: the exchange names another redirect URI than
	// the code was issued for.
	ErrRedirectMismatch = errors.New("redisstore: redirect URI mismatch")
	// ErrVerifierMismatch: the PKCE verifier is missing or wrong, or one was
	// sent for a code issued without a challenge.
	ErrVerifierMismatch = errors.New("redisstore: PKCE verifier mismatch")
)

// codeLen is the length of an authorization code: 32 random bytes,
// base64url without padding (256 bits, well above RFC 6749's 128).
const codeLen = 43

// AuthCode is what an authorization code stands for.
type AuthCode struct {
	UserID      string
	ClientID    string
	RedirectURI string
	Scope       string
	// PKCE (RFC 7636): the challenge as sent, and its method; both empty
	// when the code was issued without one.
	Challenge, ChallengeMethod string
	// FamilyID is the refresh-token family the exchange will start
	// (NewFamilyID), chosen up front so that a replay can revoke it.
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
}

// CreateCode stores a new authorization code for c, living for ttl, and
// returns it. Only the code's SHA-256 is stored, as the key's name. Atomic
// (one script).
func (s *Store) CreateCode(ctx context.Context, c AuthCode, ttl time.Duration) (string, error) {
	if ttl < time.Millisecond {
		return "", errors.New("redisstore: authorization code lifetime must be at least 1ms")
	}
	if !validFamily(c.FamilyID) {
		return "", fmt.Errorf("redisstore: malformed family id %q", c.FamilyID)
	}
	code := randomB64(32)
	n, err := s.run(ctx, createCodeScript, []string{s.keys.code(hashToken(code))},
		c.UserID, c.ClientID, c.RedirectURI, c.Scope, c.Challenge, c.ChallengeMethod, c.FamilyID,
		ttl.Milliseconds()).Int()
	if err != nil {
		return "", wrap("create authorization code", err)
	}
	if n != 1 {
		return "", errors.New("redisstore: create authorization code: code collision")
	}
	return code, nil
}

// ConsumeCode redeems code exactly once: of any number of concurrent calls
// with the same code, one gets its AuthCode. Atomic (one script), checks
// included:
//   - an unknown, malformed or expired code, or one issued to another
//     client, is ErrNotFound;
//   - another redirect URI is ErrRedirectMismatch, a PKCE failure
//     ErrVerifierMismatch; neither consumes the code;
//   - a code already consumed is ErrCodeReused, returned with the AuthCode's
//     FamilyID so that the caller revokes that family. The used code is kept
//     until its original expiry to recognise replays.
func (s *Store) ConsumeCode(ctx context.Context, code string, check CodeCheck) (AuthCode, error) {
	if len(code) != codeLen || !base64url(code) {
		return AuthCode{}, ErrNotFound
	}
	res, err := s.run(ctx, consumeCodeScript, []string{s.keys.code(hashToken(code))},
		check.ClientID, check.RedirectURI, check.Challenge).Slice()
	if err != nil {
		return AuthCode{}, wrap("consume authorization code", err)
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
		issued, _ := strconv.ParseInt(str(4), 10, 64)
		return AuthCode{
			UserID: str(1), ClientID: check.ClientID, RedirectURI: check.RedirectURI, Scope: str(2),
			Challenge: check.Challenge, ChallengeMethod: str(5), FamilyID: str(3), IssuedAt: time.Unix(issued, 0),
		}, nil
	case -1:
		return AuthCode{}, ErrNotFound
	case -2:
		return AuthCode{}, ErrRedirectMismatch
	case -3:
		return AuthCode{}, ErrVerifierMismatch
	case -4:
		return AuthCode{FamilyID: str(1)}, ErrCodeReused
	default:
		return AuthCode{}, fmt.Errorf("redisstore: consume authorization code: unexpected script result %v", res)
	}
}

// CodeReplayed reports whether code was presented again after it was
// consumed. The exchange that consumed it asks once it has started its
// refresh-token family: a replay that came in between found no family to
// revoke, so the first exchange revokes its own. One HGET.
func (s *Store) CodeReplayed(ctx context.Context, code string) (bool, error) {
	if len(code) != codeLen || !base64url(code) {
		return false, nil
	}
	v, err := s.rdb.HGet(ctx, s.keys.code(hashToken(code)), "replayed").Result()
	if err = wrap("code replayed", err); err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	return v == "1", nil
}
