package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/dpop/dpopclient"
	"github.com/tokend/tokend/dpop/dpoptest"
	"github.com/tokend/tokend/gen/auth/authpbconnect"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
	tsv1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
	"github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1/tokenservicev1alpha1connect"
)

// dpopProtocols are the RPC protocols every DPoP rule is tested over.
var dpopProtocols = map[string]func() (*http.Client, connect.ClientOption){
	"connect+json": func() (*http.Client, connect.ClientOption) { return http.DefaultClient, connect.WithProtoJSON() },
	"grpc":         func() (*http.Client, connect.ClientOption) { return h2c(), connect.WithGRPC() },
	"grpc-web":     func() (*http.Client, connect.ClientOption) { return http.DefaultClient, connect.WithGRPCWeb() },
}

// headers returns a client option that sets the given request headers on unary calls.
func headers(kv ...string) connect.ClientOption {
	return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			for i := 0; i < len(kv); i += 2 {
				req.Header().Set(kv[i], kv[i+1])
			}
			return next(ctx, req)
		}
	}))
}

func withDPoPClients(c *config.Config) {
	strict := c.Clients[0] // svc's twin that must bind
	strict.ID, strict.DPoPBoundAccessTokens = "strict", true
	c.Clients = append(c.Clients, strict)
}

// boundM2M gets an M2M token bound to k over protocol p.
func boundM2M(t *testing.T, ts *testServer, hc *http.Client, p connect.ClientOption, k *dpoptest.Key) string {
	t.Helper()
	proc := ts.URL + m2mpbconnect.M2MOAuthServiceCreateTokenProcedure
	c := m2mpbconnect.NewM2MOAuthServiceClient(hc, ts.URL, p, headers("DPoP", k.Proof("POST", proc, dpoptest.Opts{})))
	resp, err := c.CreateToken(t.Context(), connect.NewRequest(&m2mpb.CreateTokenRequest{ClientId: "svc", ClientSecret: m2mSecret, GrantType: "client_credentials"}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Msg.TokenType != "DPoP" {
		t.Fatalf("token_type %q, want DPoP", resp.Msg.TokenType)
	}
	return resp.Msg.AccessToken
}

// TestDPoPProtectedCallRules holds every rule of the bearer check to a call over Connect JSON,
// gRPC and gRPC-Web: an M2M token bound to a key calls DeleteTokens (a protected unary call).
func TestDPoPProtectedCallRules(t *testing.T) {
	ts := startM2M(t, "", withDPoPClients)
	for name, proto := range dpopProtocols {
		t.Run(name, func(t *testing.T) {
			hc, p := proto()
			k := dpoptest.NewES256()
			at := boundM2M(t, ts, hc, p, k)
			if jkt := verifyWithJWKS(t, ts, at)["cnf"].(map[string]any)["jkt"]; jkt != k.Thumbprint() {
				t.Fatalf("cnf.jkt %v, want %s", jkt, k.Thumbprint())
			}
			htu := ts.URL + m2mpbconnect.M2MOAuthServiceDeleteTokensProcedure
			call := func(opts ...connect.ClientOption) error {
				c := m2mpbconnect.NewM2MOAuthServiceClient(hc, ts.URL, append(opts, p)...)
				_, err := c.DeleteTokens(t.Context(), connect.NewRequest(&m2mpb.DeleteTokensRequest{IdFilter: []string{"none"}}))
				return err
			}
			honest := func(o dpoptest.Opts) string { o.AccessToken = at; return k.Proof("POST", htu, o) }
			if err := call(headers("Authorization", "DPoP "+at, "DPoP", honest(dpoptest.Opts{}))); err != nil {
				t.Fatalf("honest call: %v", err)
			}
			replayed := honest(dpoptest.Opts{})
			if err := call(headers("Authorization", "DPoP "+at, "DPoP", replayed)); err != nil {
				t.Fatalf("honest call: %v", err)
			}
			thief := dpoptest.NewES256()
			cases := []struct {
				name, auth, proof, wantErr string
			}{
				{"bound token as Bearer", "Bearer " + at, "", "invalid_token"},
				{"bound token as Bearer with a proof", "Bearer " + at, honest(dpoptest.Opts{}), "invalid_token"},
				{"stolen token without a proof", "DPoP " + at, "", "invalid_dpop_proof"},
				{"stolen token, thief's key", "DPoP " + at, thief.Proof("POST", htu, dpoptest.Opts{AccessToken: at}), "invalid_token"},
				{"replayed proof", "DPoP " + at, replayed, "invalid_dpop_proof"},
				{"wrong htu", "DPoP " + at, k.Proof("POST", ts.URL+m2mpbconnect.M2MOAuthServiceGetTokensProcedure, dpoptest.Opts{AccessToken: at}), "invalid_dpop_proof"},
				{"wrong htm", "DPoP " + at, k.Proof("GET", htu, dpoptest.Opts{AccessToken: at}), "invalid_dpop_proof"},
				{"wrong ath", "DPoP " + at, k.Proof("POST", htu, dpoptest.Opts{AccessToken: at + "x"}), "invalid_dpop_proof"},
				{"no ath", "DPoP " + at, k.Proof("POST", htu, dpoptest.Opts{}), "invalid_dpop_proof"},
				{"stale iat", "DPoP " + at, honest(dpoptest.Opts{IATOffset: -5 * time.Minute}), "invalid_dpop_proof"},
				{"alg none", "DPoP " + at, honest(dpoptest.Opts{None: true}), "invalid_dpop_proof"},
				{"HMAC", "DPoP " + at, honest(dpoptest.Opts{HMAC: []byte("k")}), "invalid_dpop_proof"},
				{"private key in jwk", "DPoP " + at, honest(dpoptest.Opts{Header: map[string]any{"jwk": k.JWK(true)}}), "invalid_dpop_proof"},
			}
			for _, c := range cases {
				kv := []string{"Authorization", c.auth}
				if c.proof != "" {
					kv = append(kv, "DPoP", c.proof)
				}
				err := call(headers(kv...))
				var ce *connect.Error
				if connect.CodeOf(err) != connect.CodeUnauthenticated || !asConnect(err, &ce) ||
					!strings.Contains(ce.Meta().Get("WWW-Authenticate"), `DPoP error="`+c.wantErr+`"`) ||
					!strings.Contains(ce.Meta().Get("WWW-Authenticate"), `algs="ES256`) {
					t.Errorf("%s: got %v (WWW-Authenticate %q), want unauthenticated with DPoP error=%q", c.name, err, metaOf(err), c.wantErr)
				}
			}
			// An unbound token may not use the DPoP scheme.
			plain, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "svc", ClientSecret: m2mSecret})
			if err != nil || plain.TokenType != "Bearer" {
				t.Fatalf("unbound token: %v %v", plain, err)
			}
			if err := call(headers("Authorization", "DPoP "+plain.AccessToken, "DPoP", k.Proof("POST", htu, dpoptest.Opts{AccessToken: plain.AccessToken}))); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("unbound token with the DPoP scheme: %v", err)
			}
		})
	}
}

func asConnect(err error, ce **connect.Error) bool {
	e, ok := err.(*connect.Error)
	*ce = e
	return ok
}

func metaOf(err error) string {
	if e, ok := err.(*connect.Error); ok {
		return e.Meta().Get("WWW-Authenticate")
	}
	return ""
}

// TestDPoPGetTokensStream: the streaming GetTokens accepts a bound token with its proof (the
// replay record rides the deferred revocation check) and refuses a replay, in every protocol.
func TestDPoPGetTokensStream(t *testing.T) {
	ts := startM2M(t, "", nil)
	for name, proto := range dpopProtocols {
		t.Run(name, func(t *testing.T) {
			hc, p := proto()
			k := dpoptest.NewEdDSA()
			at := boundM2M(t, ts, hc, p, k)
			proof := k.Proof("POST", ts.URL+m2mpbconnect.M2MOAuthServiceGetTokensProcedure, dpoptest.Opts{AccessToken: at})
			list := func() (int, error) {
				hc := &http.Client{Transport: headerTransport{base: hc.Transport, kv: []string{"Authorization", "DPoP " + at, "DPoP", proof}}}
				stream, err := m2mpbconnect.NewM2MOAuthServiceClient(hc, ts.URL, p).GetTokens(t.Context(), connect.NewRequest(&m2mpb.GetTokensRequest{}))
				if err != nil {
					return 0, err
				}
				n := 0
				for stream.Receive() {
					n++
				}
				return n, stream.Err()
			}
			if n, err := list(); err != nil || n == 0 {
				t.Fatalf("list: %d tokens, %v", n, err)
			}
			if _, err := list(); connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "invalid_dpop_proof") {
				t.Fatalf("replayed proof: %v, want unauthenticated invalid_dpop_proof", err)
			}
		})
	}
}

type headerTransport struct {
	base http.RoundTripper
	kv   []string
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for i := 0; i < len(h.kv); i += 2 {
		r.Header.Set(h.kv[i], h.kv[i+1])
	}
	if h.base == nil {
		return http.DefaultTransport.RoundTrip(r)
	}
	return h.base.RoundTrip(r)
}

// TestDPoPSessions: a first-party sign-in with a proof binds access and refresh tokens; refreshing
// needs a proof by the same key (another key, or none, revokes the session), over every protocol.
func TestDPoPSessions(t *testing.T) {
	ts := start(t, "", nil)
	for name, proto := range dpopProtocols {
		t.Run(name, func(t *testing.T) {
			hc, p := proto()
			k := dpoptest.NewES256()
			client := func(proof string) authv1connect.AuthServiceClient {
				var opts []connect.ClientOption
				if proof != "" {
					opts = append(opts, headers("DPoP", proof))
				}
				return authv1connect.NewAuthServiceClient(hc, ts.URL, append(opts, p)...)
			}
			tokenURL, refreshURL := ts.URL+authv1connect.AuthServiceTokenProcedure, ts.URL+authv1connect.AuthServiceRefreshTokenProcedure
			resp, err := client(k.Proof("POST", tokenURL, dpoptest.Opts{})).Token(t.Context(), login("alice", password))
			if err != nil || resp.Msg.TokenType != "DPoP" {
				t.Fatalf("login: %v %v", resp, err)
			}
			refresh := func(proof, rt string) (*connect.Response[authv1.TokenResponse], error) {
				return client(proof).RefreshToken(t.Context(), connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: rt}))
			}
			next, err := refresh(k.Proof("POST", refreshURL, dpoptest.Opts{}), resp.Msg.RefreshToken)
			if err != nil || next.Msg.TokenType != "DPoP" {
				t.Fatalf("refresh with the key: %v %v", next, err)
			}
			if jkt := verifyWithJWKS(t, ts, next.Msg.AccessToken)["cnf"].(map[string]any)["jkt"]; jkt != k.Thumbprint() {
				t.Fatalf("refreshed token bound to %v", jkt)
			}
			// A thief with the refresh token but another key: refused, and the session revoked.
			_, err = refresh(dpoptest.NewES256().Proof("POST", refreshURL, dpoptest.Opts{}), next.Msg.RefreshToken)
			if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "invalid_dpop_proof") {
				t.Fatalf("refresh with another key: %v", err)
			}
			if _, err := refresh(k.Proof("POST", refreshURL, dpoptest.Opts{}), next.Msg.RefreshToken); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("session still alive after a refresh with another key: %v", err)
			}
			// Without any proof: refused too.
			again, err := client(k.Proof("POST", tokenURL, dpoptest.Opts{})).Token(t.Context(), login("alice", password))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := refresh("", again.Msg.RefreshToken); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("bound refresh token without a proof: %v", err)
			}
		})
	}
}

// postDPoPForm posts form to /oauth/token with Basic client credentials and a DPoP header.
func postDPoPForm(t *testing.T, ts *testServer, form url.Values, client, proof string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, m2mSecret)
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, resp.Header, out
}

// TestDPoPTokenEndpoint: the form endpoint binds with a valid proof and answers RFC 9449 errors
// (400, invalid_dpop_proof, WWW-Authenticate: DPoP …) to broken ones; a client with
// dpop_bound_access_tokens gets nothing without a proof. Introspection shows the binding.
func TestDPoPTokenEndpoint(t *testing.T) {
	ts := startM2M(t, "", withDPoPClients)
	k := dpoptest.NewES256()
	htu := ts.URL + "/oauth/token"
	form := url.Values{"grant_type": {"client_credentials"}}
	status, _, body := postDPoPForm(t, ts, form, "strict", k.Proof("POST", htu, dpoptest.Opts{}))
	if status != 200 || body["token_type"] != "DPoP" {
		t.Fatalf("bound client_credentials: %d %v", status, body)
	}
	at := body["access_token"].(string)
	in := introspect(t, ts, "svc", at)
	if in["active"] != true || in["token_type"] != "DPoP" || in["cnf"].(map[string]any)["jkt"] != k.Thumbprint() {
		t.Fatalf("introspection %v", in)
	}
	replayed := k.Proof("POST", htu, dpoptest.Opts{})
	if status, _, _ := postDPoPForm(t, ts, form, "svc", replayed); status != 200 {
		t.Fatalf("first use of a proof: %d", status)
	}
	for name, c := range map[string]struct{ client, proof string }{
		"required, missing": {"strict", ""},
		"replayed":          {"svc", replayed},
		"wrong htu":         {"svc", k.Proof("POST", ts.URL+"/oauth/introspect", dpoptest.Opts{})},
		"wrong htm":         {"svc", k.Proof("PUT", htu, dpoptest.Opts{})},
		"stale iat":         {"svc", k.Proof("POST", htu, dpoptest.Opts{IATOffset: -10 * time.Minute})},
		"alg none":          {"svc", k.Proof("POST", htu, dpoptest.Opts{None: true})},
		"HMAC":              {"svc", k.Proof("POST", htu, dpoptest.Opts{HMAC: []byte("k")})},
		"private jwk":       {"svc", k.Proof("POST", htu, dpoptest.Opts{Header: map[string]any{"jwk": k.JWK(true)}})},
	} {
		status, h, body := postDPoPForm(t, ts, form, c.client, c.proof)
		if status != 400 || body["error"] != "invalid_dpop_proof" || !strings.HasPrefix(h.Get("WWW-Authenticate"), `DPoP error="invalid_dpop_proof"`) ||
			!strings.Contains(h.Get("WWW-Authenticate"), "algs=") {
			t.Errorf("%s: %d %v %q", name, status, body, h.Get("WWW-Authenticate"))
		}
	}
	// The same rule over RPC: the strict client without a proof.
	_, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "strict", ClientSecret: m2mSecret})
	if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "invalid_dpop_proof") {
		t.Errorf("strict client over Connect without a proof: %v", err)
	}
}

// TestDPoPNonceFlow: with nonces on, a proof without the nonce gets use_dpop_nonce and a nonce, on
// the form endpoint (400) and on a protected call (401 / unauthenticated); the Go helper
// (dpopclient) retries with it, through golang.org/x/oauth2 and through a connect interceptor.
func TestDPoPNonceFlow(t *testing.T) {
	ts := startM2M(t, "", func(c *config.Config) { c.DPoP.NonceRotateEvery = config.Duration(time.Minute) })
	k := dpoptest.NewES256()
	htu := ts.URL + "/oauth/token"
	form := url.Values{"grant_type": {"client_credentials"}}
	status, h, body := postDPoPForm(t, ts, form, "svc", k.Proof("POST", htu, dpoptest.Opts{}))
	nonce := h.Get("DPoP-Nonce")
	if status != 400 || body["error"] != "use_dpop_nonce" || nonce == "" || !strings.Contains(h.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		t.Fatalf("no nonce: %d %v %v", status, body, h)
	}
	if status, _, body := postDPoPForm(t, ts, form, "svc", k.Proof("POST", htu, dpoptest.Opts{Nonce: nonce})); status != 200 || body["token_type"] != "DPoP" {
		t.Fatalf("with the nonce: %d %v", status, body)
	}

	// The recipe: golang.org/x/oauth2 with dpopclient's transport, then the connect interceptor.
	key, err := dpopclient.New()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, &http.Client{Transport: key.Transport(nil)})
	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: m2mSecret, TokenURL: htu}
	tok, err := cc.Token(ctx)
	if err != nil || tok.Type() != "DPoP" {
		t.Fatalf("x/oauth2 with dpopclient: %v %v", tok, err)
	}
	for name, proto := range dpopProtocols {
		hc, p := proto()
		c := m2mpbconnect.NewM2MOAuthServiceClient(hc, ts.URL, p, connect.WithInterceptors(key.Interceptor(ts.URL, func() string { return tok.AccessToken })))
		if _, err := c.DeleteTokens(t.Context(), connect.NewRequest(&m2mpb.DeleteTokensRequest{IdFilter: []string{"none"}})); err != nil {
			t.Errorf("%s: protected call through dpopclient's interceptor: %v", name, err)
		}
	}
	// A protected call with a stale nonce: unauthenticated use_dpop_nonce with a fresh one (the
	// nonce is checked before the key, so any key shows it).
	hc, p := dpopProtocols["connect+json"]()
	dh := ts.URL + m2mpbconnect.M2MOAuthServiceDeleteTokensProcedure
	c := m2mpbconnect.NewM2MOAuthServiceClient(hc, ts.URL, p, headers("Authorization", "DPoP "+tok.AccessToken, "DPoP",
		dpoptest.NewES256().Proof("POST", dh, dpoptest.Opts{AccessToken: tok.AccessToken, Nonce: "stale"})))
	_, err = c.DeleteTokens(t.Context(), connect.NewRequest(&m2mpb.DeleteTokensRequest{}))
	var ce *connect.Error
	if !asConnect(err, &ce) || ce.Code() != connect.CodeUnauthenticated || ce.Meta().Get("DPoP-Nonce") == "" ||
		!strings.Contains(ce.Meta().Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		t.Fatalf("stale nonce on a protected call: %v %v", err, metaOf(err))
	}
}

// TestDPoPBoundTokenVerifiesWithGoJOSE: a bound token verifies with go-jose, a standard JOSE/JWT
// library, against the published JWKS, and carries cnf.jkt.
func TestDPoPBoundTokenVerifiesWithGoJOSE(t *testing.T) {
	ts := startM2M(t, "", nil)
	k := dpoptest.NewES256()
	hc, p := dpopProtocols["connect+json"]()
	at := boundM2M(t, ts, hc, p, k)
	resp, err := http.Get(ts.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	tok, err := josejwt.ParseSigned(at, []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		josejwt.Claims
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if err := tok.Claims(set.Key(tok.Headers[0].KeyID)[0].Key, &claims); err != nil {
		t.Fatalf("go-jose verify: %v", err)
	}
	if err := claims.ValidateWithLeeway(josejwt.Expected{Issuer: ts.URL, Time: time.Now()}, time.Second); err != nil {
		t.Fatal(err)
	}
	if claims.Cnf.JKT != k.Thumbprint() {
		t.Fatalf("cnf.jkt %q, want %q", claims.Cnf.JKT, k.Thumbprint())
	}
}

// TestDPoPDiscoveryAndCORS: discovery lists the proof algs; CORS lets browsers send DPoP and read
// DPoP-Nonce and WWW-Authenticate.
func TestDPoPDiscoveryAndCORS(t *testing.T) {
	ts := start(t, "", nil)
	resp, err := http.Get(ts.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	algs, _ := doc["dpop_signing_alg_values_supported"].([]any)
	if len(algs) < 2 || algs[0] != "ES256" {
		t.Fatalf("dpop_signing_alg_values_supported = %v", doc["dpop_signing_alg_values_supported"])
	}
	req, _ := http.NewRequest(http.MethodOptions, ts.URL+authv1connect.AuthServiceTokenProcedure, nil)
	req.Header.Set("Origin", "http://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,dpop")
	pre, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pre.Body.Close()
	if !strings.Contains(strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers")), "dpop") {
		t.Fatalf("preflight allows %q", pre.Header.Get("Access-Control-Allow-Headers"))
	}
	req, _ = http.NewRequest(http.MethodPost, ts.URL+authv1connect.AuthServiceTokenProcedure, strings.NewReader("{}"))
	req.Header.Set("Origin", "http://app.example")
	req.Header.Set("Content-Type", "application/json")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	exp := strings.ToLower(r.Header.Get("Access-Control-Expose-Headers"))
	if !strings.Contains(exp, "dpop-nonce") || !strings.Contains(exp, "www-authenticate") {
		t.Fatalf("exposed headers %q", exp)
	}
}

// TestDPoPRevocation: binding adds a check, never a revocation source: a bound token dies with
// exactly what kills its bearer twin (authz.Sources). A first-party session's bound token dies
// with the session's logout; a bound token traded for an API token (GetAccessToken, by the API
// token's secret: the only credential that path takes) dies with the API token.
func TestDPoPRevocation(t *testing.T) {
	ts := start(t, "", nil)
	k := dpoptest.NewES256()
	hc, p := dpopProtocols["connect+json"]()
	auth := func(proc string) authv1connect.AuthServiceClient {
		return authv1connect.NewAuthServiceClient(hc, ts.URL, p, headers("DPoP", k.Proof("POST", ts.URL+proc, dpoptest.Opts{})))
	}
	login, err := auth(authv1connect.AuthServiceTokenProcedure).Token(t.Context(), login("alice", password))
	if err != nil {
		t.Fatal(err)
	}
	at := login.Msg.AccessToken
	api := func(token, proc string) tokenservicev1alpha1connect.TokenServiceClient {
		return tokenservicev1alpha1connect.NewTokenServiceClient(hc, ts.URL, p, headers("Authorization", "DPoP "+token,
			"DPoP", k.Proof("POST", ts.URL+proc, dpoptest.Opts{AccessToken: token})))
	}
	m2mDelete := func(token string) error {
		proc := m2mpbconnect.M2MOAuthServiceDeleteTokensProcedure
		_, err := m2mpbconnect.NewM2MOAuthServiceClient(hc, ts.URL, p, headers("Authorization", "DPoP "+token,
			"DPoP", k.Proof("POST", ts.URL+proc, dpoptest.Opts{AccessToken: token}))).
			DeleteTokens(t.Context(), connect.NewRequest(&m2mpb.DeleteTokensRequest{IdFilter: []string{"none"}}))
		return err
	}
	created, err := api(at, tokenservicev1alpha1connect.TokenServiceCreateTokenProcedure).CreateToken(t.Context(), connect.NewRequest(&tsv1.CreateTokenRequest{Name: "bound"}))
	if err != nil {
		t.Fatalf("CreateToken with a bound first-party token: %v", err)
	}
	traded, err := tokenservicev1alpha1connect.NewTokenServiceClient(hc, ts.URL, p, headers("DPoP",
		k.Proof("POST", ts.URL+tokenservicev1alpha1connect.TokenServiceGetAccessTokenProcedure, dpoptest.Opts{}))).
		GetAccessToken(t.Context(), connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: created.Msg.Token.Secret}))
	if err != nil {
		t.Fatal(err)
	}
	apiAT := traded.Msg.AccessToken
	if c := verifyWithJWKS(t, ts, apiAT); c["kind"] != "api_token" || c["cnf"].(map[string]any)["jkt"] != k.Thumbprint() {
		t.Fatalf("traded token claims %v", c)
	}
	// An API-token token may not create API tokens (first-party sessions only), bound or not.
	_, err = api(apiAT, tokenservicev1alpha1connect.TokenServiceCreateTokenProcedure).CreateToken(t.Context(), connect.NewRequest(&tsv1.CreateTokenRequest{}))
	wantCode(t, err, connect.CodePermissionDenied)
	if err := m2mDelete(apiAT); err != nil {
		t.Fatalf("bound API-token token on an M2M call: %v", err)
	}
	// Deleting the API token kills the bound token traded for it.
	if _, err := api(at, tokenservicev1alpha1connect.TokenServiceDeleteTokenProcedure).DeleteToken(t.Context(), connect.NewRequest(&tsv1.DeleteTokenRequest{Id: created.Msg.Token.Id})); err != nil {
		t.Fatal(err)
	}
	wantCode(t, m2mDelete(apiAT), connect.CodeUnauthenticated)
	// Logging out kills the session's bound token.
	if _, err := auth(authv1connect.AuthServiceLogoutProcedure).Logout(t.Context(), connect.NewRequest(&authv1.LogoutRequest{RefreshToken: login.Msg.RefreshToken})); err != nil {
		t.Fatal(err)
	}
	_, err = api(at, tokenservicev1alpha1connect.TokenServiceListTokensProcedure).ListTokens(t.Context(), connect.NewRequest(&tsv1.ListTokensRequest{}))
	wantCode(t, err, connect.CodeUnauthenticated)
}

// TestDPoPPublicClientExchange: a public client's code exchange with a proof binds the access token
// and the refresh token (the family records the key): the refresh_token grant of /oauth/token
// needs a proof by that key.
func TestDPoPPublicClientExchange(t *testing.T) {
	ts := startCodeServer(t, nil)
	k := dpoptest.NewES256()
	req := codeRequest(1002, codeRedirect, "read")
	req.CodeChallenge, req.CodeChallengeMethod = testChallenge, "S256"
	code, err := codeClient(ts, accessToken(t, ts, "alice")).GenerateAuthorizationCode(t.Context(), connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	c := authpbconnect.NewAuthServiceClient(http.DefaultClient, ts.URL, connect.WithProtoJSON(),
		headers("DPoP", k.Proof("POST", ts.URL+authpbconnect.AuthServiceExchangeTokenProcedure, dpoptest.Opts{})))
	ex, err := c.ExchangeToken(t.Context(), exchangeReq(code.Msg.Code, 1002, "", codeRedirect, testVerifier))
	if err != nil {
		t.Fatal(err)
	}
	if jkt := verifyWithJWKS(t, ts, ex.Msg.AccessToken)["cnf"].(map[string]any)["jkt"]; jkt != k.Thumbprint() {
		t.Fatalf("exchanged token bound to %v", jkt)
	}
	refresh := func(proof string) (int, map[string]any) {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ex.Msg.RefreshToken}, "client_id": {"1002"}}
		r, _ := http.NewRequest(http.MethodPost, ts.URL+"/oauth/token", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if proof != "" {
			r.Header.Set("DPoP", proof)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if status, body := refresh(dpoptest.NewES256().Proof("POST", ts.URL+"/oauth/token", dpoptest.Opts{})); status != 400 || body["error"] != "invalid_dpop_proof" {
		t.Fatalf("refresh grant with another key: %d %v", status, body)
	}
	// That revoked the session: the right key is too late now.
	if status, body := refresh(k.Proof("POST", ts.URL+"/oauth/token", dpoptest.Opts{})); status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("refresh after the thief's try: %d %v", status, body)
	}
}

// TestDPoPBoundAssertion: a DPoP-bound token of tokend used as a client assertion (a user buying
// M2M tokens) is good only with a proof of its key, and the M2M token is bound to it too.
func TestDPoPBoundAssertion(t *testing.T) {
	ts := startM2M(t, "", nil)
	k := dpoptest.NewES256()
	login, err := authv1connect.NewAuthServiceClient(http.DefaultClient, ts.URL, connect.WithProtoJSON(),
		headers("DPoP", k.Proof("POST", ts.URL+authv1connect.AuthServiceTokenProcedure, dpoptest.Opts{}))).Token(t.Context(), login("alice", password))
	if err != nil {
		t.Fatal(err)
	}
	create := func(proof string) (*connect.Response[m2mpb.CreateTokenResponse], error) {
		var opts []connect.ClientOption
		if proof != "" {
			opts = append(opts, headers("DPoP", proof))
		}
		return m2mClient(ts, opts...).CreateToken(t.Context(), connect.NewRequest(&m2mpb.CreateTokenRequest{ClientId: "viaassert",
			GrantType: "client_credentials", ClientAssertionType: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
			ClientAssertion: login.Msg.AccessToken}))
	}
	htu := ts.URL + m2mpbconnect.M2MOAuthServiceCreateTokenProcedure
	for name, proof := range map[string]string{"no proof": "", "another key": dpoptest.NewES256().Proof("POST", htu, dpoptest.Opts{})} {
		if _, err := create(proof); connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "invalid_dpop_proof") {
			t.Errorf("bound assertion, %s: %v", name, err)
		}
	}
	got, err := create(k.Proof("POST", htu, dpoptest.Opts{}))
	if err != nil || got.Msg.TokenType != "DPoP" {
		t.Fatalf("bound assertion with its key: %v %v", got, err)
	}
}
