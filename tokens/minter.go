package tokens

import (
	"crypto/rand"
	"encoding/base64"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Minter signs access tokens: it fills in the claims every token carries
// (iss, iat, exp, jti) and leaves the rest to the caller.
type Minter struct {
	keys   *KeySet
	issuer string
	now    func() time.Time
}

// NewMinter returns a Minter signing with keys' signer as issuer.
func NewMinter(keys *KeySet, issuer string) *Minter {
	return &Minter{keys: keys, issuer: issuer, now: time.Now}
}

// Issuer is the iss of every token the Minter signs.
func (m *Minter) Issuer() string { return m.issuer }

// Mint signs c, valid for ttl from now. A zero ttl means no expiry (only M2M
// clients configured for it get such tokens). It returns the token and its
// expiry (zero when none).
func (m *Minter) Mint(c *Claims, ttl time.Duration) (string, time.Time, error) {
	now := m.now().Truncate(time.Second)
	c.Issuer = m.issuer
	c.IssuedAt = jwt.NewNumericDate(now)
	var exp time.Time
	if ttl > 0 {
		exp = now.Add(ttl)
		c.ExpiresAt = jwt.NewNumericDate(exp)
	}
	if c.ID == "" {
		c.ID = newID()
	}
	tok, err := m.keys.Sign(c)
	return tok, exp, err
}

// newID returns 128 random bits, base64url: a jti.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}
