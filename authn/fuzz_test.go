package authn

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/authz"
	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/tokens"
)

// FuzzAuthenticate feeds arbitrary Authorization header values to the bearer
// check with a real verifier. Whatever the input, the check must not panic,
// must answer unauthenticated when it refuses, and may accept only the one
// header that carries the genuine token unchanged (up to the scheme's case
// and surrounding blanks): any other byte string is a forgery.
func FuzzAuthenticate(f *testing.F) {
	key, err := tokens.GenerateKey("EdDSA")
	if err != nil {
		f.Fatal(err)
	}
	ks, err := tokens.NewKeySet(key)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	good, err := ks.Sign(&tokens.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    "https://tokend.example",
			Subject:   "7",
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        "jti-fuzz",
			Audience:  jwt.ClaimStrings{"https://tokend.example"},
		},
		Kind: tokens.KindUser, SessionID: "sid", ClientID: authz.FirstPartyClientID,
	})
	if err != nil {
		f.Fatal(err)
	}
	m := NewMiddleware(tokens.NewVerifier(ks, "https://tokend.example"), "https://tokend.example",
		func(*tokens.Claims) (redisstore.Gate, bool, error) { return nil, false, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))

	f.Add("Bearer " + good)
	f.Add("bearer " + good)
	f.Add("Bearer " + good + "x")
	f.Add("Bearer " + strings.Replace(good, ".", "..", 1))
	f.Add("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiI3In0.")
	f.Add("Bearer ")
	f.Add("Basic dXNlcjpwYXNz")
	f.Add("")
	f.Fuzz(func(t *testing.T, header string) {
		caller, err := m.authorize(context.Background(), authz.ListAPITokens, header)
		if err != nil {
			if caller != nil {
				t.Fatal("caller returned with an error")
			}
			if code := connect.CodeOf(err); code != connect.CodeUnauthenticated {
				t.Fatalf("refused with %v, want unauthenticated", code)
			}
			return
		}
		raw, _ := BearerToken(header)
		if raw != good {
			t.Fatalf("accepted a token that is not the one signed: %q", header)
		}
		if caller.Owner != "7" || caller.Claims.ID != "jti-fuzz" || caller.Kind != authz.FirstParty {
			t.Fatalf("accepted with wrong caller %+v", caller)
		}
	})
}
