package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"
	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokend/tokend/config"
	tsv1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
	"github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1/tokenservicev1alpha1connect"
	"github.com/tokend/tokend/redisstore/redistest"
	"github.com/tokend/tokend/tokens"
)

// withBob adds a second user.
func withBob(c *config.Config) {
	c.Users = append(c.Users, config.User{ID: 8, Username: "bob", PasswordHash: passwordHash()})
}

// bearer returns a client option that sends the given access token.
func bearer(token string) connect.ClientOption {
	return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}))
}

func accessToken(t *testing.T, ts *testServer, user string) string {
	t.Helper()
	resp, err := protocols["connect+json"](ts.URL).Token(context.Background(), login(user, password))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.AccessToken
}

func apiClient(ts *testServer, token string, opts ...connect.ClientOption) tokenservicev1alpha1connect.TokenServiceClient {
	if token != "" {
		opts = append(opts, bearer(token))
	}
	return tokenservicev1alpha1connect.NewTokenServiceClient(http.DefaultClient, ts.URL, append(opts, connect.WithProtoJSON())...)
}

func TestAPITokenLifecycle(t *testing.T) {
	redis := redistest.Start(t)
	ts := start(t, redis.URL, withBob)
	ctx := context.Background()
	alice := apiClient(ts, accessToken(t, ts, "alice"))

	created, err := alice.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: "ci deploys"}))
	if err != nil {
		t.Fatal(err)
	}
	tok := created.Msg.Token
	if !strings.HasPrefix(tok.Id, "api_token_") || len(tok.Id) != len("api_token_")+26 ||
		!strings.HasPrefix(tok.Secret, "tokend_") || tok.Name != "ci deploys" || tok.CreateTime == nil {
		t.Fatalf("created token %v", tok)
	}

	// The secret buys an access token for alice that names the API token.
	public := apiClient(ts, "")
	got, err := public.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: tok.Secret}))
	if err != nil {
		t.Fatal(err)
	}
	claims := verifyWithJWKS(t, ts, got.Msg.AccessToken)
	if claims["sub"] != "7" || claims["kind"] != tokens.KindAPIToken || claims["api_token_id"] != tok.Id {
		t.Fatalf("claims %v", claims)
	}
	if got.Msg.ExpiresIn <= 0 || got.Msg.ExpiresIn > int64(ts.cfg.Tokens.AccessTTL.D()/time.Second) {
		t.Fatalf("expires_in %d", got.Msg.ExpiresIn)
	}

	// The secret is nowhere in Redis, in keys or values.
	assertNotInRedis(t, redis.URL, tok.Secret)

	// Listing shows the token, never its secret, with its last use.
	list, err := alice.ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Msg.Tokens) != 1 || list.Msg.Tokens[0].Id != tok.Id || list.Msg.Tokens[0].Secret != "" ||
		list.Msg.Tokens[0].LastUsedTime == nil || list.Msg.Tokens[0].Name != "ci deploys" {
		t.Fatalf("list %v", list.Msg.Tokens)
	}

	// Bob sees none of alice's tokens and cannot revoke them.
	bob := apiClient(ts, accessToken(t, ts, "bob"))
	bobList, err := bob.ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
	if err != nil || len(bobList.Msg.Tokens) != 0 {
		t.Fatalf("bob's list: %v %v", bobList, err)
	}
	_, err = bob.DeleteToken(ctx, connect.NewRequest(&tsv1.DeleteTokenRequest{Id: tok.Id}))
	wantCode(t, err, connect.CodeNotFound)
	if _, err := public.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: tok.Secret})); err != nil {
		t.Fatalf("bob's delete attempt broke alice's token: %v", err)
	}

	// An access token minted from the API token passes the bearer check but
	// may not manage API tokens.
	minted := apiClient(ts, got.Msg.AccessToken)
	_, err = minted.ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
	wantCode(t, err, connect.CodePermissionDenied)

	// Revoke: the secret stops working, and so does the minted access token.
	if _, err := alice.DeleteToken(ctx, connect.NewRequest(&tsv1.DeleteTokenRequest{Id: tok.Id})); err != nil {
		t.Fatal(err)
	}
	_, err = public.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: tok.Secret}))
	wantCode(t, err, connect.CodeUnauthenticated)
	// (Still not allowed, it is refused before its revocation is checked;
	// introspection says it is dead.)
	_, err = minted.ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
	wantCode(t, err, connect.CodePermissionDenied)
	_, err = alice.DeleteToken(ctx, connect.NewRequest(&tsv1.DeleteTokenRequest{Id: tok.Id}))
	wantCode(t, err, connect.CodeNotFound)
}

func TestAPITokenBadSecrets(t *testing.T) {
	backends(t, func(t *testing.T, redisURL string) {
		ts := start(t, redisURL, nil)
		ctx := context.Background()
		alice := apiClient(ts, accessToken(t, ts, "alice"))
		created, err := alice.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		secret := created.Msg.Token.Secret
		other, err := alice.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		// Right id and checksum shape, wrong random part: a forged secret.
		forged := secret[:len("tokend_")+26] + other.Msg.Token.Secret[len("tokend_")+26:]

		public := apiClient(ts, "")
		var messages []string
		for name, bad := range map[string]string{
			"wrong":         strings.Replace(secret, secret[len(secret)-12:len(secret)-8], "zzzz", 1),
			"truncated":     secret[:len(secret)-1],
			"other prefix":  "ghp_" + secret[len("tokend_"):],
			"forged":        forged,
			"id not secret": created.Msg.Token.Id,
		} {
			_, err := public.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: bad}))
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("%s secret: %v, want unauthenticated", name, err)
			}
			messages = append(messages, err.(*connect.Error).Message())
		}
		for _, m := range messages {
			if m != messages[0] {
				t.Fatalf("refusals differ: %q", messages)
			}
		}
		_, err = public.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{}))
		wantCode(t, err, connect.CodeInvalidArgument)

		// Managing API tokens needs a signed-in user.
		_, err = public.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{}))
		wantCode(t, err, connect.CodeUnauthenticated)
		_, err = alice.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{ExpireTime: timestamppb.New(time.Now().Add(-time.Minute))}))
		wantCode(t, err, connect.CodeInvalidArgument)
		_, err = alice.DeleteToken(ctx, connect.NewRequest(&tsv1.DeleteTokenRequest{Id: "nope"}))
		wantCode(t, err, connect.CodeInvalidArgument)
	})
}

func TestAPITokenExpiry(t *testing.T) {
	backends(t, func(t *testing.T, redisURL string) {
		ts := start(t, redisURL, nil)
		ctx := context.Background()
		alice := apiClient(ts, accessToken(t, ts, "alice"))
		exp := time.Now().Add(2 * time.Second)
		created, err := alice.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{ExpireTime: timestamppb.New(exp)}))
		if err != nil {
			t.Fatal(err)
		}
		if created.Msg.Token.ExpireTime.AsTime().Unix() != exp.Unix() {
			t.Fatalf("expire_time %v, want %v", created.Msg.Token.ExpireTime.AsTime(), exp)
		}
		public := apiClient(ts, "")
		got, err := public.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: created.Msg.Token.Secret}))
		if err != nil {
			t.Fatal(err)
		}
		// The access token does not outlive its API token.
		if got.Msg.ExpiresIn > 2 {
			t.Fatalf("expires_in %d beyond the API token's expiry", got.Msg.ExpiresIn)
		}
		time.Sleep(time.Until(exp) + 100*time.Millisecond)
		_, err = public.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: created.Msg.Token.Secret}))
		wantCode(t, err, connect.CodeUnauthenticated)
		list, err := alice.ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{}))
		if err != nil || len(list.Msg.Tokens) != 0 {
			t.Fatalf("expired token still listed: %v %v", list, err)
		}
	})
}

// methodRecorder records the HTTP methods a client used.
type methodRecorder struct {
	mu      sync.Mutex
	methods []string
}

func (m *methodRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	m.mu.Lock()
	m.methods = append(m.methods, r.Method)
	m.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func TestGetAccessTokenOverHTTPGet(t *testing.T) {
	ts := start(t, "", nil)
	ctx := context.Background()
	created, err := apiClient(ts, accessToken(t, ts, "alice")).CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	rec := &methodRecorder{}
	client := tokenservicev1alpha1connect.NewTokenServiceClient(&http.Client{Transport: rec}, ts.URL, connect.WithHTTPGet())
	got, err := client.GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: created.Msg.Token.Secret}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Msg.AccessToken == "" || len(rec.methods) != 1 || rec.methods[0] != http.MethodGet {
		t.Fatalf("methods %v, token %q", rec.methods, got.Msg.AccessToken)
	}
}

// assertNotInRedis scans every key and value for s.
func assertNotInRedis(t *testing.T, url, s string) {
	t.Helper()
	opt, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	n := 0
	iter := rdb.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		n++
		var values []string
		switch rdb.Type(ctx, key).Val() {
		case "string":
			values = []string{rdb.Get(ctx, key).Val()}
		case "hash":
			for f, v := range rdb.HGetAll(ctx, key).Val() {
				values = append(values, f, v)
			}
		case "set":
			values = rdb.SMembers(ctx, key).Val()
		case "zset":
			values = rdb.ZRange(ctx, key, 0, -1).Val()
		case "list":
			values = rdb.LRange(ctx, key, 0, -1).Val()
		}
		for _, v := range append(values, key) {
			if strings.Contains(v, s) {
				t.Fatalf("secret found in Redis key %q", key)
			}
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no keys in Redis: the scan proves nothing")
	}
}

// verifyWithJWKS verifies an access token with only the published keys and
// returns its claims.
func verifyWithJWKS(t *testing.T, ts *testServer, token string) jwt.MapClaims {
	t.Helper()
	keys := fetchJWKS(t, ts.URL)
	tok, err := jwt.Parse(token, func(tok *jwt.Token) (any, error) {
		if tok.Header["typ"] != "at+jwt" {
			return nil, jwt.ErrTokenUnverifiable
		}
		kid, _ := tok.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, jwt.ErrTokenUnverifiable
		}
		return k, nil
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer(ts.URL), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("verify with JWKS: %v", err)
	}
	return tok.Claims.(jwt.MapClaims)
}

// Responses are gzipped for clients that accept it only from
// compressMinBytes up: a token response is not worth the CPU, a long list is.
func TestCompressionOnlyForLargeResponses(t *testing.T) {
	ts := start(t, redistest.Start(t).URL, nil)
	token := accessToken(t, ts, "alice")
	call := func(procedure, body string) (encoding string, size int) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+procedure, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept-Encoding", "gzip") // set by hand: Go's client then leaves the body as sent
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", procedure, resp.StatusCode, b)
		}
		return resp.Header.Get("Content-Encoding"), len(b)
	}
	const create = "/priv.tokenservice.v1alpha1.TokenService/CreateToken"
	if enc, n := call(create, `{"name":"small"}`); enc != "" {
		t.Fatalf("a %d-byte token response was sent with Content-Encoding %q", n, enc)
	}
	if enc, n := call("/grpc.health.v1.Health/Check", `{}`); enc != "" {
		t.Fatalf("a %d-byte health answer was sent with Content-Encoding %q", n, enc)
	}
	for i := range 12 {
		call(create, fmt.Sprintf(`{"name":"a token with a long enough name to fill a list, number %d"}`, i))
	}
	if enc, n := call("/priv.tokenservice.v1alpha1.TokenService/ListTokens", `{}`); enc != "gzip" {
		t.Fatalf("a list of 13 tokens was sent with Content-Encoding %q (%d bytes): want gzip", enc, n)
	}
}

// TestAPITokenQuota: a user at tokens.max_api_tokens_per_owner gets
// resource_exhausted; another user is served.
func TestAPITokenQuota(t *testing.T) {
	ts := start(t, "", func(c *config.Config) { withBob(c); c.Tokens.MaxAPITokensPerOwner = 2 })
	ctx := context.Background()
	alice := apiClient(ts, accessToken(t, ts, "alice"))
	for i := range 2 {
		if _, err := alice.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: fmt.Sprint(i)})); err != nil {
			t.Fatal(err)
		}
	}
	_, err := alice.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: "one too many"}))
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("third token: %v, want resource_exhausted", err)
	}
	bob := apiClient(ts, accessToken(t, ts, "bob"))
	if _, err := bob.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{Name: "bob's"})); err != nil {
		t.Errorf("another user: %v", err)
	}
}
