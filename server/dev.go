package server

import (
	"crypto/rand"
	"fmt"
	"io"

	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/passhash"
)

// DevCredentials are the demo user and clients of development mode, with
// their plaintext secrets (generated at each start; shown once).
type DevCredentials struct {
	Username, Password string
	UserID             uint32
	CodeClientID       string
	CodeClientSecret   string
	RedirectURI        string
	M2MClientID        string
	M2MClientSecret    string
}

// DevConfig is the configuration `go run .` starts with: defaults, embedded
// Redis, a generated signing key, and a demo user and clients with fresh
// random secrets. The environment overrides (config.ApplyEnv, read through
// getenv) apply as they do to a file.
func DevConfig(getenv func(string) string) (*config.Config, DevCredentials, error) {
	cfg := config.Default()
	config.ApplyEnv(&cfg, getenv)
	cfg.Log.Format = "text"
	cfg.CORS.AllowedOrigins = []string{"http://localhost:5173", "http://127.0.0.1:5173"}
	cred := DevCredentials{
		Username:         "demo",
		Password:         rand.Text(),
		UserID:           1,
		CodeClientID:     "1001",
		CodeClientSecret: rand.Text(),
		RedirectURI:      "http://127.0.0.1:9999/callback",
		M2MClientID:      "demo-m2m",
		M2MClientSecret:  rand.Text(),
	}
	hash := func(s string) string {
		h, err := passhash.Hash(s)
		if err != nil {
			panic(err) // only fails if the system's randomness does
		}
		return h
	}
	cfg.Users = []config.User{{ID: cred.UserID, Username: cred.Username, PasswordHash: hash(cred.Password)}}
	cfg.Clients = []config.Client{
		{
			ID:           cred.CodeClientID,
			SecretHash:   hash(cred.CodeClientSecret),
			RedirectURIs: []string{cred.RedirectURI},
			GrantTypes:   []string{"authorization_code", "refresh_token"},
			Scopes:       []string{"profile", "read"},
		},
		{
			ID:                  cred.M2MClientID,
			SecretHash:          hash(cred.M2MClientSecret),
			GrantTypes:          []string{"client_credentials"},
			Owner:               "demo-owner",
			Audiences:           []string{"api"},
			Scopes:              []string{"read", "write"},
			AccessTokenLifetime: config.Duration(3600e9),
			AssertionIssuers:    []string{cfg.Issuer},
		},
	}
	if err := cfg.Validate(); err != nil {
		return nil, cred, fmt.Errorf("development config: %w", err)
	}
	return &cfg, cred, nil
}

// PrintDevBanner tells the developer what is running and how to call it.
func PrintDevBanner(w io.Writer, cfg *config.Config, c DevCredentials) {
	base := cfg.Issuer
	fmt.Fprintf(w, `
  tokend — DEVELOPMENT MODE
  !! Embedded in-memory Redis and a generated signing key: NOTHING IS KEPT. !!
  !! Secrets below are new at every start. Use 'tokend serve --config' for real use. !!

  listening   %s
  demo user   username=%s  password=%s  (id %d)
  code client client_id=%s  client_secret=%s  redirect_uri=%s
  m2m client  client_id=%s  client_secret=%s

  Log in (Connect JSON POST):

    curl -sS -X POST %s/auth.v1.AuthService/Token \
      -H 'Content-Type: application/json' \
      -d '{"passwordCredential":{"username":"%s","password":"%s"}}'

  Code flow: auth.AuthService/GenerateAuthorizationCode with the login's accessToken as bearer,
  then auth.AuthService/ExchangeToken or /oauth/token (grant_type=authorization_code) as the code client.

  Keys: %s/.well-known/jwks.json

`, base, c.Username, c.Password, c.UserID, c.CodeClientID, c.CodeClientSecret, c.RedirectURI,
		c.M2MClientID, c.M2MClientSecret, base, c.Username, c.Password, base)
}
