package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"connectrpc.com/connect"

	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
	tsv1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
	"github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1/tokenservicev1alpha1connect"
)

// TestTokenResponsesAreNotStored: every response carrying a token or a
// secret says Cache-Control: no-store, on every protocol; the public
// well-known documents stay cacheable.
func TestTokenResponsesAreNotStored(t *testing.T) {
	ts := startM2M(t, "", nil)
	ctx := context.Background()
	noStore := func(t *testing.T, what string, h http.Header) {
		t.Helper()
		if got := h.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", what, got)
		}
	}
	opts := map[string][]connect.ClientOption{
		"connect+json":  {connect.WithProtoJSON()},
		"connect+proto": nil,
		"grpc":          {connect.WithGRPC()},
		"grpc-web":      {connect.WithGRPCWeb()},
	}
	for name, o := range opts {
		t.Run(name, func(t *testing.T) {
			hc := http.DefaultClient
			if name == "grpc" {
				hc = h2c()
			}
			login, err := protocols[name](ts.URL).Token(ctx, login("alice", password))
			if err != nil {
				t.Fatal(err)
			}
			noStore(t, "login", login.Header())

			api := tokenservicev1alpha1connect.NewTokenServiceClient(hc, ts.URL, append(o, bearer(login.Msg.AccessToken))...)
			created, err := api.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			noStore(t, "API token", created.Header())

			m2m := m2mpbconnect.NewM2MOAuthServiceClient(hc, ts.URL, o...)
			tok, err := m2m.CreateToken(ctx, connect.NewRequest(&m2mpb.CreateTokenRequest{GrantType: "client_credentials",
				ClientId: "svc", ClientSecret: m2mSecret, Audience: []string{"api"}}))
			if err != nil {
				t.Fatal(err)
			}
			noStore(t, "M2M token", tok.Header())
		})
	}
	t.Run("oauth form", func(t *testing.T) {
		resp, err := http.PostForm(ts.URL+"/oauth/token", url.Values{"grant_type": {"client_credentials"},
			"client_id": {"svc"}, "client_secret": {m2mSecret}, "audience": {"api"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		noStore(t, "/oauth/token", resp.Header)
	})
	resp, err := http.Get(ts.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age") || resp.Header.Get("Pragma") != "" {
		t.Errorf("JWKS: Cache-Control %q, Pragma %q; want cacheable", cc, resp.Header.Get("Pragma"))
	}
}
