package handlers

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/config"
	authpb "github.com/tokend/tokend/gen/auth"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
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
	sessions := NewSessions(store, tokens.NewMinter(ks, "http://bench"), SessionPolicy{AccessTTL: 15 * time.Minute, RefreshTTL: time.Hour})
	login := LoginPolicy{MaxFailures: 1 << 30, MaxFailuresPerUser: 1 << 30, Window: time.Minute}
	return NewAuthV1(sessions, store, login, users, NewClients(nil, nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
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

// BenchmarkExchangeToken is ExchangeToken with a fresh code per call and a
// client secret (argon2id) already in the verified-secret cache: the code's
// Lua consume, a new refresh family, the replay check and an EdDSA
// signature. The codes are made before the timer starts.
func BenchmarkExchangeToken(b *testing.B) {
	v1 := benchAuthV1(b)
	store := v1.sessions.store.(*redisstore.Store)
	secretHash, err := passhash.Hash("bench-client-secret")
	if err != nil {
		b.Fatal(err)
	}
	clients := NewClients([]config.Client{{ID: "1001", SecretHash: secretHash, RedirectURIs: []string{"https://app.example/cb"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"read"}}}, passhash.NewSecretCache(100, time.Hour))
	h := NewAuth(store, v1.sessions, clients, v1.users, time.Hour, v1.log)
	ctx := context.Background()

	codes := make([]string, b.N+1)
	var wg sync.WaitGroup
	var failed atomic.Bool
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < len(codes); i += 16 {
				c, err := store.CreateCode(ctx, redisstore.AuthCode{UserID: "1", ClientID: "1001", RedirectURI: "https://app.example/cb",
					Scope: "read", FamilyID: redisstore.NewFamilyID()}, time.Hour)
				if err != nil {
					failed.Store(true)
				}
				codes[i] = c
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		b.Fatal("creating codes failed")
	}
	exchange := func(code string) error {
		_, err := h.ExchangeToken(ctx, connect.NewRequest(&authpb.ExchangeTokenRequest{
			Code: code, ClientId: 1001, ClientSecret: "bench-client-secret", RedirectUri: "https://app.example/cb"}))
		return err
	}
	if err := exchange(codes[b.N]); err != nil { // warms the secret cache
		b.Fatal(err)
	}
	var next atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := exchange(codes[next.Add(1)-1]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkM2MCreateToken issues M2M tokens with a client secret that the
// verified-secret cache already holds: one signature and one Redis round
// trip (record, index and owner set) per token.
func BenchmarkM2MCreateToken(b *testing.B) {
	v1 := benchAuthV1(b) // for its store, minter and logger
	store := v1.sessions.store.(*redisstore.Store)
	hash, err := passhash.Hash("bench-m2m-secret")
	if err != nil {
		b.Fatal(err)
	}
	clients := NewClients([]config.Client{{ID: "bench-m2m", SecretHash: hash, GrantTypes: []string{"client_credentials"},
		Owner: "bench-owner", Audiences: []string{"api"}, Scopes: []string{"read", "write"},
		AccessTokenLifetime: config.Duration(time.Hour)}}, passhash.NewSecretCache(100, time.Hour))
	clients.Limit(ClientLimit{Limiter: store, MaxFailures: 10, Window: time.Minute, Log: v1.log})
	h := NewM2M(store, clients, nil, v1.sessions.minter, v1.log)
	req := func() *connect.Request[m2mpb.CreateTokenRequest] {
		return connect.NewRequest(&m2mpb.CreateTokenRequest{GrantType: "client_credentials", ClientId: "bench-m2m",
			ClientSecret: "bench-m2m-secret", Audience: []string{"api"}})
	}
	if _, err := h.CreateToken(context.Background(), req()); err != nil { // warm the cache
		b.Fatal(err)
	}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.CreateToken(context.Background(), req()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
