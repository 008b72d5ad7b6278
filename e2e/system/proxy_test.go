package system

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/redisstore/redistest"
)

// startHAProxy runs Debian's haproxy in front of backend (host:port),
// appending the client's address to X-Forwarded-For, and returns its
// address. Missing haproxy skips the test outside CI and fails it in CI.
func startHAProxy(t *testing.T, backend string) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/haproxy"); err != nil {
			needTool(t, "haproxy")
		}
		bin = "/usr/sbin/haproxy"
	}
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`global
  maxconn 512
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend front
  bind %s
  option forwardfor
  default_backend tokend
backend tokend
  server tokend %s
`, addr, backend)
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("haproxy logs:\n%s", logs)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		select {
		case <-done:
			t.Fatalf("haproxy exited:\n%s", logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy not listening after 10s:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clientFrom is an HTTP/1.1 client whose connections come from the
// loopback address ip.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// TestBehindReverseProxy: tokend behind haproxy, which it trusts, with
// clients on several loopback addresses. The limits count each client's
// own address (not the proxy's, which every client shares), a client
// cannot choose its address with a forged X-Forwarded-For, one attacker
// cannot lock a user out from elsewhere, and client-secret guessing is
// throttled per client address, logged with that address.
func TestBehindReverseProxy(t *testing.T) {
	redis := redistest.Start(t)
	key := signingKey(t)
	p := startTokend(t, func(addr string) string {
		cfg := configYAML(t, addr, redis.URL, key, "trusted_proxies: [127.0.0.1/32]\nclient_auth_throttle: {max_failures: 3, window: 1m}\n")
		return strings.Replace(strings.Replace(cfg, "  max_failures: 1000\n", "  max_failures: 3\n", 1), "max_failures_per_user: 100000", "max_failures_per_user: 100", 1)
	})
	proxy := "http://" + startHAProxy(t, p.Addr)

	login := func(from, user, pass string, header ...string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, proxy+"/auth.v1.AuthService/Token",
			strings.NewReader(fmt.Sprintf(`{"passwordCredential":{"username":%q,"password":%q}}`, user, pass)))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := clientFrom(from).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	const unauthenticated, throttled = 401, 429 // Connect's HTTP statuses
	for i := range 3 {
		if got := login("127.0.0.2", "alice", fmt.Sprintf("guess-%d", i)); got != unauthenticated {
			t.Fatalf("guess %d: %d", i, got)
		}
	}
	if got := login("127.0.0.2", "alice", "guess-3"); got != throttled {
		t.Fatalf("4th guess from one address: %d, want %d", got, throttled)
	}
	if got := login("127.0.0.2", "alice", "guess-4", "X-Forwarded-For", "127.0.0.77"); got != throttled {
		t.Fatalf("a forged X-Forwarded-For escaped the limit: %d", got)
	}
	if got := login("127.0.0.3", "alice", alicePassword); got != 200 {
		t.Fatalf("alice from another address behind the same proxy: %d, want 200", got)
	}
	if got := login("127.0.0.3", "bob", bobPassword); got != 200 {
		t.Fatalf("bob from another address: %d, want 200", got)
	}

	token := func(from, secret string) *http.Response {
		t.Helper()
		resp, err := clientFrom(from).PostForm(proxy+"/oauth/token", url.Values{"grant_type": {"client_credentials"},
			"client_id": {"svc"}, "client_secret": {secret}, "audience": {"api"}})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for range 3 {
		if resp := token("127.0.0.4", "wrong-secret"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong secret: %d", resp.StatusCode)
		}
	}
	if resp := token("127.0.0.4", clientSecret); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("after 3 wrong secrets: %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := token("127.0.0.5", clientSecret); resp.StatusCode != http.StatusOK {
		t.Fatalf("the client from another address: %d", resp.StatusCode)
	}
	logs := p.logs.String()
	if !strings.Contains(logs, `"client authentication refused","event":"client_auth.refused","client_id":"svc","addr":"127.0.0.4"`) {
		t.Errorf("refusals not logged with the client's own address:\n%s", logs)
	}
	if strings.Contains(logs, "wrong-secret") {
		t.Error("a client secret is in the log")
	}
}
