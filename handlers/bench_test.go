package handlers

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/config"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	"github.com/tokend/tokend/passhash"
	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/redisstore/redistest"
	"github.com/tokend/tokend/tokens"
)

func benchAuthV1(b *testing.B) *AuthV1 {
	b.Helper()
	srv := redistest.Start(b)
	store, err := redisstore.Open(context.Background(), srv.URL, redisstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	key, _ := tokens.GenerateKey("EdDSA")
	ks, _ := tokens.NewKeySet(key)
	hash, err := passhash.Hash("bench-password") // argon2id, tokend's default
	if err != nil {
		b.Fatal(err)
	}
	users := NewUsers([]config.User{{ID: 1, Username: "bench", PasswordHash: hash}})
	policy := SessionPolicy{AccessTTL: 15 * time.Minute, RefreshTTL: time.Hour, MaxFailures: 1 << 30, Window: time.Minute}
	return NewAuthV1(store, store, users, NewMinter(ks, "http://bench"), policy, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func loginRequest() *connect.Request[authv1.TokenRequest] {
	return connect.NewRequest(&authv1.TokenRequest{Credential: &authv1.TokenRequest_PasswordCredential{
		PasswordCredential: &authv1.PasswordCredential{Username: "bench", Password: "bench-password"},
	}})
}

// BenchmarkLogin is a whole password login: throttle counters, argon2id,
// a new refresh family and a signed access token. Run with -cpuprofile to
// see the share of the password hash (README, Performance).
func BenchmarkLogin(b *testing.B) {
	h := benchAuthV1(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Token(ctx, loginRequest()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefreshToken is a rotation: one Lua script round trip and one
// EdDSA signature.
func BenchmarkRefreshToken(b *testing.B) {
	h := benchAuthV1(b)
	ctx := context.Background()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		first, err := h.Token(ctx, loginRequest())
		if err != nil {
			b.Fatal(err)
		}
		cur := first.Msg.RefreshToken
		for pb.Next() {
			r, err := h.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: cur}))
			if err != nil {
				b.Fatal(err)
			}
			cur = r.Msg.RefreshToken
		}
	})
}
