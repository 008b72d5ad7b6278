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
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.yaml.in/yaml/v3"

	"github.com/tokend/tokend/config"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	tokenservicev1alpha1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
	"github.com/tokend/tokend/passhash"
)

// writeConfig writes c as the YAML file at path.
func writeConfig(t *testing.T, path string, c *config.Config) {
	t.Helper()
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func bcrypt4(t *testing.T, secret string) string {
	t.Helper()
	h, err := passhash.HashBcrypt(secret, 4)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A reload adds a client, rotates a client's secret with an overlap,
// removes a user (whose token is refused at once), and a broken file
// changes nothing and reports every bad key.
func TestReloadUsersAndClients(t *testing.T) {
	ts := startM2M(t, "", nil)
	path := filepath.Join(t.TempDir(), "tokend.yaml")
	ctx := context.Background()
	cfg := *ts.cfg
	reload := func(edit func(c *config.Config)) error {
		t.Helper()
		next := cfg
		next.Users = append([]config.User(nil), cfg.Users...)
		next.Clients = append([]config.Client(nil), cfg.Clients...)
		edit(&next)
		writeConfig(t, path, &next)
		err := ts.srv.Reload(ctx, path)
		if err == nil {
			cfg = next
		}
		return err
	}
	mint := func(client, secret string) error {
		_, err := createM2M(ts, &m2mpb.CreateTokenRequest{ClientId: client, ClientSecret: secret})
		return err
	}
	if err := mint("new", "new-secret"); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("unknown client before the reload: %v", err)
	}

	// add a client
	if err := reload(func(c *config.Config) {
		nc := c.Clients[0]
		nc.ID, nc.Owner, nc.SecretHash = "new", "new-owner", bcrypt4(t, "new-secret")
		c.Clients = append(c.Clients, nc)
	}); err != nil {
		t.Fatal(err)
	}
	if err := mint("new", "new-secret"); err != nil {
		t.Fatalf("client added by the reload: %v", err)
	}

	// rotate its secret: first both, then only the new one
	if err := reload(func(c *config.Config) {
		c.Clients[len(c.Clients)-1].SecretHashes = []string{bcrypt4(t, "newer-secret")}
	}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"new-secret", "newer-secret"} {
		if err := mint("new", s); err != nil {
			t.Errorf("secret %s during the overlap: %v", s, err)
		}
	}
	if err := reload(func(c *config.Config) {
		last := &c.Clients[len(c.Clients)-1]
		last.SecretHash, last.SecretHashes = last.SecretHashes[0], nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := mint("new", "new-secret"); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("the old secret after the overlap (it had verified, and was cached): got %v, want unauthenticated", err)
	}
	if err := mint("new", "newer-secret"); err != nil {
		t.Errorf("the new secret after the overlap: %v", err)
	}

	// remove a user: its access token is refused at once
	tok := accessToken(t, ts, "alice")
	list := func() error {
		_, err := apiClient(ts, tok).ListTokens(ctx, connect.NewRequest(&tokenservicev1alpha1.ListTokensRequest{}))
		return err
	}
	if err := list(); err != nil {
		t.Fatalf("alice's token before the removal: %v", err)
	}
	if err := reload(func(c *config.Config) { c.Users = nil }); err != nil {
		t.Fatal(err)
	}
	if err := list(); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("removed user's token: got %v, want unauthenticated", err)
	}
	if _, err := protocols["connect+json"](ts.URL).Token(ctx, login("alice", password)); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("removed user's login: got %v, want unauthenticated", err)
	}

	// a broken file: nothing changes, every bad key is reported
	err := reload(func(c *config.Config) {
		c.Users = []config.User{{ID: 9, Username: "carol", PasswordHash: passwordHash()}}
		c.Clients[0].GrantTypes = []string{"telepathy"}
		c.Log.Level = "loud"
	})
	if err == nil {
		t.Fatal("a broken file was applied")
	}
	for _, key := range []string{"clients[0].grant_types[0]", "log.level"} {
		if !strings.Contains(err.Error(), key) || !strings.Contains(ts.logs.String(), key) {
			t.Errorf("reload error and log do not name %s: %v", key, err)
		}
	}
	if _, err := protocols["connect+json"](ts.URL).Token(ctx, login("carol", password)); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("a user of the refused file can log in: %v", err)
	}
	if err := mint("new", "newer-secret"); err != nil {
		t.Errorf("after a refused reload: %v", err)
	}

	// a setting that needs a restart is reported, and the rest applied
	if err := reload(func(c *config.Config) {
		c.Limits.ShutdownTimeout = config.Duration(time.Minute)
		c.Users = []config.User{{ID: 9, Username: "carol", PasswordHash: passwordHash()}}
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ts.logs.String(), `"ignored_until_restart":["limits"]`) {
		t.Error("the log does not report limits as ignored until restart")
	}
	if _, err := protocols["connect+json"](ts.URL).Token(ctx, login("carol", password)); err != nil {
		t.Errorf("a user added with an ignored change: %v", err)
	}
	if !strings.Contains(ts.logs.String(), `"event":"config.reloaded"`) || !strings.Contains(ts.logs.String(), `"event":"config.reload_refused"`) {
		t.Error("the audit events of reloads are missing")
	}
}

// writeSelfSigned writes a self-signed certificate for cn and its key.
func writeSelfSigned(t *testing.T, certFile, keyFile, cn string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A reload with a new certificate: new handshakes see it; a certificate
// that does not load changes nothing.
func TestReloadTLSCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile, "first")
	ts := start(t, "", func(c *config.Config) { c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile} })
	addr := strings.TrimPrefix(ts.URL, "http://")
	seen := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := seen(); got != "first" {
		t.Fatalf("certificate at start: %q", got)
	}
	path := filepath.Join(dir, "tokend.yaml")
	writeConfig(t, path, ts.cfg)

	writeSelfSigned(t, certFile, keyFile, "second")
	if err := ts.srv.Reload(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	if got := seen(); got != "second" {
		t.Errorf("certificate after the reload: %q, want second", got)
	}

	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ts.srv.Reload(context.Background(), path); err == nil || !errors.Is(err, err) || !strings.Contains(err.Error(), "tls") {
		t.Errorf("a reload with a broken key: %v", err)
	}
	if got := seen(); got != "second" {
		t.Errorf("certificate after a refused reload: %q, want second", got)
	}
}
