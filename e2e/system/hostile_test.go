package system

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	encbin "encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
	"github.com/tokend/tokend/redisstore/redistest"
)

// withLimits adds keys to the configuration's limits section.
func withLimits(cfg, keys string) string {
	return strings.Replace(cfg, "limits:\n", "limits:\n"+keys, 1)
}

// rssBytes is the resident set size of process pid, from /proc.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// cpuTime is the user+system CPU time process pid has used, from /proc
// (in clock ticks of 10 ms).
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// TestStalledBodiesBounded: 100 HTTP/1.1 connections and 100 HTTP/2
// streams that announce a 1 MB body, send 15 KiB of it (just under the
// login's limit, the most a stalled body can hold) and stop. tokend's RSS
// must grow by less than 64 MB, and every one must be answered and, over
// HTTP/1.1, closed once limits.body_timeout has passed.
func TestStalledBodiesBounded(t *testing.T) {
	const bodyTimeout = 3 * time.Second
	redis := redistest.Start(t)
	key := signingKey(t)
	p := startTokend(t, func(addr string) string {
		return withLimits(configYAML(t, addr, redis.URL, key, ""), "  body_timeout: 3s\n")
	})
	pid := p.cmd.Process.Pid
	for range 20 { // warm up: pools, Redis connections, the first logins
		postJSON(t, p.URL+"/auth.v1.AuthService/Token", `{"passwordCredential":{"username":"alice","password":"x"}}`)
	}
	before := rssBytes(t, pid)
	start := time.Now()
	part := strings.Repeat("a", 15<<10)

	var wg sync.WaitGroup
	answered := make(chan time.Duration, 200)
	for range 100 {
		conn, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /auth.v1.AuthService/Token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n%s", part)
		wg.Go(func() {
			_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
			_, _ = io.Copy(io.Discard, conn) // the answer, then EOF when tokend closes
			answered <- time.Since(start)
		})
	}
	h2 := h2c()
	for range 100 {
		pr, pw := io.Pipe()
		defer pw.Close()
		req, _ := http.NewRequest(http.MethodPost, p.URL+"/auth.v1.AuthService/Token", pr)
		req.Header.Set("Content-Type", "application/json")
		req.ContentLength = 1000000
		wg.Go(func() {
			resp, err := h2.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
		go func() { _, _ = pw.Write([]byte(part)) }()
	}
	time.Sleep(bodyTimeout / 2) // all sent, none answered yet
	peak := rssBytes(t, pid)
	wg.Wait()
	close(answered)
	var last time.Duration
	for d := range answered {
		last = max(last, d)
	}
	growth := peak - before
	t.Logf("RSS %d MB before, %d MB with 100 stalled connections and 100 stalled streams (+%.1f MB); the last connection closed after %s (body_timeout %s)",
		before>>20, peak>>20, float64(growth)/(1<<20), last.Round(10*time.Millisecond), bodyTimeout)
	if growth > 64<<20 {
		t.Errorf("RSS grew by %d MB, want < 64 MB", growth>>20)
	}
	if last > bodyTimeout+5*time.Second {
		t.Errorf("connections closed after %s, want within body_timeout %s (+5s slack)", last, bodyTimeout)
	}
	// Still serving.
	if status, body := postJSON(t, p.URL+"/auth.v1.AuthService/Token", `{"passwordCredential":{"username":"alice","password":"`+alicePassword+`"}}`); status != 200 {
		t.Fatalf("login after the stall: %d %s", status, body)
	}
}

// TestDecompressionBombCPU: gzip bombs on every protocol cost tokend less
// than 50 ms of CPU each: a 1 MB gzip of 1000 MiB (refused by its size
// before any inflating) and one that fits the body limit (inflated only up
// to the largest message).
func TestDecompressionBombCPU(t *testing.T) {
	redis := redistest.Start(t)
	key := signingKey(t)
	p := startTokend(t, func(addr string) string { return configYAML(t, addr, redis.URL, key, "") })
	pid := p.cmd.Process.Pid
	gz := func(mib int) []byte {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		zeros := make([]byte, 1<<20)
		for range mib {
			_, _ = zw.Write(zeros)
		}
		_ = zw.Close()
		return b.Bytes()
	}
	big, small := gz(1000), gz(15)
	envelope := func(msg []byte) []byte {
		b := []byte{1, 0, 0, 0, 0}
		encbin.BigEndian.PutUint32(b[1:], uint32(len(msg)))
		return append(b, msg...)
	}
	type attack struct {
		name   string
		client *http.Client
		ct     string
		enc    string
		body   []byte
	}
	var attacks []attack
	for _, z := range []struct {
		name string
		b    []byte
	}{{"1000 MiB", big}, {"15 MiB", small}} {
		attacks = append(attacks,
			attack{"connect " + z.name, http1(), "application/proto", "Content-Encoding", z.b},
			attack{"grpc " + z.name, h2c(), "application/grpc", "Grpc-Encoding", envelope(z.b)},
			attack{"grpc-web " + z.name, http1(), "application/grpc-web+proto", "Grpc-Encoding", envelope(z.b)},
		)
	}
	const n = 20
	for _, a := range attacks {
		before := cpuTime(t, pid)
		for range n {
			req, _ := http.NewRequest(http.MethodPost, p.URL+"/auth.v1.AuthService/Token", bytes.NewReader(a.body))
			req.Header.Set("Content-Type", a.ct)
			req.Header.Set(a.enc, "gzip")
			resp, err := a.client.Do(req)
			if err != nil {
				// Refused by its size, the rest of the body unread: tokend
				// answers and closes while the client still writes.
				if len(a.body) < 64<<10 {
					t.Fatalf("%s: %v", a.name, err)
				}
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if s := resp.Header.Get("Grpc-Status") + resp.Trailer.Get("Grpc-Status"); resp.StatusCode == 200 && s != "8" && !strings.HasPrefix(a.name, "grpc-web") {
				t.Fatalf("%s: status %d grpc-status %q", a.name, resp.StatusCode, s)
			}
		}
		per := (cpuTime(t, pid) - before) / n
		t.Logf("%s bomb: %s of tokend CPU per request (over %d, %d compressed bytes)", a.name, per, n, len(a.body))
		if per >= 50*time.Millisecond {
			t.Errorf("%s bomb: %s of CPU per request, want < 50 ms", a.name, per)
		}
	}
}

// TestM2MQuotaSharedByReplicas: two replicas over one Redis hold one
// owner to tokens.max_m2m_tokens_per_owner between them.
func TestM2MQuotaSharedByReplicas(t *testing.T) {
	redis := redistest.Start(t)
	key := signingKey(t)
	cfg := func(addr string) string {
		return strings.Replace(configYAML(t, addr, redis.URL, key, ""), "tokens:\n", "tokens:\n  max_m2m_tokens_per_owner: 3\n", 1)
	}
	replicas := []*proc{startTokend(t, cfg), startTokend(t, cfg)}
	status := func(p *proc) int {
		resp, err := http1().PostForm(p.URL+"/oauth/token", map[string][]string{"grant_type": {"client_credentials"},
			"client_id": {"svc"}, "client_secret": {clientSecret}, "audience": {"api"}})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 3 {
		if got := status(replicas[i%2]); got != 200 {
			t.Fatalf("token %d: %d", i+1, got)
		}
	}
	for _, p := range replicas {
		if got := status(p); got != http.StatusTooManyRequests {
			t.Errorf("4th token on %s: %d, want 429", p.Addr, got)
		}
	}
}

// TestHangingForeignIssuer: a trusted issuer whose discovery document
// never comes costs one request (single-flight), a few seconds (the fetch
// timeout), and then nothing while the failure is remembered, however
// many assertions name it.
func TestHangingForeignIssuer(t *testing.T) {
	var requests atomic.Int64
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		<-r.Context().Done()
	}))
	defer foreign.Close()
	redis := redistest.Start(t)
	key := signingKey(t)
	p := startTokend(t, func(addr string) string {
		return configYAML(t, addr, redis.URL, key, fmt.Sprintf(
			"  - {id: federated, grant_types: [client_credentials], audiences: [api], scopes: [read], access_token_lifetime: 1h, assertion_issuers: [%q]}\n", foreign.URL))
	})
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": foreign.URL, "sub": "x", "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "k"
	assertion, _ := tok.SignedString(priv)
	body := fmt.Sprintf(`{"grant_type":"client_credentials","client_id":"federated","client_assertion_type":"urn:ietf:params:oauth:client-assertion-type:jwt-bearer","client_assertion":%q,"audience":["api"]}`, assertion)
	wave := func() time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if status, out := postJSON(t, p.URL+"/m2moauthserver.pb.M2MOAuthService/CreateToken", body); status != http.StatusUnauthorized {
					t.Errorf("status %d %s, want 401", status, out)
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	first, second := wave(), wave()
	t.Logf("20 calls naming a hanging issuer: %s; 20 more: %s; %d requests reached the issuer", first.Round(time.Millisecond), second.Round(time.Millisecond), requests.Load())
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests to the hanging issuer, want 1", n)
	}
	if first > 6*time.Second || second > time.Second {
		t.Errorf("waves took %s and %s; want one fetch timeout (3s) and then none", first, second)
	}
}

// TestTokenResponsesNotStored: responses carrying tokens say
// Cache-Control: no-store on every protocol, M2M tokens included; the
// JWKS stays cacheable.
func TestTokenResponsesNotStored(t *testing.T) {
	redis := redistest.Start(t)
	key := signingKey(t)
	p := startTokend(t, func(addr string) string { return configYAML(t, addr, redis.URL, key, "") })
	for _, pr := range protocols() {
		login, err := authv1connect.NewAuthServiceClient(pr.client, p.URL, pr.opts...).Token(context.Background(), passwordLogin("alice", alicePassword))
		if err != nil {
			t.Fatalf("%s: %v", pr.name, err)
		}
		m2m, err := m2mpbconnect.NewM2MOAuthServiceClient(pr.client, p.URL, pr.opts...).CreateToken(context.Background(),
			connect.NewRequest(&m2mpb.CreateTokenRequest{GrantType: "client_credentials", ClientId: "svc", ClientSecret: clientSecret, Audience: []string{"api"}}))
		if err != nil {
			t.Fatalf("%s: %v", pr.name, err)
		}
		for what, h := range map[string]http.Header{"login": login.Header(), "M2M token": m2m.Header()} {
			if got := h.Get("Cache-Control"); got != "no-store" {
				t.Errorf("%s %s: Cache-Control %q, want no-store", pr.name, what, got)
			}
		}
	}
	resp, err := http.Get(p.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age") {
		t.Errorf("JWKS Cache-Control %q, want cacheable", cc)
	}
}
