package system

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/dpop/dpoptest"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	tsv1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
	"github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1/tokenservicev1alpha1connect"
	"github.com/tokend/tokend/redisstore/redistest"
)

type headerInterceptor []string

func (h headerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		for i := 0; i < len(h); i += 2 {
			req.Header().Set(h[i], h[i+1])
		}
		return next(ctx, req)
	}
}
func (h headerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}
func (h headerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// TestDPoPReplayAcrossReplicas: two tokend processes over one real redis-server behind one issuer
// name. A proof accepted by A is refused by B (the replay record is the fleet's), over Connect
// JSON, gRPC and gRPC-Web and on /oauth/token; a nonce handed out by A is good on B.
func TestDPoPReplayAcrossReplicas(t *testing.T) {
	redis := redistest.Start(t)
	key := signingKey(t)
	const issuer = "https://tokend.example"
	config := func(addr string) string {
		return configIssuer(t, issuer, addr, redis.URL, key, "dpop:\n  nonce_rotate_every: 1m\n")
	}
	a, b := startTokend(t, config), startTokend(t, config)
	k := dpoptest.NewES256()
	ctx := context.Background()

	// The nonce: A hands one out, B accepts it.
	tokenURL := issuer + authv1connect.AuthServiceTokenProcedure
	_, err := authv1connect.NewAuthServiceClient(http1(), a.URL, connect.WithProtoJSON(),
		connect.WithInterceptors(headerInterceptor{"DPoP", k.Proof("POST", tokenURL, dpoptest.Opts{})})).Token(ctx, passwordLogin("alice", alicePassword))
	ce, _ := err.(*connect.Error)
	if ce == nil || !strings.Contains(ce.Message(), "use_dpop_nonce") || ce.Meta().Get("DPoP-Nonce") == "" {
		t.Fatalf("no nonce from A: %v", err)
	}
	nonce := ce.Meta().Get("DPoP-Nonce")
	login, err := authv1connect.NewAuthServiceClient(http1(), b.URL, connect.WithProtoJSON(),
		connect.WithInterceptors(headerInterceptor{"DPoP", k.Proof("POST", tokenURL, dpoptest.Opts{Nonce: nonce})})).Token(ctx, passwordLogin("alice", alicePassword))
	if err != nil || login.Msg.TokenType != "DPoP" {
		t.Fatalf("A's nonce on B: %v", err)
	}
	at := login.Msg.AccessToken

	listURL := issuer + tokenservicev1alpha1connect.TokenServiceListTokensProcedure
	protocols := map[string]struct {
		hc  *http.Client
		opt connect.ClientOption
	}{
		"connect+json": {http1(), connect.WithProtoJSON()},
		"grpc":         {h2c(), connect.WithGRPC()},
		"grpc-web":     {http1(), connect.WithGRPCWeb()},
	}
	for name, p := range protocols {
		t.Run(name, func(t *testing.T) {
			proof := k.Proof("POST", listURL, dpoptest.Opts{AccessToken: at, Nonce: nonce})
			list := func(base string) error {
				c := tokenservicev1alpha1connect.NewTokenServiceClient(p.hc, base, p.opt,
					connect.WithInterceptors(headerInterceptor{"Authorization", "DPoP " + at, "DPoP", proof}))
				_, err := c.ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
				return err
			}
			if err := list(a.URL); err != nil {
				t.Fatalf("on A: %v", err)
			}
			err := list(b.URL)
			wantCode(t, err, connect.CodeUnauthenticated)
			if !strings.Contains(err.Error(), "invalid_dpop_proof") {
				t.Fatalf("replay on B: %v", err)
			}
			// The token without its key, on either replica.
			c := tokenservicev1alpha1connect.NewTokenServiceClient(p.hc, b.URL, withBearer([]connect.ClientOption{p.opt}, at)...)
			_, err = c.ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
			wantCode(t, err, connect.CodeUnauthenticated)
		})
	}

	// The form endpoint: a proof used on A is refused on B.
	formProof := k.Proof("POST", issuer+"/oauth/token", dpoptest.Opts{Nonce: nonce})
	post := func(base string) (int, string) {
		form := url.Values{"grant_type": {"client_credentials"}}
		req, _ := http.NewRequest(http.MethodPost, base+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("DPoP", formProof)
		req.SetBasicAuth("svc", clientSecret)
		resp, err := http1().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		body.Write(buf[:n])
		return resp.StatusCode, body.String()
	}
	if status, body := post(a.URL); status != 200 || !strings.Contains(body, `"token_type":"DPoP"`) {
		t.Fatalf("on A: %d %s", status, body)
	}
	if status, body := post(b.URL); status != 400 || !strings.Contains(body, "invalid_dpop_proof") {
		t.Fatalf("replayed on B: %d %s", status, body)
	}
}
