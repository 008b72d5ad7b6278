package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/config"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
	"github.com/tokend/tokend/handlers"
)

// httpFrom is an HTTP client whose connections come from the loopback
// address ip; h2 makes it speak HTTP/2 without TLS (gRPC).
func httpFrom(ip string, h2 bool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	if h2 {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Transport: tr}
}

// TestNoLockOutFromElsewhere: wrong passwords from one address throttle
// that address, not the user: the right password from another address
// still signs in.
func TestNoLockOutFromElsewhere(t *testing.T) {
	backends(t, func(t *testing.T, redisURL string) {
		ts := start(t, redisURL, func(c *config.Config) {
			c.LoginThrottle.MaxFailures = 3
			c.LoginThrottle.MaxFailuresPerUser = 100
		})
		ctx := context.Background()
		attacker := from(ts.URL, "127.0.0.2")
		for i := range 20 {
			_, err := attacker.Token(ctx, login("alice", fmt.Sprintf("guess-%d", i)))
			if i < 3 {
				wantCode(t, err, connect.CodeUnauthenticated)
			} else {
				wantCode(t, err, connect.CodeResourceExhausted)
				if s, ok := handlers.RetryAfter(err); !ok || s < 1 {
					t.Fatalf("throttled without retry info: %v", err)
				}
			}
		}
		if _, err := from(ts.URL, "127.0.0.3").Token(ctx, login("alice", password)); err != nil {
			t.Fatalf("alice from her own address after an attack elsewhere: %v", err)
		}
		// The attacker's address is throttled whatever name it tries.
		_, err := attacker.Token(ctx, login("bob", "x"))
		wantCode(t, err, connect.CodeResourceExhausted)
	})
}

// TestClientSecretGuessingThrottled: wrong client secrets on every
// endpoint that checks one count against (client, address) and the
// address; past client_auth_throttle.max_failures the address gets
// resource_exhausted with retry info, or 429 with Retry-After, even with
// the right secret, while other addresses are served. Refusals are logged
// (client id and address, never the secret) and counted in /metrics.
func TestClientSecretGuessingThrottled(t *testing.T) {
	ts := startM2M(t, "", func(c *config.Config) { c.ClientAuthThrottle.MaxFailures = 3 })
	ctx := context.Background()
	const wrong = "wrong-secret-guess"
	create := func(hc *http.Client, secret string, opts ...connect.ClientOption) error {
		_, err := m2mpbconnect.NewM2MOAuthServiceClient(hc, ts.URL, opts...).CreateToken(ctx,
			connect.NewRequest(&m2mpb.CreateTokenRequest{GrantType: "client_credentials", ClientId: "svc", ClientSecret: secret, Audience: []string{"api"}}))
		return err
	}
	form := func(hc *http.Client, path string, v url.Values) *http.Response {
		resp, err := hc.PostForm(ts.URL+path, v)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	attacker := httpFrom("127.0.0.2", false)
	for range 3 {
		wantCode(t, create(attacker, wrong, connect.WithProtoJSON()), connect.CodeUnauthenticated)
	}
	for name, err := range map[string]error{
		"connect, wrong secret": create(attacker, wrong),
		"connect, right secret": create(attacker, m2mSecret),
		"grpc":                  create(httpFrom("127.0.0.2", true), wrong, connect.WithGRPC()),
		"grpc-web":              create(attacker, wrong, connect.WithGRPCWeb()),
		"RefreshToken": func() error {
			_, err := from(ts.URL, "127.0.0.2").RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{
				RefreshToken: "x", ClientId: "svc", ClientSecret: wrong}))
			return err
		}(),
	} {
		if connect.CodeOf(err) != connect.CodeResourceExhausted {
			t.Errorf("%s: %v, want resource_exhausted", name, err)
		} else if s, ok := handlers.RetryAfter(err); !ok || s < 1 {
			t.Errorf("%s: no retry info in %v", name, err)
		}
	}
	for _, path := range []string{"/oauth/token", "/oauth/introspect", "/oauth/revoke"} {
		resp := form(attacker, path, url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc"},
			"client_secret": {wrong}, "token": {"x"}})
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != http.StatusTooManyRequests || err != nil || n < 1 {
			t.Errorf("%s: %d Retry-After %q, want 429 with Retry-After", path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}

	// Another address: unaffected.
	if err := create(httpFrom("127.0.0.3", false), m2mSecret); err != nil {
		t.Fatalf("the client from another address: %v", err)
	}
	if resp := form(httpFrom("127.0.0.3", false), "/oauth/introspect", url.Values{"client_id": {"svc"}, "client_secret": {wrong}, "token": {"x"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong secret from another address: %d, want 401", resp.StatusCode)
	}

	logs := ts.logs.String()
	if strings.Contains(logs, wrong) || strings.Contains(logs, m2mSecret) {
		t.Error("a client secret is in the log")
	}
	if !regexp.MustCompile(`"msg":"client authentication refused","event":"client_auth.refused","client_id":"svc","addr":"127.0.0.2","reason":"throttled"`).MatchString(logs) {
		t.Errorf("no refusal logged with client id and address:\n%s", logs)
	}
	_, metrics := get(t, ts.URL+"/metrics")
	for _, want := range []string{`tokend_client_auth_refused_total{reason="credentials"} 4`, `tokend_client_auth_refused_total{reason="throttled"} 8`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestTrustedProxyNamesTheClient: behind a trusted proxy the limits count
// the address its X-Forwarded-For names; an untrusted peer's header is
// ignored.
func TestTrustedProxyNamesTheClient(t *testing.T) {
	ts := start(t, "", func(c *config.Config) {
		c.LoginThrottle.MaxFailures = 2
		c.TrustedProxies = []string{"127.0.0.2/32"}
	})
	ctx := context.Background()
	via := func(peer, forwarded string) error {
		client := from(ts.URL, peer)
		req := login("alice", "wrong")
		req.Header().Set("X-Forwarded-For", forwarded)
		_, err := client.Token(ctx, req)
		return err
	}
	for range 2 {
		wantCode(t, via("127.0.0.2", "198.51.100.1"), connect.CodeUnauthenticated)
	}
	wantCode(t, via("127.0.0.2", "198.51.100.1"), connect.CodeResourceExhausted) // that client is throttled
	wantCode(t, via("127.0.0.2", "198.51.100.2"), connect.CodeUnauthenticated)   // another behind the same proxy is not
	// An untrusted peer cannot pick its address: its header is ignored,
	// so it neither escapes its own limit nor spends another's.
	for i := range 2 {
		wantCode(t, via("127.0.0.3", fmt.Sprintf("198.51.100.%d", 10+i)), connect.CodeUnauthenticated)
	}
	wantCode(t, via("127.0.0.3", "198.51.100.99"), connect.CodeResourceExhausted)
	wantCode(t, via("127.0.0.2", "127.0.0.3"), connect.CodeResourceExhausted) // the proxy naming that peer: the same counter
}

// TestM2MQuota: an owner at tokens.max_m2m_tokens_per_owner gets
// resource_exhausted (429 on the token endpoint); other owners are served.
func TestM2MQuota(t *testing.T) {
	ts := startM2M(t, "", func(c *config.Config) { c.Tokens.MaxM2MTokensPerOwner = 2 })
	for range 2 {
		if _, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "svc", ClientSecret: m2mSecret, Audience: []string{"api"}}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "svc", ClientSecret: m2mSecret, Audience: []string{"api"}})
	wantCode(t, err, connect.CodeResourceExhausted)
	resp, err := http.PostForm(ts.URL+"/oauth/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {"svc"}, "client_secret": {m2mSecret}, "audience": {"api"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("token endpoint at the quota: %d, want 429", resp.StatusCode)
	}
	if _, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "other", ClientSecret: m2mSecret, Audience: []string{"api"}}); err != nil {
		t.Errorf("another owner: %v", err)
	}
}
