package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/config"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	"github.com/tokend/tokend/passhash"
	"github.com/tokend/tokend/redisstore/redistest"
	"github.com/tokend/tokend/server"
)

const (
	password = "correct horse battery staple"
)

// passwordHash is computed once: bcrypt at its minimum cost keeps tests fast;
// the hash algorithm is not what these tests are about.
var passwordHash = sync.OnceValue(func() string {
	h, err := passhash.HashBcrypt(password, 4)
	if err != nil {
		panic(err)
	}
	return h
})

type testServer struct {
	URL    string
	cfg    *config.Config
	srv    *server.Server
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer // everything the server logged, at debug level
}

// syncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a tokend server on a free loopback port over redisURL ("" is
// the embedded Redis). edit adjusts the configuration first.
func start(t *testing.T, redisURL string, edit func(*config.Config)) *testServer {
	t.Helper()
	return startWith(t, redisURL, edit)
}

// startWith is start with server options.
func startWith(t *testing.T, redisURL string, edit func(*config.Config), opts ...server.Option) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	cfg := config.Default()
	cfg.Addr = ln.Addr().String()
	cfg.Issuer = base
	cfg.Redis.URL = redisURL
	cfg.Tokens.RefreshReuseGrace = 0
	cfg.LoginThrottle.MaxFailures = 5
	cfg.Users = []config.User{{ID: 7, Username: "alice", PasswordHash: passwordHash()}}
	cfg.CORS.AllowedOrigins = []string{"http://app.example"}
	cfg.Limits.MaxRequestBytes = 64 << 10
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.New(ctx, &cfg, log, opts...)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ts := &testServer{URL: base, cfg: &cfg, srv: s, cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { ts.done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ts.done; err != nil {
			t.Errorf("serve: %v", err)
		}
		_ = s.Close()
	})
	return ts
}

// h2c is an HTTP client speaking HTTP/2 without TLS, as gRPC clients do.
func h2c() *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

// from returns a Connect JSON client whose connections come from the
// loopback address ip (127.0.0.0/8), so tests can act as distinct clients.
func from(baseURL, ip string) authv1connect.AuthServiceClient {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	return authv1connect.NewAuthServiceClient(&http.Client{Transport: tr}, baseURL, connect.WithProtoJSON())
}

// protocols are the four ways clients reach tokend.
var protocols = map[string]func(baseURL string) authv1connect.AuthServiceClient{
	"connect+json": func(u string) authv1connect.AuthServiceClient {
		return authv1connect.NewAuthServiceClient(http.DefaultClient, u, connect.WithProtoJSON())
	},
	"connect+proto": func(u string) authv1connect.AuthServiceClient {
		return authv1connect.NewAuthServiceClient(http.DefaultClient, u)
	},
	"grpc": func(u string) authv1connect.AuthServiceClient {
		return authv1connect.NewAuthServiceClient(h2c(), u, connect.WithGRPC())
	},
	"grpc-web": func(u string) authv1connect.AuthServiceClient {
		return authv1connect.NewAuthServiceClient(http.DefaultClient, u, connect.WithGRPCWeb())
	},
}

func login(user, pass string) *connect.Request[authv1.TokenRequest] {
	return connect.NewRequest(&authv1.TokenRequest{Credential: &authv1.TokenRequest_PasswordCredential{
		PasswordCredential: &authv1.PasswordCredential{Username: user, Password: pass},
	}})
}

func wantCode(t *testing.T, err error, code connect.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want %v", code)
	}
	if got := connect.CodeOf(err); got != code {
		t.Fatalf("got %v (%v), want %v", got, err, code)
	}
}

// backends runs f against the embedded Redis and a real redis-server.
func backends(t *testing.T, f func(t *testing.T, redisURL string)) {
	t.Run("miniredis", func(t *testing.T) { f(t, "") })
	t.Run("redis", func(t *testing.T) { f(t, redistest.Start(t).URL) })
}

func TestLoginEveryProtocol(t *testing.T) {
	ts := start(t, "", nil)
	for name, newClient := range protocols {
		t.Run(name, func(t *testing.T) {
			resp, err := newClient(ts.URL).Token(context.Background(), login("alice", password))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Msg.AccessToken == "" || resp.Msg.RefreshToken == "" || resp.Msg.TokenType != "Bearer" || resp.Msg.ExpiresIn <= 0 {
				t.Fatalf("incomplete response: %v", resp.Msg)
			}
		})
	}
}

func TestLoginFailures(t *testing.T) {
	backends(t, func(t *testing.T, redisURL string) {
		ts := start(t, redisURL, func(c *config.Config) {
			c.LoginThrottle.MaxFailures = 3
			c.LoginThrottle.MaxFailuresPerUser = 3
		})
		ctx := context.Background()
		// Each attempt from its own address, so only the username's
		// ceiling (login_throttle.max_failures_per_user) counts.
		next := 1
		client := func() authv1connect.AuthServiceClient {
			next++
			return from(ts.URL, fmt.Sprintf("127.0.0.%d", next))
		}

		_, errWrong := client().Token(ctx, login("alice", "wrong"))
		wantCode(t, errWrong, connect.CodeUnauthenticated)
		_, errUnknown := client().Token(ctx, login("mallory", "wrong"))
		wantCode(t, errUnknown, connect.CodeUnauthenticated)
		if errWrong.(*connect.Error).Message() != errUnknown.(*connect.Error).Message() {
			t.Fatalf("wrong password and unknown user must look alike: %v / %v", errWrong, errUnknown)
		}

		_, err := client().Token(ctx, connect.NewRequest(&authv1.TokenRequest{}))
		wantCode(t, err, connect.CodeInvalidArgument)

		// Two more failures for alice reach the ceiling of 3; then even the
		// right password is refused, without saying whether it was right.
		for range 2 {
			_, err := client().Token(ctx, login("alice", "wrong"))
			wantCode(t, err, connect.CodeUnauthenticated)
		}
		_, err = client().Token(ctx, login("alice", password))
		wantCode(t, err, connect.CodeResourceExhausted)
		_, err = client().Token(ctx, login("alice", "wrong"))
		wantCode(t, err, connect.CodeResourceExhausted)
		// Another user is not affected.
		if _, err := client().Token(ctx, login("mallory", "wrong")); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("another username throttled: %v", err)
		}
	})
}

func TestSuccessfulLoginForgivesFailures(t *testing.T) {
	ts := start(t, "", func(c *config.Config) { c.LoginThrottle.MaxFailures = 3 })
	ctx := context.Background()
	// Two failures and a success, three times over (each round from its
	// own address, whose failures are not forgiven): never throttled, since
	// a success takes the user's failures back.
	for i := range 3 {
		client := from(ts.URL, fmt.Sprintf("127.0.0.%d", 10+i))
		for range 2 {
			_, err := client.Token(ctx, login("alice", "wrong"))
			wantCode(t, err, connect.CodeUnauthenticated)
		}
		if _, err := client.Token(ctx, login("alice", password)); err != nil {
			t.Fatalf("login after two failures: %v", err)
		}
	}
}

func TestLoginThrottlePerAddress(t *testing.T) {
	ts := start(t, "", func(c *config.Config) { c.LoginThrottle.MaxFailures = 3 })
	client := protocols["connect+json"](ts.URL)
	// Different usernames, one address: the address counter trips.
	for i := range 3 {
		_, err := client.Token(context.Background(), login("user"+string(rune('a'+i)), "x"))
		wantCode(t, err, connect.CodeUnauthenticated)
	}
	_, err := client.Token(context.Background(), login("alice", password))
	wantCode(t, err, connect.CodeResourceExhausted)
}

func TestRefreshRotationReuseAndLogout(t *testing.T) {
	backends(t, func(t *testing.T, redisURL string) {
		ts := start(t, redisURL, nil)
		client := protocols["connect+json"](ts.URL)
		ctx := context.Background()
		first, err := client.Token(ctx, login("alice", password))
		if err != nil {
			t.Fatal(err)
		}

		second, err := client.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: first.Msg.RefreshToken}))
		if err != nil {
			t.Fatal(err)
		}
		if second.Msg.RefreshToken == first.Msg.RefreshToken || second.Msg.AccessToken == "" {
			t.Fatal("refresh did not rotate")
		}

		// Reuse of the consumed token (grace 0) revokes the family: the
		// successor dies with it.
		_, err = client.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: first.Msg.RefreshToken}))
		wantCode(t, err, connect.CodeUnauthenticated)
		_, err = client.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: second.Msg.RefreshToken}))
		wantCode(t, err, connect.CodeUnauthenticated)

		// Logout revokes, and is idempotent.
		third, err := client.Token(ctx, login("alice", password))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := client.Logout(ctx, connect.NewRequest(&authv1.LogoutRequest{RefreshToken: third.Msg.RefreshToken})); err != nil {
				t.Fatal(err)
			}
		}
		_, err = client.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: third.Msg.RefreshToken}))
		wantCode(t, err, connect.CodeUnauthenticated)

		_, err = client.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: "garbage"}))
		wantCode(t, err, connect.CodeUnauthenticated)
		_, err = client.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{}))
		wantCode(t, err, connect.CodeInvalidArgument)
	})
}

func TestRefreshGraceWindow(t *testing.T) {
	ts := start(t, "", func(c *config.Config) { c.Tokens.RefreshReuseGrace = config.Duration(time.Hour) })
	client := protocols["connect+json"](ts.URL)
	ctx := context.Background()
	first, err := client.Token(ctx, login("alice", password))
	if err != nil {
		t.Fatal(err)
	}
	// Two parallel refreshes of one token: both succeed inside the window.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	next := make([]string, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := client.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: first.Msg.RefreshToken}))
			errs[i] = err
			if err == nil {
				next[i] = r.Msg.RefreshToken
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("refresh %d inside the grace window: %v", i, err)
		}
	}
	// The family never forks: one successor goes on, and once it is used its
	// sibling is dead — presenting it is reuse, which ends the session.
	third, err := client.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: next[0]}))
	if err != nil {
		t.Fatalf("successor after grace reuse: %v", err)
	}
	_, err = client.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: next[1]}))
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = client.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: third.Msg.RefreshToken}))
	wantCode(t, err, connect.CodeUnauthenticated)
}

// TestAccessTokenVerifiesWithJWKS checks a token the way a resource server
// does: keys from /.well-known/jwks.json, nothing else shared.
func TestAccessTokenVerifiesWithJWKS(t *testing.T) {
	ts := start(t, "", nil)
	resp, err := protocols["connect+json"](ts.URL).Token(context.Background(), login("alice", password))
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(t, ts.URL+"/.well-known/openid-configuration", &disc)
	if disc.Issuer != ts.URL {
		t.Fatalf("issuer %q, want %q", disc.Issuer, ts.URL)
	}
	keys := fetchJWKS(t, disc.JWKSURI[:len(disc.JWKSURI)-len("/.well-known/jwks.json")])
	tok, err := jwt.Parse(resp.Msg.AccessToken, func(tok *jwt.Token) (any, error) {
		if tok.Header["typ"] != "at+jwt" {
			return nil, errors.New("typ is not at+jwt")
		}
		k, ok := keys[tok.Header["kid"].(string)]
		if !ok {
			return nil, errors.New("unknown kid")
		}
		return k, nil
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer(ts.URL), jwt.WithExpirationRequired(), jwt.WithAudience(ts.URL))
	if err != nil {
		t.Fatalf("verify with JWKS: %v", err)
	}
	claims := tok.Claims.(jwt.MapClaims)
	if claims["sub"] != "7" || claims["kind"] != "user" || claims["jti"] == "" || claims["sid"] == "" {
		t.Fatalf("claims %v", claims)
	}
}

// fetchJWKS reads the Ed25519 keys published at base/.well-known/jwks.json.
func fetchJWKS(t *testing.T, base string) map[string]ed25519.PublicKey {
	t.Helper()
	var set struct {
		Keys []struct {
			Kty, Crv, X, Kid, Alg, Use string
		} `json:"keys"`
	}
	getJSON(t, base+"/.well-known/jwks.json", &set)
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.Use != "sig" || k.Kid == "" {
			t.Fatalf("unexpected JWK %+v", k)
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil {
			t.Fatal(err)
		}
		keys[k.Kid] = x
	}
	return keys
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func post(t *testing.T, url, contentType string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBadInputIs4xx(t *testing.T) {
	ts := start(t, "", nil)
	tokenURL := ts.URL + "/auth.v1.AuthService/Token"
	cases := []struct {
		name, contentType string
		body              []byte
	}{
		{"malformed JSON", "application/json", []byte(`{"passwordCredential":`)},
		{"wrong JSON type", "application/json", []byte(`{"passwordCredential":"x"}`)},
		{"unknown field", "application/json", []byte(`{"nope":1}`)},
		{"garbage proto", "application/proto", []byte{0xff, 0xff, 0xff}},
		{"oversized body", "application/json", []byte(`{"passwordCredential":{"username":"` + strings.Repeat("a", 128<<10) + `"}}`)},
		{"unsupported content type", "text/plain", []byte("hi")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := post(t, tokenURL, c.contentType, c.body)
			if status < 400 || status >= 500 {
				t.Fatalf("status %d (%s), want 4xx", status, body)
			}
		})
	}
}

func TestRedisOutageAndRecovery(t *testing.T) {
	redis := redistest.Start(t)
	ts := start(t, redis.URL, nil)
	client := protocols["connect+json"](ts.URL)
	ctx := context.Background()
	first, err := client.Token(ctx, login("alice", password))
	if err != nil {
		t.Fatal(err)
	}

	redis.Stop()
	_, err = client.Token(ctx, login("alice", password))
	wantCode(t, err, connect.CodeUnavailable)
	_, err = client.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: first.Msg.RefreshToken}))
	wantCode(t, err, connect.CodeUnavailable)
	if status, _ := get(t, ts.URL+"/readyz"); status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with Redis down: %d, want 503", status)
	}
	if status, _ := get(t, ts.URL+"/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz with Redis down: %d, want 200 (the process is alive)", status)
	}
	health := grpchealth.NewClient(h2c(), ts.URL, connect.WithGRPC())
	if hr, err := health.Check(ctx, &grpchealth.CheckRequest{}); err != nil || hr.Status != grpchealth.StatusNotServing {
		t.Fatalf("grpc health with Redis down: %v %v", hr, err)
	}

	redis.Restart()
	// The data died with the process (no AOF here); the service itself
	// recovers without a restart.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = client.Token(ctx, login("alice", password))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after Redis restart: %v", err)
	}
	if status, _ := get(t, ts.URL+"/readyz"); status != http.StatusOK {
		t.Fatalf("/readyz after restart: %d", status)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestOperationalEndpoints(t *testing.T) {
	ts := start(t, "", nil)
	ctx := context.Background()
	if _, err := protocols["grpc"](ts.URL).Token(ctx, login("alice", "wrong")); err == nil {
		t.Fatal("wrong password accepted")
	}

	if status, body := get(t, ts.URL+"/healthz"); status != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", status, body)
	}
	if status, _ := get(t, ts.URL+"/readyz"); status != 200 {
		t.Fatalf("/readyz: %d", status)
	}
	status, metrics := get(t, ts.URL+"/metrics")
	if status != 200 || !strings.Contains(metrics, `tokend_rpc_requests_total{code="unauthenticated",procedure="/auth.v1.AuthService/Token"} 1`) ||
		!strings.Contains(metrics, `tokend_rpc_duration_seconds_bucket{procedure="/auth.v1.AuthService/Token"`) {
		t.Fatalf("/metrics lacks the RPC counter or histogram:\n%s", metrics)
	}

	health := grpchealth.NewClient(h2c(), ts.URL, connect.WithGRPC())
	for _, svc := range []string{"", authv1connect.AuthServiceName} {
		hr, err := health.Check(ctx, &grpchealth.CheckRequest{Service: svc})
		if err != nil || hr.Status != grpchealth.StatusServing {
			t.Fatalf("health %q: %v %v", svc, hr, err)
		}
	}
	_, err := health.Check(ctx, &grpchealth.CheckRequest{Service: "nope.Service"})
	wantCode(t, err, connect.CodeNotFound)
}

func TestCORS(t *testing.T) {
	ts := start(t, "", nil)
	req, _ := http.NewRequest(http.MethodOptions, ts.URL+"/auth.v1.AuthService/Token", nil)
	req.Header.Set("Origin", "http://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	// Sorted and lower-case, as browsers send it (rs/cors insists).
	req.Header.Set("Access-Control-Request-Headers", "connect-protocol-version,content-type,x-grpc-web")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://app.example" {
		t.Fatalf("preflight from an allowed origin: Allow-Origin %q", got)
	}

	req.Header.Set("Origin", "http://evil.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("preflight from another origin allowed: %q", got)
	}

	// A real call exposes the gRPC-Web status headers to the page.
	req, _ = http.NewRequest(http.MethodPost, ts.URL+"/auth.v1.AuthService/Token", strings.NewReader(`{}`))
	req.Header.Set("Origin", "http://app.example")
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if exp := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(exp, "Grpc-Status") {
		t.Fatalf("Expose-Headers %q lacks Grpc-Status", exp)
	}
}

func TestGracefulShutdownFinishesInFlightCalls(t *testing.T) {
	ts := start(t, "", func(c *config.Config) {
		// A slow hash makes the login still in flight when shutdown starts.
		h, err := passhash.HashBcrypt(password, 13)
		if err != nil {
			t.Fatal(err)
		}
		c.Users[0].PasswordHash = h
	})
	client := protocols["grpc"](ts.URL)
	errc := make(chan error, 1)
	go func() {
		_, err := client.Token(context.Background(), login("alice", password))
		errc <- err
	}()
	time.Sleep(150 * time.Millisecond) // the call is now hashing (~0.5 s)
	ts.cancel()
	if err := <-errc; err != nil {
		t.Fatalf("in-flight call during shutdown: %v", err)
	}
	if err := <-ts.done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	ts.done <- nil // for the cleanup
	if _, err := client.Token(context.Background(), login("alice", password)); err == nil {
		t.Fatal("server still answering after shutdown")
	}
}
