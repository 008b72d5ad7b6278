package system

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	authpb "github.com/tokend/tokend/gen/auth"
	"github.com/tokend/tokend/gen/auth/authpbconnect"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
	tsv1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
	"github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1/tokenservicev1alpha1connect"
	"github.com/tokend/tokend/redisstore/redistest"
)

// protocol is one way clients reach tokend: an HTTP client and the
// connect-go options that select the wire protocol.
type protocol struct {
	name   string
	client *http.Client
	opts   []connect.ClientOption
}

func protocols() []protocol {
	return []protocol{
		{"connect+json", http.DefaultClient, []connect.ClientOption{connect.WithProtoJSON()}},
		{"connect+proto", http.DefaultClient, nil},
		{"grpc", h2c(), []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web", http.DefaultClient, []connect.ClientOption{connect.WithGRPCWeb()}},
	}
}

// withBearer adds an Authorization header to every call, unary or stream.
func withBearer(opts []connect.ClientOption, token string) []connect.ClientOption {
	return append(append([]connect.ClientOption(nil), opts...), connect.WithInterceptors(bearerInterceptor(token)))
}

type bearerInterceptor string

func (b bearerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, req)
	}
}

func (b bearerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		return conn
	}
}

func (bearerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func passwordLogin(user, pass string) *connect.Request[authv1.TokenRequest] {
	return connect.NewRequest(&authv1.TokenRequest{Credential: &authv1.TokenRequest_PasswordCredential{
		PasswordCredential: &authv1.PasswordCredential{Username: user, Password: pass},
	}})
}

func wantCode(t *testing.T, err error, code connect.Code) {
	t.Helper()
	if got := connect.CodeOf(err); err == nil || got != code {
		t.Fatalf("got %v (%v), want %v", got, err, code)
	}
}

// TestEveryMethodEveryProtocol calls every method of every mounted service
// over Connect JSON, Connect binary, gRPC and gRPC-Web against the built
// binary, over a real Redis and over a real three-master Redis Cluster.
func TestEveryMethodEveryProtocol(t *testing.T) {
	t.Run("redis", func(t *testing.T) { everyMethodEveryProtocol(t, redistest.Start(t).URL) })
	t.Run("cluster", func(t *testing.T) { everyMethodEveryProtocol(t, redistest.StartCluster(t, 3).URL) })
}

func everyMethodEveryProtocol(t *testing.T, redisURL string) {
	key := signingKey(t)
	p := startTokend(t, func(addr string) string { return configYAML(t, addr, redisURL, key, "") })
	ctx := context.Background()

	for _, pr := range protocols() {
		t.Run(pr.name, func(t *testing.T) {
			auth := authv1connect.NewAuthServiceClient(pr.client, p.URL, pr.opts...)
			login, err := auth.Token(ctx, passwordLogin("alice", alicePassword))
			if err != nil {
				t.Fatal("Token:", err)
			}
			_, err = auth.Token(ctx, passwordLogin("alice", "wrong"))
			wantCode(t, err, connect.CodeUnauthenticated)

			rotated, err := auth.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: login.Msg.RefreshToken}))
			if err != nil {
				t.Fatal("RefreshToken:", err)
			}
			if rotated.Msg.RefreshToken == login.Msg.RefreshToken || rotated.Msg.AccessToken == "" {
				t.Fatalf("RefreshToken did not rotate: %v", rotated.Msg)
			}

			// Authorization codes: the user's front end asks for a code for
			// client 1001 (PKCE S256); the client exchanges it.
			codes := authpbconnect.NewAuthServiceClient(pr.client, p.URL, withBearer(pr.opts, rotated.Msg.AccessToken)...)
			verifier := strings.Repeat("v", 43)
			sum := sha256.Sum256([]byte(verifier))
			code, err := codes.GenerateAuthorizationCode(ctx, connect.NewRequest(&authpb.GenerateAuthorizationCodeRequest{
				UserId: 7, ClientId: 1001, RedirectUri: redirectURI, Scope: "read",
				CodeChallenge: base64.RawURLEncoding.EncodeToString(sum[:]), CodeChallengeMethod: "S256"}))
			if err != nil {
				t.Fatal("GenerateAuthorizationCode:", err)
			}
			exchanged, err := authpbconnect.NewAuthServiceClient(pr.client, p.URL, pr.opts...).ExchangeToken(ctx,
				connect.NewRequest(&authpb.ExchangeTokenRequest{Code: code.Msg.Code, ClientId: 1001, ClientSecret: clientSecret,
					RedirectUri: redirectURI, CodeVerifier: verifier}))
			if err != nil || exchanged.Msg.AccessToken == "" || exchanged.Msg.RefreshToken == "" || exchanged.Msg.BaseResp.GetMessage() != "OK" {
				t.Fatal("ExchangeToken:", exchanged, err)
			}

			// M2M: a client with its secret, and the signed-in user through
			// a client that trusts tokend's own tokens as assertions.
			m2m := m2mpbconnect.NewM2MOAuthServiceClient(pr.client, p.URL, pr.opts...)
			svc, err := m2m.CreateToken(ctx, connect.NewRequest(&m2mpb.CreateTokenRequest{GrantType: "client_credentials",
				ClientId: "svc", ClientSecret: clientSecret, Audience: []string{"api", p.URL}}))
			if err != nil {
				t.Fatal("M2M CreateToken:", err)
			}
			// A token minted for a resource server only manages nothing here.
			forAPI, err := m2m.CreateToken(ctx, connect.NewRequest(&m2mpb.CreateTokenRequest{GrantType: "client_credentials",
				ClientId: "svc", ClientSecret: clientSecret, Audience: []string{"api"}}))
			if err != nil {
				t.Fatal("M2M CreateToken:", err)
			}
			_, err = m2mpbconnect.NewM2MOAuthServiceClient(pr.client, p.URL, withBearer(pr.opts, forAPI.Msg.AccessToken)...).
				DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{}))
			wantCode(t, err, connect.CodePermissionDenied)
			mine, err := m2m.CreateToken(ctx, connect.NewRequest(&m2mpb.CreateTokenRequest{GrantType: "client_credentials",
				ClientId: "self-service", ClientAssertionType: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
				ClientAssertion: rotated.Msg.AccessToken, TokenName: pr.name}))
			if err != nil {
				t.Fatal("M2M CreateToken with an assertion:", err)
			}
			asUser := m2mpbconnect.NewM2MOAuthServiceClient(pr.client, p.URL, withBearer(pr.opts, rotated.Msg.AccessToken)...)
			stream, err := asUser.GetTokens(ctx, connect.NewRequest(&m2mpb.GetTokensRequest{}))
			if err != nil {
				t.Fatal("GetTokens:", err)
			}
			var listed []*m2mpb.Token
			for stream.Receive() {
				listed = append(listed, stream.Msg())
			}
			if err := stream.Err(); err != nil || len(listed) != 1 || listed[0].Owner != "7" || listed[0].Name != pr.name {
				t.Fatalf("GetTokens: %v, %v; want alice's one token", listed, err)
			}
			del, err := asUser.DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{}))
			if err != nil || del.Msg.BlacklistedCount != 1 {
				t.Fatal("DeleteTokens:", del, err)
			}
			// The blacklisted token is refused as a bearer; svc's still works.
			_, err = m2mpbconnect.NewM2MOAuthServiceClient(pr.client, p.URL, withBearer(pr.opts, mine.Msg.AccessToken)...).
				DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{}))
			wantCode(t, err, connect.CodeUnauthenticated)
			asSvc := m2mpbconnect.NewM2MOAuthServiceClient(pr.client, p.URL, withBearer(pr.opts, svc.Msg.AccessToken)...)
			stream, err = asSvc.GetTokens(ctx, connect.NewRequest(&m2mpb.GetTokensRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for stream.Receive() {
				n++
			}
			if err := stream.Err(); err != nil || n == 0 {
				t.Fatalf("svc-owner's GetTokens: %d, %v", n, err)
			}

			// API tokens, with the access token from the login.
			api := tokenservicev1alpha1connect.NewTokenServiceClient(pr.client, p.URL, withBearer(pr.opts, rotated.Msg.AccessToken)...)
			created, err := api.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: pr.name}))
			if err != nil {
				t.Fatal("CreateToken:", err)
			}
			public := tokenservicev1alpha1connect.NewTokenServiceClient(pr.client, p.URL, pr.opts...)
			traded, err := public.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: created.Msg.Token.Secret}))
			if err != nil || traded.Msg.AccessToken == "" {
				t.Fatal("GetAccessToken:", err)
			}
			list, err := api.ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
			if err != nil {
				t.Fatal("ListTokens:", err)
			}
			found := false
			for _, tok := range list.Msg.Tokens {
				found = found || (tok.Id == created.Msg.Token.Id && tok.Secret == "")
			}
			if !found {
				t.Fatalf("ListTokens lacks %s (or shows its secret): %v", created.Msg.Token.Id, list.Msg.Tokens)
			}
			if _, err := api.DeleteToken(ctx, connect.NewRequest(&tsv1.DeleteTokenRequest{Id: created.Msg.Token.Id})); err != nil {
				t.Fatal("DeleteToken:", err)
			}
			_, err = public.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: created.Msg.Token.Secret}))
			wantCode(t, err, connect.CodeUnauthenticated)

			// Without a bearer token the protected calls are refused in
			// this protocol's own error format.
			_, err = public.ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
			wantCode(t, err, connect.CodeUnauthenticated)

			if _, err := auth.Logout(ctx, connect.NewRequest(&authv1.LogoutRequest{RefreshToken: rotated.Msg.RefreshToken})); err != nil {
				t.Fatal("Logout:", err)
			}
			_, err = api.ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
			wantCode(t, err, connect.CodeUnauthenticated) // the session's access token died with it
		})
	}
}
