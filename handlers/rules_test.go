package handlers

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokend/tokend/authn"
	"github.com/tokend/tokend/authz"
	"github.com/tokend/tokend/config"
	authpb "github.com/tokend/tokend/gen/auth"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	tsv1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
	"github.com/tokend/tokend/passhash"
	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/tokens"
)

// The handlers' rules, called directly over an embedded miniredis store:
// each case is a request and the code its error is answered with.

const (
	rulesPassword = "correct horse"
	rulesSecret   = "client-secret"
	rulesRedirect = "https://app.example/cb"
	// rulesVerifier and rulesChallenge are a PKCE pair (RFC 7636 appendix B).
	rulesVerifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	rulesChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

type rules struct {
	store    *redisstore.Store
	users    *Users
	clients  *Clients
	sessions *Sessions
	login    *AuthV1
	codes    *Auth
	api      *TokenService
	m2m      *M2M
}

// newRules builds the services over a fresh embedded store: user 7 (ada),
// a confidential code client 1001, a public code client 1002, an M2M
// client svc owned by 7 and an M2M client ownerless.
func newRules(t *testing.T, synced bool) *rules {
	t.Helper()
	ctx := context.Background()
	store, err := redisstore.Open(ctx, "", redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	pw, err := passhash.Hash(rulesPassword)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := passhash.Hash(rulesSecret)
	if err != nil {
		t.Fatal(err)
	}
	m2mLife := config.Duration(time.Hour)
	users := NewUsers([]config.User{{ID: 7, Username: "ada", PasswordHash: pw}})
	clients := NewClients([]config.Client{
		{ID: "1001", SecretHash: secret, RedirectURIs: []string{rulesRedirect}, Scopes: []string{"read"},
			GrantTypes: []string{config.GrantAuthorizationCode, config.GrantRefreshToken}},
		{ID: "1002", RedirectURIs: []string{rulesRedirect}, Scopes: []string{"read"},
			GrantTypes: []string{config.GrantAuthorizationCode, config.GrantRefreshToken}},
		{ID: "1003", SecretHash: secret, RedirectURIs: []string{rulesRedirect}, GrantTypes: []string{config.GrantPassword}},
		{ID: "svc", SecretHash: secret, Owner: "7", Audiences: []string{"api"}, Scopes: []string{"read"},
			GrantTypes: []string{config.GrantClientCredentials}, AccessTokenLifetime: m2mLife},
		{ID: "ownerless", SecretHash: secret, Audiences: []string{"api"},
			GrantTypes: []string{config.GrantClientCredentials}, AccessTokenLifetime: m2mLife},
	}, passhash.NewSecretCache(100, time.Hour))
	if synced {
		users.SetComebacks(map[string]time.Time{})
		clients.SetComebacks(map[string]time.Time{})
	}
	key, err := tokens.GenerateKey(tokens.AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := tokens.NewKeySet(key)
	if err != nil {
		t.Fatal(err)
	}
	minter := tokens.NewMinter(ks, "http://tokend.test")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sessions := NewSessions(store, minter, SessionPolicy{AccessTTL: time.Minute, RefreshTTL: time.Hour, ReuseGrace: 0})
	r := &rules{store: store, users: users, clients: clients, sessions: sessions}
	r.login = NewAuthV1(sessions, store, LoginPolicy{MaxFailures: 1000, MaxFailuresPerUser: 1000, Window: time.Minute}, users, clients, log)
	r.codes = NewAuth(store, sessions, clients, users, time.Minute, log)
	r.api = NewTokenService(store, users, minter, APITokenPolicy{AccessTTL: time.Minute, MaxPerOwner: 2}, log)
	r.m2m = NewM2M(store, clients, NewAssertions(tokens.NewVerifier(ks, "http://tokend.test"), "http://tokend.test", nil, store, nil), minter, log)
	return r
}

// asUser is a context whose caller is user 7's own sign-in session.
func asUser(id string) context.Context {
	return authn.WithCaller(context.Background(), &authn.Caller{Principal: authz.Principal{Kind: authz.FirstParty, Owner: id}})
}

type ruleCase struct {
	name string
	call func(r *rules) error
	want connect.Code // 0: success
}

func runRules(t *testing.T, synced bool, cases []ruleCase) {
	t.Helper()
	r := newRules(t, synced)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call(r)
			if got := codeOf(err); got != c.want {
				t.Fatalf("%v, answered %v; want %v", err, got, c.want)
			}
		})
	}
}

func login(r *rules, user, pw string) (*authv1.TokenResponse, error) {
	resp, err := r.login.Token(context.Background(), connect.NewRequest(&authv1.TokenRequest{
		Credential: &authv1.TokenRequest_PasswordCredential{PasswordCredential: &authv1.PasswordCredential{Username: user, Password: pw}}}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

func refresh(r *rules, token, clientID, secret string) error {
	_, err := r.login.RefreshToken(context.Background(), connect.NewRequest(&authv1.RefreshTokenRequest{
		RefreshToken: token, ClientId: clientID, ClientSecret: secret}))
	return err
}

func TestLoginRules(t *testing.T) {
	runRules(t, true, []ruleCase{
		{"no credential", func(r *rules) error {
			_, err := r.login.Token(context.Background(), connect.NewRequest(&authv1.TokenRequest{}))
			return err
		}, connect.CodeInvalidArgument},
		{"empty password", func(r *rules) error { _, err := login(r, "ada", ""); return err }, connect.CodeInvalidArgument},
		{"password too long", func(r *rules) error { _, err := login(r, "ada", strings.Repeat("x", 2000)); return err }, connect.CodeInvalidArgument},
		{"wrong password", func(r *rules) error { _, err := login(r, "ada", "wrong"); return err }, connect.CodeUnauthenticated},
		{"unknown user", func(r *rules) error { _, err := login(r, "bob", rulesPassword); return err }, connect.CodeUnauthenticated},
		{"right password", func(r *rules) error { _, err := login(r, "ada", rulesPassword); return err }, 0},
		{"refresh: empty token", func(r *rules) error { return refresh(r, "", "", "") }, connect.CodeInvalidArgument},
		{"refresh: garbage", func(r *rules) error { return refresh(r, "garbage", "", "") }, connect.CodeUnauthenticated},
		{"refresh: first-party session", func(r *rules) error {
			resp, err := login(r, "ada", rulesPassword)
			if err != nil {
				return err
			}
			return refresh(r, resp.RefreshToken, "", "")
		}, 0},
		{"refresh: first-party session presented by a client", func(r *rules) error {
			resp, err := login(r, "ada", rulesPassword)
			if err != nil {
				return err
			}
			return refresh(r, resp.RefreshToken, "1002", "")
		}, connect.CodeUnauthenticated},
		{"refresh: wrong client secret", func(r *rules) error { return refresh(r, "garbage", "1001", "wrong") }, connect.CodeUnauthenticated},
		{"logout: empty token", func(r *rules) error {
			_, err := r.login.Logout(context.Background(), connect.NewRequest(&authv1.LogoutRequest{}))
			return err
		}, connect.CodeInvalidArgument},
	})
}

// TestRulesBeforeSync: until tokend has recorded its configuration in
// Redis, what consumes a credential is unavailable (retry), never refused.
func TestRulesBeforeSync(t *testing.T) {
	runRules(t, false, []ruleCase{
		{"refresh", func(r *rules) error { return refresh(r, "garbage", "", "") }, connect.CodeUnavailable},
		{"exchange", func(r *rules) error { return exchange(r, "code", "1001", rulesSecret, rulesVerifier) }, connect.CodeUnavailable},
	})
}

func generate(r *rules, caller string, m *authpb.GenerateAuthorizationCodeRequest) (string, error) {
	resp, err := r.codes.GenerateAuthorizationCode(asUser(caller), connect.NewRequest(m))
	if err != nil {
		return "", err
	}
	return resp.Msg.Code, nil
}

func codeRequest(client uint32) *authpb.GenerateAuthorizationCodeRequest {
	return &authpb.GenerateAuthorizationCodeRequest{UserId: 7, ClientId: client, RedirectUri: rulesRedirect,
		CodeChallenge: rulesChallenge, CodeChallengeMethod: "S256"}
}

func exchange(r *rules, code, client, secret, verifier string) error {
	var id uint64
	for _, c := range client {
		id = id*10 + uint64(c-'0')
	}
	_, err := r.codes.ExchangeToken(context.Background(), connect.NewRequest(&authpb.ExchangeTokenRequest{
		Code: code, ClientId: uint32(id), ClientSecret: secret, RedirectUri: rulesRedirect, CodeVerifier: verifier}))
	return err
}

func TestAuthorizationCodeRules(t *testing.T) {
	with := func(f func(m *authpb.GenerateAuthorizationCodeRequest)) *authpb.GenerateAuthorizationCodeRequest {
		m := codeRequest(1001)
		f(m)
		return m
	}
	runRules(t, true, []ruleCase{
		{"no caller", func(r *rules) error {
			_, err := r.codes.GenerateAuthorizationCode(context.Background(), connect.NewRequest(codeRequest(1001)))
			return err
		}, connect.CodeUnauthenticated},
		{"another user's token", func(r *rules) error { _, err := generate(r, "8", codeRequest(1001)); return err }, connect.CodePermissionDenied},
		{"unknown client", func(r *rules) error { _, err := generate(r, "7", codeRequest(4242)); return err }, connect.CodeInvalidArgument},
		{"client without the grant", func(r *rules) error { _, err := generate(r, "7", codeRequest(1003)); return err }, connect.CodeInvalidArgument},
		{"unregistered redirect", func(r *rules) error {
			_, err := generate(r, "7", with(func(m *authpb.GenerateAuthorizationCodeRequest) { m.RedirectUri += "x" }))
			return err
		}, connect.CodeInvalidArgument},
		{"plain PKCE", func(r *rules) error {
			_, err := generate(r, "7", with(func(m *authpb.GenerateAuthorizationCodeRequest) { m.CodeChallengeMethod = "plain" }))
			return err
		}, connect.CodeInvalidArgument},
		{"public client without PKCE", func(r *rules) error {
			m := codeRequest(1002)
			m.CodeChallenge, m.CodeChallengeMethod = "", ""
			_, err := generate(r, "7", m)
			return err
		}, connect.CodeInvalidArgument},
		{"scope beyond the client's", func(r *rules) error {
			_, err := generate(r, "7", with(func(m *authpb.GenerateAuthorizationCodeRequest) { m.Scope = "admin" }))
			return err
		}, connect.CodeInvalidArgument},
		{"exchange: wrong verifier", func(r *rules) error {
			code, err := generate(r, "7", codeRequest(1001))
			if err != nil {
				return err
			}
			return exchange(r, code, "1001", rulesSecret, strings.Repeat("A", 43))
		}, connect.CodeInvalidArgument},
		{"exchange: wrong secret", func(r *rules) error {
			code, err := generate(r, "7", codeRequest(1001))
			if err != nil {
				return err
			}
			return exchange(r, code, "1001", "wrong", rulesVerifier)
		}, connect.CodeUnauthenticated},
		{"exchange: once, then never again", func(r *rules) error {
			code, err := generate(r, "7", codeRequest(1002))
			if err != nil {
				return err
			}
			if err := exchange(r, code, "1002", "", rulesVerifier); err != nil {
				return err
			}
			return exchange(r, code, "1002", "", rulesVerifier)
		}, connect.CodeUnauthenticated},
	})
}

func TestAPITokenRules(t *testing.T) {
	create := func(r *rules, name string) (*tsv1.Token, error) {
		resp, err := r.api.CreateToken(asUser("7"), connect.NewRequest(&tsv1.CreateTokenRequest{Name: name}))
		if err != nil {
			return nil, err
		}
		return resp.Msg.Token, nil
	}
	use := func(r *rules, secret string) error {
		_, err := r.api.GetAccessToken(context.Background(), connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: secret}))
		return err
	}
	runRules(t, true, []ruleCase{
		{"create: name too long", func(r *rules) error { _, err := create(r, strings.Repeat("n", 201)); return err }, connect.CodeInvalidArgument},
		{"create: expiry in the past", func(r *rules) error {
			_, err := r.api.CreateToken(asUser("7"), connect.NewRequest(&tsv1.CreateTokenRequest{
				ExpireTime: timestamppb.New(time.Now().Add(-time.Hour))}))
			return err
		}, connect.CodeInvalidArgument},
		{"create and use", func(r *rules) error {
			tok, err := create(r, "ci")
			if err != nil {
				return err
			}
			return use(r, tok.Secret)
		}, 0},
		{"create beyond the owner's maximum", func(r *rules) error {
			for range 3 { // one exists already; the maximum is 2
				if _, err := create(r, "more"); err != nil {
					return err
				}
			}
			return nil
		}, connect.CodeResourceExhausted},
		{"use: empty", func(r *rules) error { return use(r, "") }, connect.CodeInvalidArgument},
		{"use: malformed", func(r *rules) error { return use(r, "not-a-secret") }, connect.CodeUnauthenticated},
		{"delete: not an id", func(r *rules) error {
			_, err := r.api.DeleteToken(asUser("7"), connect.NewRequest(&tsv1.DeleteTokenRequest{Id: "x"}))
			return err
		}, connect.CodeInvalidArgument},
	})
}

func TestM2MRules(t *testing.T) {
	create := func(f func(m *m2mpb.CreateTokenRequest)) func(r *rules) error {
		return func(r *rules) error {
			m := &m2mpb.CreateTokenRequest{GrantType: config.GrantClientCredentials, ClientId: "svc", ClientSecret: rulesSecret}
			f(m)
			_, err := r.m2m.CreateToken(context.Background(), connect.NewRequest(m))
			return err
		}
	}
	runRules(t, true, []ruleCase{
		{"secret", create(func(*m2mpb.CreateTokenRequest) {}), 0},
		{"no credential", create(func(m *m2mpb.CreateTokenRequest) { m.ClientSecret = "" }), connect.CodeUnauthenticated},
		{"wrong secret", create(func(m *m2mpb.CreateTokenRequest) { m.ClientSecret = "wrong" }), connect.CodeUnauthenticated},
		{"assertion of the wrong type", create(func(m *m2mpb.CreateTokenRequest) { m.ClientAssertion, m.ClientAssertionType = "x.y.z", "bearer" }), connect.CodeUnauthenticated},
		{"another grant", create(func(m *m2mpb.CreateTokenRequest) { m.GrantType = "password" }), connect.CodeInvalidArgument},
		{"client without the grant", create(func(m *m2mpb.CreateTokenRequest) { m.ClientId = "1001" }), connect.CodePermissionDenied},
		{"audience not allowed", create(func(m *m2mpb.CreateTokenRequest) { m.Audience = []string{"other"} }), connect.CodeInvalidArgument},
		{"scope not allowed", create(func(m *m2mpb.CreateTokenRequest) { m.Scope = []string{"admin"} }), connect.CodeInvalidArgument},
		{"expiry beyond the client's lifetime", create(func(m *m2mpb.CreateTokenRequest) { m.Expiration = time.Now().Add(2 * time.Hour).Unix() }), connect.CodeInvalidArgument},
		{"expiry in the past", create(func(m *m2mpb.CreateTokenRequest) { m.Expiration = time.Now().Add(-time.Hour).Unix() }), connect.CodeInvalidArgument},
		{"client without an owner", create(func(m *m2mpb.CreateTokenRequest) { m.ClientId = "ownerless" }), connect.CodePermissionDenied},
		{"delete: too many ids", func(r *rules) error {
			_, err := r.m2m.DeleteTokens(asUser("7"), connect.NewRequest(&m2mpb.DeleteTokensRequest{IdFilter: make([]string, 1001)}))
			return err
		}, connect.CodeInvalidArgument},
	})
}
