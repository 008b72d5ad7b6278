package server_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
	"github.com/tokend/tokend/tokens"
)

// TestOversizedRequestRefusedOnEveryProtocol: a login larger than any
// legitimate one is resource_exhausted, in the caller's terms.
func TestOversizedRequestRefusedOnEveryProtocol(t *testing.T) {
	ts := start(t, "", nil) // limits.max_request_bytes 64 KiB: the login's own 16 KiB limit applies
	for name, client := range protocols {
		t.Run(name, func(t *testing.T) {
			_, err := client(ts.URL).Token(context.Background(), login("alice", strings.Repeat("x", 20<<10)))
			wantCode(t, err, connect.CodeResourceExhausted)
			if msg := connect.CodeOf(err).String() + ": " + err.Error(); strings.Contains(msg, "http.") || strings.Contains(msg, "*") {
				t.Fatalf("message names Go internals: %s", msg)
			}
		})
	}
}

// bomb is a gzip of n MiB of zeros.
func bomb(t *testing.T, mib int) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range mib {
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()
	return b.Bytes()
}

// TestDecompressionBombRefused: compressed requests are inflated only up
// to the limit, on Connect (Content-Encoding), gRPC and gRPC-Web
// (grpc-encoding), and refused outright on the form endpoints.
func TestDecompressionBombRefused(t *testing.T) {
	ts := start(t, "", nil)
	z := bomb(t, 16) // 16 KiB compressed: inside the login's body limit
	if len(z) > 16<<10 {
		t.Fatalf("bomb is %d bytes", len(z))
	}
	tokenURL := ts.URL + "/auth.v1.AuthService/Token"
	envelope := func(flags byte, msg []byte) []byte {
		b := []byte{flags, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
		return append(b, msg...)
	}
	cases := []struct {
		name   string
		client *http.Client
		header map[string]string
		body   []byte
	}{
		{"connect", http.DefaultClient, map[string]string{"Content-Type": "application/proto", "Content-Encoding": "gzip"}, z},
		{"grpc", h2c(), map[string]string{"Content-Type": "application/grpc", "Grpc-Encoding": "gzip", "TE": "trailers"}, envelope(1, z)},
		{"grpc-web", http.DefaultClient, map[string]string{"Content-Type": "application/grpc-web+proto", "Grpc-Encoding": "gzip"}, envelope(1, z)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, tokenURL, bytes.NewReader(c.body))
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			resp, err := c.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			status := resp.Header.Get("Grpc-Status") + resp.Trailer.Get("Grpc-Status")
			if c.name == "grpc-web" { // status in the headers or the body's trailer frame
				status += string(body)
			}
			if c.name == "connect" {
				var e struct{ Code, Message string }
				_ = json.Unmarshal(body, &e)
				status = e.Code
				if strings.Contains(e.Message, "16777216") {
					t.Fatalf("the bomb was inflated in full to report its size: %s", e.Message)
				}
			}
			if status != "resource_exhausted" && status != "8" && !strings.Contains(status, "grpc-status:8") {
				t.Fatalf("status %d %q, want resource_exhausted", resp.StatusCode, status)
			}
		})
	}
	t.Run("form", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/oauth/token", bytes.NewReader(z))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("status %d, want 415", resp.StatusCode)
		}
	})
}

// stall sends a request's headers and part of its announced body over
// HTTP/1.1, then waits for the answer without sending the rest. It
// returns the status line and whether the server then closed the
// connection.
func stall(t *testing.T, addr, path, contentType string) (status string, closed bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: 4000\r\n\r\n%s",
		path, addr, contentType, strings.Repeat("a", 100))
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // the test's own bound, far above body_timeout
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_, err = r.ReadByte()
	return resp.Status, err == io.EOF
}

// TestStalledBodyAnsweredAndClosed: a caller that announces a body and
// stops sending is answered once limits.body_timeout has passed, and its
// connection closed.
func TestStalledBodyAnsweredAndClosed(t *testing.T) {
	ts := start(t, "", func(c *config.Config) { c.Limits.BodyTimeout = config.Duration(300 * time.Millisecond) })
	addr := strings.TrimPrefix(ts.URL, "http://")
	for _, c := range []struct{ path, contentType, want string }{
		{"/oauth/token", "application/x-www-form-urlencoded", "408"},
		{"/oauth/introspect", "application/x-www-form-urlencoded", "408"},
		{"/auth.v1.AuthService/Token", "application/json", "504"}, // Connect's deadline_exceeded
		{"/auth.v1.AuthService/Token", "application/grpc-web+proto", "200"},
	} {
		status, closed := stall(t, addr, c.path, c.contentType)
		if !strings.HasPrefix(status, c.want) || !closed {
			t.Errorf("%s %s: %s, closed %v; want %s and closed", c.path, c.contentType, status, closed, c.want)
		}
	}

	// Over HTTP/2 the stream is answered; the connection serves on.
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = pw.Write([]byte(`{"passwordCredential":`)) }()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/auth.v1.AuthService/Token", pr)
	req.Header.Set("Content-Type", "application/json")
	client := h2c()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "deadline_exceeded") {
		t.Fatalf("h2 stalled stream: %d %s", resp.StatusCode, b)
	}
	if _, err := authv1connect.NewAuthServiceClient(client, ts.URL, connect.WithProtoJSON()).Token(context.Background(), login("alice", password)); err != nil {
		t.Fatalf("same h2 client after the stall: %v", err)
	}
}

// TestDecodeErrorsInCallerTerms: a request that does not decode is
// invalid_argument with a message naming the API's message, never a Go
// type, on every codec.
func TestDecodeErrorsInCallerTerms(t *testing.T) {
	ts := start(t, "", nil)
	tokenURL := ts.URL + "/auth.v1.AuthService/Token"
	for _, c := range []struct{ contentType, body string }{
		{"application/json", `{"passwordCredential":`},
		{"application/json", `{"passwordCredential":"x"}`},
		{"application/json; charset=utf-8", `[1]`},
		{"application/proto", "\xff\xff\xff"},
	} {
		status, body := post(t, tokenURL, c.contentType, []byte(c.body))
		var e struct{ Code, Message string }
		_ = json.Unmarshal([]byte(body), &e)
		t.Logf("%s %q: %s", c.contentType, c.body, e.Message)
		if status != http.StatusBadRequest || e.Code != "invalid_argument" {
			t.Errorf("%s %q: %d %s, want 400 invalid_argument", c.contentType, c.body, status, body)
		}
		if !strings.Contains(e.Message, "auth.v1.TokenRequest") || strings.ContainsAny(e.Message, "*") ||
			strings.Contains(e.Message, "authv1.") || strings.Contains(e.Message, "proto:") {
			t.Errorf("%s %q: message %q, want one naming auth.v1.TokenRequest and no Go type", c.contentType, c.body, e.Message)
		}
	}
}

// TestConfigurationWarningsLoggedAtStart: a doubtful setting (here a
// world-readable signing key) is logged once, naming the key.
func TestConfigurationWarningsLoggedAtStart(t *testing.T) {
	key := filepath.Join(t.TempDir(), "signing.pem")
	k, err := tokens.GenerateKey("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	pem, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(key, 0o644)
	ts := start(t, "", func(c *config.Config) { c.Signing.KeyFiles = []string{key} })
	if n := strings.Count(ts.logs.String(), "doubtful configuration: signing.key_files[0]: "+key+" is readable by group or others"); n != 1 {
		t.Fatalf("warning logged %d times, want once:\n%s", n, ts.logs)
	}
}

// TestMessageLimitsPerProcedure: each procedure accepts decoded messages up
// to its own limit, compressed or not. A GetTokens id list of 1000 ids
// (larger than the default limit) is served; a CreateToken message past
// the default limit is refused even when its compressed body is small.
func TestMessageLimitsPerProcedure(t *testing.T) {
	ts := startM2M(t, "", nil)
	tok, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: "svc", ClientSecret: m2mSecret})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("%040d", i)
	}
	hc := &http.Client{Transport: bearerTransport(tok.AccessToken)}
	c := m2mpbconnect.NewM2MOAuthServiceClient(hc, ts.URL, connect.WithSendGzip())
	stream, err := c.GetTokens(context.Background(), connect.NewRequest(&m2mpb.GetTokensRequest{IdFilter: ids}))
	if err != nil {
		t.Fatal(err)
	}
	for stream.Receive() {
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("GetTokens of 1000 ids, gzipped: %v", err)
	}

	big := &m2mpb.CreateTokenRequest{GrantType: "client_credentials", ClientId: "svc", ClientSecret: strings.Repeat("s", 16<<10+1)}
	_, err = m2mpbconnect.NewM2MOAuthServiceClient(http.DefaultClient, ts.URL, connect.WithSendGzip()).
		CreateToken(context.Background(), connect.NewRequest(big))
	wantCode(t, err, connect.CodeResourceExhausted)
}
