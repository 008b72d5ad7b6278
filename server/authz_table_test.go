package server_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/authz"
	"github.com/tokend/tokend/gen/auth/authpbconnect"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
	tsv1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
	"github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1/tokenservicev1alpha1connect"
)

// wantTable is the authorization table as the contract states it, written
// out here so that a change to authz.Table is a deliberate change to this
// test too: for every procedure, the kinds of principal that may call it.
var wantTable = map[string][]authz.Kind{
	authz.CreateAPIToken:            {authz.FirstParty},
	authz.ListAPITokens:             {authz.FirstParty},
	authz.DeleteAPIToken:            {authz.FirstParty},
	authz.GenerateAuthorizationCode: {authz.FirstParty},
	authz.GetM2MTokens:              {authz.FirstParty, authz.APIToken, authz.M2MClient},
	authz.DeleteM2MTokens:           {authz.FirstParty, authz.APIToken, authz.M2MClient},
	authz.ClientAssertion:           {authz.FirstParty, authz.APIToken, authz.Foreign},
}

// TestAuthorizationTable walks the whole authorization table, every cell,
// over Connect and over gRPC: each procedure called by a principal of each
// kind. An allowed cell gets past the bearer check (the handler answers,
// success or a rule of its own); every other cell is permission_denied —
// or unauthenticated for a foreign subject, whose token is no bearer token
// of tokend's at all. The client_assertion row is M2M CreateToken with the
// principal's token as the client assertion: allowed, it buys a token;
// refused, it is the one unauthenticated answer of client authentication.
func TestAuthorizationTable(t *testing.T) {
	if len(wantTable) != len(authz.Table) {
		t.Fatalf("authz.Table has %d procedures, the contract %d", len(authz.Table), len(wantTable))
	}
	for proc, kinds := range wantTable {
		if got := authz.Table[proc].Allowed; !sameKinds(got, kinds) {
			t.Errorf("authz.Table[%s] allows %v, the contract %v", proc, got, kinds)
		}
	}

	foreign := startForeignIssuer(t)
	ts := startM2M(t, foreign.URL, withCodeClients)
	ctx := context.Background()

	// One token of every kind.
	firstParty := accessToken(t, ts, "alice")
	code := newCode(t, codeClient(ts, firstParty), false)
	ex, err := codeClient(ts, "").ExchangeToken(ctx, exchangeReq(code, 1001, codeSecret, codeRedirect, ""))
	if err != nil {
		t.Fatal(err)
	}
	created, err := apiClient(ts, firstParty).CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: "table"}))
	if err != nil {
		t.Fatal(err)
	}
	bought, err := apiClient(ts, "").GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: created.Msg.Token.Secret}))
	if err != nil {
		t.Fatal(err)
	}
	m2m, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "svc", ClientSecret: m2mSecret})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	token := map[authz.Kind]func() string{
		authz.FirstParty: func() string { return firstParty },
		authz.Delegated:  func() string { return ex.Msg.AccessToken },
		authz.APIToken:   func() string { return bought.Msg.AccessToken },
		authz.M2MClient:  func() string { return m2m.AccessToken },
		authz.Foreign: func() string { // a fresh assertion each time: each is accepted once
			n++
			return foreign.sign(t, jwt.MapClaims{"sub": "robot-1", "aud": ts.URL, "exp": time.Now().Add(time.Minute).Unix(),
				"jti": "table-" + string(rune('a'+n))})
		},
	}

	for proto, opts := range map[string][]connect.ClientOption{
		"connect": {connect.WithProtoJSON()},
		"grpc":    {connect.WithGRPC()},
	} {
		hc := http.DefaultClient
		if proto == "grpc" {
			hc = h2c()
		}
		call := map[string]func(tok string) error{
			authz.CreateAPIToken: func(tok string) error {
				_, err := tokenservicev1alpha1connect.NewTokenServiceClient(hc, ts.URL, append(opts, bearer(tok))...).
					CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{}))
				return err
			},
			authz.ListAPITokens: func(tok string) error {
				_, err := tokenservicev1alpha1connect.NewTokenServiceClient(hc, ts.URL, append(opts, bearer(tok))...).
					ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
				return err
			},
			authz.DeleteAPIToken: func(tok string) error {
				_, err := tokenservicev1alpha1connect.NewTokenServiceClient(hc, ts.URL, append(opts, bearer(tok))...).
					DeleteToken(ctx, connect.NewRequest(&tsv1.DeleteTokenRequest{Id: "api_token_01h0000000000000000000000"}))
				return err
			},
			authz.GenerateAuthorizationCode: func(tok string) error {
				_, err := authpbconnect.NewAuthServiceClient(hc, ts.URL, append(opts, bearer(tok))...).
					GenerateAuthorizationCode(ctx, connect.NewRequest(codeRequest(1001, codeRedirect, "read")))
				return err
			},
			authz.GetM2MTokens: func(tok string) error {
				// A stream: the bearer goes on the request itself.
				req := connect.NewRequest(&m2mpb.GetTokensRequest{})
				req.Header().Set("Authorization", "Bearer "+tok)
				stream, err := m2mpbconnect.NewM2MOAuthServiceClient(hc, ts.URL, opts...).GetTokens(ctx, req)
				if err != nil {
					return err
				}
				for stream.Receive() {
				}
				return stream.Err()
			},
			authz.DeleteM2MTokens: func(tok string) error {
				_, err := m2mpbconnect.NewM2MOAuthServiceClient(hc, ts.URL, append(opts, bearer(tok))...).
					DeleteTokens(ctx, connect.NewRequest(&m2mpb.DeleteTokensRequest{IdFilter: []string{"no-such-token"}}))
				return err
			},
			authz.ClientAssertion: func(tok string) error {
				_, err := m2mpbconnect.NewM2MOAuthServiceClient(hc, ts.URL, opts...).
					CreateToken(ctx, connect.NewRequest(&m2mpb.CreateTokenRequest{GrantType: "client_credentials", ClientId: "viaassert",
						ClientAssertionType: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", ClientAssertion: tok}))
				return err
			},
		}
		for proc, allowed := range wantTable {
			for _, kind := range authz.Kinds {
				err := call[proc](token[kind]())
				code := connect.CodeOf(err)
				switch {
				case slices.Contains(allowed, kind):
					if err != nil && (code == connect.CodePermissionDenied || code == connect.CodeUnauthenticated) {
						t.Errorf("%s, %s by a %s: refused (%v), want allowed", proto, proc, kind, err)
					}
				case kind == authz.Foreign || proc == authz.ClientAssertion:
					if code != connect.CodeUnauthenticated {
						t.Errorf("%s, %s by a %s: %v, want unauthenticated", proto, proc, kind, err)
					}
				default:
					if code != connect.CodePermissionDenied {
						t.Errorf("%s, %s by a %s: %v, want permission_denied", proto, proc, kind, err)
					}
				}
			}
		}
	}
}

func sameKinds(a, b []authz.Kind) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
