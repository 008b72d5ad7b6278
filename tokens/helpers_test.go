package tokens

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testIssuer = "https://tokend.example"

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func now() time.Time { return testNow }

// testClaims are the claims of a user token issued at t and living 15 minutes.
func testClaims(t time.Time) *Claims {
	return &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    testIssuer,
			Subject:   "42",
			Audience:  jwt.ClaimStrings{"api"},
			ExpiresAt: jwt.NewNumericDate(t.Add(15 * time.Minute)),
			IssuedAt:  jwt.NewNumericDate(t),
			ID:        "jti-1",
		},
		ClientID:  "1001",
		Scope:     "profile read",
		Kind:      KindUser,
		SessionID: "fam-1",
	}
}

var (
	testKeysMu sync.Mutex
	testKeys   = map[string]*Key{}
)

// testKey returns the i-th test key of alg, generated once per test binary (RSA generation is slow).
func testKey(tb testing.TB, alg string, i int) *Key {
	tb.Helper()
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	name := fmt.Sprintf("%s/%d", alg, i)
	if k := testKeys[name]; k != nil {
		return k
	}
	k, err := GenerateKey(alg)
	if err != nil {
		tb.Fatal(err)
	}
	testKeys[name] = k
	return k
}

func mustKeySet(tb testing.TB, keys ...*Key) *KeySet {
	tb.Helper()
	ks, err := NewKeySet(keys...)
	if err != nil {
		tb.Fatal(err)
	}
	return ks
}

func mustSign(tb testing.TB, ks *KeySet, c *Claims) string {
	tb.Helper()
	tok, err := ks.Sign(c)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

var algs = []string{AlgEdDSA, AlgES256, AlgRS256}
