// Command seed prepares a load test against a running tokend: it logs in
// and writes what the load tool's script needs, one item per line.
//
//	go run ./bench/seed -url http://127.0.0.1:8080 -user bench -password bench-password -mode refresh -n 64 > tokens.txt
//	go run ./bench/seed ... -mode apitoken > secret.txt
//	go run ./bench/seed ... -mode codes -n 100000 > codes.txt
//	go run ./bench/seed ... -mode bearer -n 4 > bearer.txt
//	go run ./bench/seed ... -mode dpop-m2m -n 200000 > proofs.txt
//	go run ./bench/seed ... -mode dpop-bearer -n 200000 > dpop-bearer.txt
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/dpop/dpopclient"
	authpb "github.com/tokend/tokend/gen/auth"
	"github.com/tokend/tokend/gen/auth/authpbconnect"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
	tsv1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
	"github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1/tokenservicev1alpha1connect"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "tokend base URL")
	user := flag.String("user", "bench", "username")
	pass := flag.String("password", "bench-password", "password")
	mode := flag.String("mode", "refresh", "refresh: n refresh tokens; apitoken: one API token secret; codes: n authorization codes for client 1001; "+
		"bearer: n M2M tokens of client bench-m2m, printed as the first one's access token and then all ids, comma-separated; "+
		"dpop-m2m: n DPoP proofs for CreateToken, one key, one a line; "+
		"dpop-bearer: a DPoP-bound M2M token, the ids of it and 3 more, then n proofs for GetTokens with it")
	n := flag.Int("n", 64, "refresh tokens, codes or M2M tokens to make")
	flag.Parse()
	if err := run(*url, *user, *pass, *mode, *n); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run(url, user, pass, mode string, n int) error {
	ctx := context.Background()
	auth := authv1connect.NewAuthServiceClient(http.DefaultClient, url, connect.WithProtoJSON())
	login := func() (*authv1.TokenResponse, error) {
		r, err := auth.Token(ctx, connect.NewRequest(&authv1.TokenRequest{Credential: &authv1.TokenRequest_PasswordCredential{
			PasswordCredential: &authv1.PasswordCredential{Username: user, Password: pass},
		}}))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	}
	withBearer := func(token string) connect.ClientOption {
		return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+token)
				return next(ctx, req)
			}
		}))
	}
	switch mode {
	case "codes":
		t, err := login()
		if err != nil {
			return err
		}
		return codes(ctx, url, withBearer(t.AccessToken), n)
	case "refresh":
		for range n {
			t, err := login()
			if err != nil {
				return err
			}
			fmt.Println(t.RefreshToken)
		}
	case "apitoken":
		t, err := login()
		if err != nil {
			return err
		}
		svc := tokenservicev1alpha1connect.NewTokenServiceClient(http.DefaultClient, url, connect.WithProtoJSON(), withBearer(t.AccessToken))
		r, err := svc.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: "load test"}))
		if err != nil {
			return err
		}
		fmt.Println(r.Msg.Token.Secret)
	case "bearer":
		return bearer(ctx, url, n)
	case "dpop-m2m":
		return dpopM2M(ctx, url, n)
	case "dpop-bearer":
		return dpopBearer(ctx, url, n)
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	return nil
}

// codes prints n authorization codes of the bench user (id 1) for client
// 1001 (bench/tokend.bench.yaml), made by 16 concurrent callers.
func codes(ctx context.Context, url string, auth connect.ClientOption, n int) error {
	c := authpbconnect.NewAuthServiceClient(http.DefaultClient, url, connect.WithProtoJSON(), auth)
	out := make([]string, n)
	errs := make([]error, 16)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n && errs[w] == nil; i += 16 {
				r, err := c.GenerateAuthorizationCode(ctx, connect.NewRequest(&authpb.GenerateAuthorizationCodeRequest{
					UserId: 1, ClientId: 1001, RedirectUri: "http://127.0.0.1:9999/callback", Scope: "read",
				}))
				if err != nil {
					errs[w] = err
					return
				}
				out[i] = r.Msg.Code
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	// One more code, exchanged here: the client secret's slow hash is then
	// in tokend's verified-secret cache and the load test measures the
	// steady state, not 32 connections hashing at once.
	r, err := c.GenerateAuthorizationCode(ctx, connect.NewRequest(&authpb.GenerateAuthorizationCodeRequest{
		UserId: 1, ClientId: 1001, RedirectUri: "http://127.0.0.1:9999/callback", Scope: "read",
	}))
	if err != nil {
		return err
	}
	if _, err := c.ExchangeToken(ctx, connect.NewRequest(&authpb.ExchangeTokenRequest{
		Code: r.Msg.Code, ClientId: 1001, ClientSecret: "bench-client-secret", RedirectUri: "http://127.0.0.1:9999/callback",
	})); err != nil {
		return fmt.Errorf("warm-up exchange: %w", err)
	}
	for _, code := range out {
		fmt.Println(code)
	}
	return nil
}

// bearer makes n M2M tokens of client bench-m2m (owner bench-owner) and
// prints the first one's access token, then the ids of all n, comma-separated:
// what bench/bearer.lua needs for GetTokens with an id_filter. The tokens'
// audience names tokend's issuer too: only such a token manages its owner's
// tokens.
func bearer(ctx context.Context, url string, n int) error {
	issuer, err := discoveredIssuer(ctx, url)
	if err != nil {
		return err
	}
	c := m2mpbconnect.NewM2MOAuthServiceClient(http.DefaultClient, url, connect.WithProtoJSON())
	var first string
	ids := make([]string, 0, n)
	for range max(n, 1) {
		r, err := c.CreateToken(ctx, connect.NewRequest(&m2mpb.CreateTokenRequest{
			GrantType: "client_credentials", ClientId: "bench-m2m", ClientSecret: "bench-m2m-secret",
			Audience: []string{"api", issuer}, TokenName: "bench",
		}))
		if err != nil {
			return err
		}
		if first == "" {
			first = r.Msg.AccessToken
		}
		id, err := jwtID(r.Msg.AccessToken)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	fmt.Println(first)
	fmt.Println(strings.Join(ids, ","))
	return nil
}

// discoveredIssuer reads tokend's issuer from its discovery document.
func discoveredIssuer(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/.well-known/openid-configuration", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc.Issuer == "" {
		return "", fmt.Errorf("discovery document: issuer missing (%v)", err)
	}
	return doc.Issuer, nil
}

// jwtID returns the jti of a JWT, read without verifying it.
func jwtID(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("access token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims struct {
		ID string `json:"jti"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.ID == "" {
		return "", fmt.Errorf("access token has no jti")
	}
	return claims.ID, nil
}

// dpopM2M prints n DPoP proofs of one key for M2M CreateToken under tokend's issuer, one a line
// (bench/dpop.lua sends each once). They are good for dpop.iat_window from now.
func dpopM2M(ctx context.Context, url string, n int) error {
	issuer, err := discoveredIssuer(ctx, url)
	if err != nil {
		return err
	}
	k, err := dpopclient.New()
	if err != nil {
		return err
	}
	return printProofs(k, issuer+m2mpbconnect.M2MOAuthServiceCreateTokenProcedure, "", n)
}

// dpopBearer makes an M2M token bound to a fresh key and 3 unbound ones of the same owner, and
// prints the bound token, the 4 ids comma-separated, then n proofs for GetTokens with the token.
func dpopBearer(ctx context.Context, url string, n int) error {
	issuer, err := discoveredIssuer(ctx, url)
	if err != nil {
		return err
	}
	k, err := dpopclient.New()
	if err != nil {
		return err
	}
	c := m2mpbconnect.NewM2MOAuthServiceClient(http.DefaultClient, url, connect.WithProtoJSON(),
		connect.WithInterceptors(k.Interceptor(issuer, nil)))
	plain := m2mpbconnect.NewM2MOAuthServiceClient(http.DefaultClient, url, connect.WithProtoJSON())
	var bound string
	var ids []string
	for i := range 4 {
		cl := plain
		if i == 0 {
			cl = c
		}
		r, err := cl.CreateToken(ctx, connect.NewRequest(&m2mpb.CreateTokenRequest{
			GrantType: "client_credentials", ClientId: "bench-m2m", ClientSecret: "bench-m2m-secret",
			Audience: []string{"api", issuer}, TokenName: "bench",
		}))
		if err != nil {
			return err
		}
		if i == 0 {
			if r.Msg.TokenType != "DPoP" {
				return fmt.Errorf("token_type %q, want DPoP", r.Msg.TokenType)
			}
			bound = r.Msg.AccessToken
		}
		id, err := jwtID(r.Msg.AccessToken)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	fmt.Println(bound)
	fmt.Println(strings.Join(ids, ","))
	return printProofs(k, issuer+m2mpbconnect.M2MOAuthServiceGetTokensProcedure, bound, n)
}

func printProofs(k *dpopclient.Key, htu, accessToken string, n int) error {
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	for range n {
		p, err := k.Proof(http.MethodPost, htu, accessToken)
		if err != nil {
			return err
		}
		w.WriteString(p)
		w.WriteByte('\n')
	}
	return w.Flush()
}
