package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/config"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	tsv1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
)

// TestLogsHoldNoSecrets drives logins, refreshes, API tokens and failures
// with debug logging on, then searches the log for every secret involved.
func TestLogsHoldNoSecrets(t *testing.T) {
	ts := start(t, "", nil)
	ctx := context.Background()
	client := protocols["connect+json"](ts.URL)
	r, err := client.Token(ctx, login("alice", password))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = client.Token(ctx, login("alice", "wrong-password-xyz"))
	next, err := client.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: r.Msg.RefreshToken}))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = client.RefreshToken(ctx, connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: r.Msg.RefreshToken})) // reuse
	api := apiClient(ts, next.Msg.AccessToken)
	_, _ = api.ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{})) // revoked session: refused
	fresh := apiClient(ts, accessToken(t, ts, "alice"))
	created, err := fresh.CreateToken(ctx, connect.NewRequest(&tsv1.CreateTokenRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := apiClient(ts, "").GetAccessToken(ctx, connect.NewRequest(&tsv1.GetAccessTokenRequest{Token: created.Msg.Token.Secret})); err != nil {
		t.Fatal(err)
	}

	logs := ts.logs.String()
	if !strings.Contains(logs, "refresh token reused") {
		t.Fatalf("the log lacks the events it should hold:\n%s", logs)
	}
	for name, secret := range map[string]string{
		"password":          password,
		"wrong password":    "wrong-password-xyz",
		"refresh token":     r.Msg.RefreshToken,
		"its successor":     next.Msg.RefreshToken,
		"access token":      r.Msg.AccessToken,
		"API token secret":  created.Msg.Token.Secret,
		"access token part": strings.Split(r.Msg.AccessToken, ".")[2],
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s", name)
		}
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 and returns the pool
// that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tokend test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	ts := start(t, "", func(c *config.Config) {
		c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
	})
	url := strings.Replace(ts.URL, "http://", "https://", 1)
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: proto == "HTTP/2.0"}
		if proto == "HTTP/1.1" {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		seen := ""
		client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := tr.RoundTrip(r)
			if err == nil {
				seen = resp.Proto
			}
			return resp, err
		})}
		opts := []connect.ClientOption{connect.WithProtoJSON()}
		if proto == "HTTP/2.0" {
			opts = []connect.ClientOption{connect.WithGRPC()}
		}
		if _, err := authv1connect.NewAuthServiceClient(client, url, opts...).Token(context.Background(), login("alice", password)); err != nil {
			t.Fatalf("%s over TLS: %v", proto, err)
		}
		if seen != proto {
			t.Fatalf("answered over %s, want %s", seen, proto)
		}
	}
	// Plain HTTP on the TLS port is refused.
	if _, err := protocols["connect+json"](ts.URL).Token(context.Background(), login("alice", password)); err == nil {
		t.Fatal("plain HTTP accepted on the TLS listener")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
