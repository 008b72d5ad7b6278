package system

import (
	"context"
	"net/http"
	"testing"

	"connectrpc.com/connect"

	authv1 "github.com/tokend/tokend/gen/auth/v1"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
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

// withBearer adds an Authorization header to every call.
func withBearer(opts []connect.ClientOption, token string) []connect.ClientOption {
	return append(append([]connect.ClientOption(nil), opts...), connect.WithInterceptors(
		connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+token)
				return next(ctx, req)
			}
		})))
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
