// Command seed prepares a load test against a running tokend: it logs in
// and writes what the load tool's script needs, one item per line.
//
//	go run ./bench/seed -url http://127.0.0.1:8080 -user bench -password bench-password -mode refresh -n 64 > tokens.txt
//	go run ./bench/seed ... -mode apitoken > secret.txt
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"

	"connectrpc.com/connect"

	authv1 "github.com/tokend/tokend/gen/auth/v1"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	tsv1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
	"github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1/tokenservicev1alpha1connect"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "tokend base URL")
	user := flag.String("user", "bench", "username")
	pass := flag.String("password", "bench-password", "password")
	mode := flag.String("mode", "refresh", "refresh: n refresh tokens; apitoken: one API token secret")
	n := flag.Int("n", 64, "refresh tokens to make")
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
	switch mode {
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
		svc := tokenservicev1alpha1connect.NewTokenServiceClient(http.DefaultClient, url, connect.WithProtoJSON(),
			connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
				return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
					req.Header().Set("Authorization", "Bearer "+t.AccessToken)
					return next(ctx, req)
				}
			})))
		r, err := svc.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: "load test"}))
		if err != nil {
			return err
		}
		fmt.Println(r.Msg.Token.Secret)
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	return nil
}
