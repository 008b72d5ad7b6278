package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/passhash"
	"github.com/tokend/tokend/tokens"
)

func TestHashCommand(t *testing.T) {
	for _, args := range [][]string{{"hash"}, {"hash", "--bcrypt"}} {
		var out bytes.Buffer
		if err := run(args, strings.NewReader("s3cret\n"), &out, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		h := strings.TrimSpace(out.String())
		if err := passhash.Verify(h, "s3cret"); err != nil {
			t.Fatalf("%v printed %q, which does not verify the input: %v", args, h, err)
		}
		if strings.Contains(h, "s3cret") {
			t.Fatal("the hash contains the secret")
		}
	}
	if err := run([]string{"hash"}, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("empty input accepted")
	}
}

func TestKeygenCommand(t *testing.T) {
	for _, alg := range []string{"EdDSA", "ES256", "RS256"} {
		var out bytes.Buffer
		if err := run([]string{"keygen", "--alg", alg}, nil, &out, &out); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "k.pem")
		if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := tokens.LoadKeyFile(path)
		if err != nil {
			t.Fatalf("%s: printed key does not load: %v", alg, err)
		}
		if k.Alg() != alg {
			t.Fatalf("keygen --alg %s made a %s key", alg, k.Alg())
		}
	}
	if err := run([]string{"keygen", "--alg", "HS256"}, nil, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("keygen accepted HS256")
	}
}

func TestCommandErrors(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"serve"}, {"serve", "--config", "/nonexistent/tokend.yaml"}} {
		if err := run(args, nil, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokend.yaml")
	if err := os.WriteFile(path, []byte("addr: 127.0.0.1:0\nbogus_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run([]string{"serve", "--config", path}, nil, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "bogus_key") {
		t.Fatalf("error %v does not name the unknown key", err)
	}
}

// syncBuffer is a bytes.Buffer safe to read while the server writes it.
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

// TestDevModeBannerCurlWorks runs `tokend` with no arguments, as `go run .`
// does, and performs the login the banner prints, as a user pasting it would.
func TestDevModeBannerCurlWorks(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv("TOKEND_ADDR", addr)
	t.Setenv("TOKEND_REDIS_URL", "")

	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- runContext(ctx, nil, nil, &out, io.Discard) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dev server: %v", err)
		}
	}()

	var banner string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if banner = out.String(); strings.Contains(banner, "curl") {
			break
		}
	}
	for _, want := range []string{"DEVELOPMENT MODE", "NOTHING IS KEPT", "demo user", "client_secret="} {
		if !strings.Contains(banner, want) {
			t.Fatalf("banner lacks %q:\n%s", want, banner)
		}
	}
	// The curl line: URL after "POST " and the JSON body between -d '…'.
	url := regexp.MustCompile(`POST (\S+)`).FindStringSubmatch(banner)
	body := regexp.MustCompile(`-d '([^']+)'`).FindStringSubmatch(banner)
	if url == nil || body == nil {
		t.Fatalf("no curl line in the banner:\n%s", banner)
	}
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err = http.Post(url[1], "application/json", strings.NewReader(body[1]))
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct{ AccessToken, RefreshToken string }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 || got.AccessToken == "" || got.RefreshToken == "" {
		t.Fatalf("the printed curl login: %s %+v %v", resp.Status, got, err)
	}
}
