// Package system tests the built tokend binary as its users meet it: a real
// process on a real port over a real redis-server (single, with AOF, or a
// Redis Cluster), called over every protocol, from the README's own command
// lines, and through faults (Redis killed and restarted, SIGTERM under load,
// two replicas over one Redis).
package system

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokend/tokend/passhash"
)

// binary is the tokend binary TestMain builds from this tree.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokend-system-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tokend")
	build := exec.Command("go", "build", "-o", binary, "github.com/tokend/tokend")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "system: building tokend:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The people and clients every system test configures. Their hashes are
// made once (argon2id is slow on purpose).
const (
	alicePassword = "correct horse battery staple"
	bobPassword   = "tr0ub4dor&3"
	clientSecret  = "client-secret-for-system-tests" // of clients 1001 (codes) and svc (M2M)
	redirectURI   = "http://127.0.0.1:9999/callback"
)

var (
	hashOnce sync.Once
	hashes   map[string]string
)

func hashOf(t testing.TB, secret string) string {
	t.Helper()
	hashOnce.Do(func() {
		hashes = map[string]string{}
		for _, s := range []string{alicePassword, bobPassword, clientSecret} {
			h, err := passhash.HashBcrypt(s, 4) // the lowest cost: these tests are about processes, not hashing
			if err != nil {
				panic(err)
			}
			hashes[s] = h
		}
	})
	h, ok := hashes[secret]
	if !ok {
		t.Fatalf("no hash for %q", secret)
	}
	return h
}

// configYAML is a tokend configuration for a test: alice (id 7) and bob
// (id 8), on addr, over redisURL. extra is appended verbatim. The issuer
// is http://addr; replicas set issuer to share one.
func configYAML(t testing.TB, addr, redisURL, keyFile, extra string) string {
	return configIssuer(t, "http://"+addr, addr, redisURL, keyFile, extra)
}

func configIssuer(t testing.TB, issuer, addr, redisURL, keyFile, extra string) string {
	t.Helper()
	return fmt.Sprintf(`addr: %q
issuer: %q
redis:
  url: %q
signing:
  key_files: [%q]
tokens:
  access_ttl: 15m
  refresh_ttl: 24h
  code_ttl: 1m
  refresh_reuse_grace: 0s
login_throttle:
  max_failures: 1000
  max_failures_per_user: 100000
  window: 1m
log:
  format: json
  level: info
limits:
  max_request_bytes: 65536
  shutdown_timeout: 10s
users:
  - {id: 7, username: alice, password_hash: %q}
  - {id: 8, username: bob, password_hash: %q}
clients:
  - {id: "1001", secret_hash: %q, redirect_uris: [%q], grant_types: [authorization_code, refresh_token], scopes: [read]}
  - {id: svc, secret_hash: %q, grant_types: [client_credentials], owner: svc-owner, audiences: [api, %q], scopes: [read], access_token_lifetime: 1h}
  - {id: self-service, grant_types: [client_credentials], audiences: [api, %q], scopes: [read], access_token_lifetime: 1h, assertion_issuers: [%q]}
%s`, addr, issuer, redisURL, keyFile, hashOf(t, alicePassword), hashOf(t, bobPassword),
		hashOf(t, clientSecret), redirectURI, hashOf(t, clientSecret), issuer, issuer, issuer, extra)
}

// signingKey writes one Ed25519 key (from `tokend keygen`) shared by every
// process of a test, as replicas share theirs.
func signingKey(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(binary, "keygen").Output()
	if err != nil {
		t.Fatalf("tokend keygen: %v", err)
	}
	path := filepath.Join(t.TempDir(), "signing.pem")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// proc is one running tokend process.
type proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	Addr string // 127.0.0.1:port
	URL  string // http://127.0.0.1:port
	File string // the configuration file it runs from
	logs *syncBuffer
	done chan struct{}
	err  error // the exit status, once done is closed
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startTokend runs `tokend serve --config` with the given configuration
// (a function of the address, which startTokend picks) and waits until
// /readyz answers 200. The process is killed at the end of the test if it
// is still running.
func startTokend(t testing.TB, config func(addr string) string) *proc {
	t.Helper()
	addr := freeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "tokend.yaml")
	if err := os.WriteFile(cfgPath, []byte(config(addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, Addr: addr, URL: "http://" + addr, File: cfgPath, logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary, "serve", "--config", cfgPath)
	p.cmd.Env = append(os.Environ(), "TOKEND_ADDR=", "TOKEND_REDIS_URL=")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("tokend %s logs:\n%s", addr, p.logs)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("tokend exited at start (%v):\n%s", p.err, p.logs)
		default:
		}
		resp, err := http.Get(p.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("tokend not ready after 20s:\n%s", p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Signal sends sig to the process.
func (p *proc) Signal(sig syscall.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// Wait waits at most d for the process to exit and returns its status.
func (p *proc) Wait(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.t.Fatalf("tokend still running after %v", d)
		return nil
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(b)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// h2c is an HTTP client that speaks HTTP/2 without TLS (for gRPC), and
// HTTP/1.1 is available through http.DefaultClient.
func h2c() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// postJSON sends a Connect JSON unary call and returns status and body.
func postJSON(t testing.TB, url, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// http1 is a client with its own connection pool, so processes under test
// never share pooled connections.
func http1() *http.Client { return &http.Client{Transport: &http.Transport{}} }

// get returns the status and body of a GET.
func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
