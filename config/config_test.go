package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Valid hashes with cheap parameters (Validate only parses them).
const (
	bcryptHash = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
	argonHash  = "$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CKGe5/bX9YnCq2rxjW5yQXKxn31v1GKzhDCrMc6r6vA"
)

const full = `
addr: "0.0.0.0:9000"
issuer: "https://auth.example.com"
redis: {url: "redis://10.0.0.5:6379/1"}
signing: {key_files: [a.pem, b.pem]}
tokens: {access_ttl: 10m, refresh_ttl: 24h, code_ttl: 1m, refresh_reuse_grace: 0s}
login_throttle: {max_failures: 5, window: 1h}
cors: {allowed_origins: ["https://app.example.com", "*"]}
tls: {cert_file: c.pem, key_file: k.pem}
log: {format: text, level: debug}
limits: {max_request_bytes: 65536, shutdown_timeout: 30s}
users:
  - {id: 1, username: alice, password_hash: "` + bcryptHash + `"}
  - {id: 2, username: bob, password_hash: "` + argonHash + `"}
clients:
  - id: "1001"
    secret_hash: "` + argonHash + `"
    redirect_uris: ["https://app.example.com/cb", "http://127.0.0.1:9999/cb", "http://[::1]/cb"]
    grant_types: [authorization_code, refresh_token, password]
    scopes: [profile, read]
  - id: m2m
    secret_hash: "` + bcryptHash + `"
    grant_types: [client_credentials]
    owner: svc
    audiences: [api, "https://api.example.com"]
    scopes: [read]
    access_token_lifetime: 1h
    assertion_issuers: ["https://auth.example.com"]
    owner_claim: email
  - id: by-assertion
    grant_types: [client_credentials]
    assertion_issuers: ["https://idp.example.com/realm"]
`

func mustParse(t *testing.T, src string, env map[string]string) *Config {
	t.Helper()
	c, err := parse([]byte(src), func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "---\n", "tokens:\n"} {
		c := mustParse(t, src, nil)
		if !reflect.DeepEqual(*c, Default()) {
			t.Errorf("parse(%q) = %+v, want Default()", src, *c)
		}
	}
	d := Default()
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"addr", d.Addr, "127.0.0.1:8080"},
		{"issuer", d.Issuer, "http://127.0.0.1:8080"},
		{"access", d.Tokens.AccessTTL.D(), 15 * time.Minute},
		{"refresh", d.Tokens.RefreshTTL.D(), 720 * time.Hour},
		{"code", d.Tokens.CodeTTL.D(), 5 * time.Minute},
		{"grace", d.Tokens.RefreshReuseGrace.D(), 2 * time.Second},
		{"max failures", d.LoginThrottle.MaxFailures, 10},
		{"window", d.LoginThrottle.Window.D(), 15 * time.Minute},
		{"log", d.Log, Log{Format: "json", Level: "info"}},
		{"body", d.Limits.MaxRequestBytes, int64(1 << 20)},
		{"shutdown", d.Limits.ShutdownTimeout.D(), 15 * time.Second},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if err := d.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	// Keys set in a section leave the others at their defaults.
	c := mustParse(t, "tokens: {access_ttl: 1m}", nil)
	if c.Tokens.AccessTTL.D() != time.Minute || c.Tokens.RefreshTTL != d.Tokens.RefreshTTL {
		t.Errorf("tokens = %+v", c.Tokens)
	}
}

func TestFullRoundTrip(t *testing.T) {
	c := mustParse(t, full, nil)
	if c.Tokens.AccessTTL.D() != 10*time.Minute || c.Clients[1].AccessTokenLifetime.D() != time.Hour ||
		c.Users[1].PasswordHash != argonHash || !c.TLS.Enabled() || c.Clients[1].OwnerClaim != "email" {
		t.Fatalf("decoded %+v", c)
	}
	if got := c.Clients[0].OwnerClaimName(); got != "sub" {
		t.Errorf("owner_claim default = %q", got)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2 := mustParse(t, string(out), nil)
	if !reflect.DeepEqual(c, c2) {
		t.Errorf("round trip changed the config:\n%s\n%+v\n%+v", out, c, c2)
	}
}

func TestClientHelpers(t *testing.T) {
	for id, want := range map[string]bool{"1001": true, "1": true, "4294967295": true,
		"0": false, "01": false, "+1": false, "4294967296": false, "-1": false, "m2m": false, "": false, " 1": false} {
		c := Client{ID: id}
		n, ok := c.NumericID()
		if ok != want || (ok && id != strings.TrimSpace(id)) {
			t.Errorf("NumericID(%q) = %d, %v", id, n, ok)
		}
	}
	c := Client{GrantTypes: []string{GrantAuthorizationCode}}
	if !c.AllowsGrant("authorization_code") || c.AllowsGrant("password") {
		t.Error("AllowsGrant")
	}
}

// TestApplyEnvOverDefault: development mode starts from Default, not a
// file; the same overrides give the same issuer as serve does.
func TestApplyEnvOverDefault(t *testing.T) {
	c := Default()
	ApplyEnv(&c, func(k string) string { return map[string]string{EnvAddr: "0.0.0.0:9000"}[k] })
	if c.Addr != "0.0.0.0:9000" || c.Issuer != "http://localhost:9000" || c.Redis.URL != "" {
		t.Errorf("addr %q issuer %q redis %q", c.Addr, c.Issuer, c.Redis.URL)
	}
	c = Default()
	c.Issuer = "https://auth.example.com"
	ApplyEnv(&c, func(k string) string { return map[string]string{EnvAddr: "127.0.0.1:1"}[k] })
	if c.Issuer != "https://auth.example.com" {
		t.Errorf("env changed a set issuer: %q", c.Issuer)
	}
}

func TestEnv(t *testing.T) {
	env := map[string]string{EnvAddr: "127.0.0.1:9999", EnvRedisURL: "redis://r:6379/2"}
	c := mustParse(t, "addr: 127.0.0.1:1\nredis: {url: redis://x}\n", env)
	if c.Addr != "127.0.0.1:9999" || c.Redis.URL != "redis://r:6379/2" {
		t.Errorf("env not applied: %q %q", c.Addr, c.Redis.URL)
	}
	if c.Issuer != "http://127.0.0.1:9999" {
		t.Errorf("issuer %q does not follow the final addr", c.Issuer)
	}
	c = mustParse(t, "issuer: https://auth.example.com\n", env)
	if c.Issuer != "https://auth.example.com" {
		t.Errorf("env changed a set issuer: %q", c.Issuer)
	}
	// Even one that reads like the default of the file's own addr.
	c = mustParse(t, "addr: 127.0.0.1:18080\nissuer: http://127.0.0.1:18080\n", env)
	if c.Issuer != "http://127.0.0.1:18080" {
		t.Errorf("env changed a set issuer that matched the file's addr: %q", c.Issuer)
	}
	c = mustParse(t, "", map[string]string{EnvAddr: ":8443"})
	if c.Issuer != "http://localhost:8443" {
		t.Errorf("issuer for :8443 = %q", c.Issuer)
	}
	c = mustParse(t, "addr: 127.0.0.1:1\n", map[string]string{EnvAddr: ""})
	if c.Addr != "127.0.0.1:1" {
		t.Errorf("empty env var overrode addr: %q", c.Addr)
	}
	if _, err := parse(nil, func(string) string { return "nonsense" }); err == nil ||
		!strings.Contains(err.Error(), "addr:") || !strings.Contains(err.Error(), "redis.url:") {
		t.Errorf("bad env values: %v", err)
	}
}

// parseErr parses src and returns the error message, failing if none.
func parseErr(t *testing.T, src string) string {
	t.Helper()
	_, err := parse([]byte(src), nil)
	if err == nil {
		t.Fatalf("parse(%q) succeeded", src)
	}
	return err.Error()
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"unknown top", "adr: x\n", "adr: unknown key (line 1)"},
		{"unknown nested", "redis:\n  urll: x\n", "redis.urll: unknown key (line 2)"},
		{"unknown in list", "users:\n  - id: 1\n    pasword: x\n", "users[0].pasword: unknown key (line 3)"},
		{"unknown in client", full + "    secret: x\n", "clients[2].secret: unknown key"},
		{"go field name", "Addr: x\n", "Addr: unknown key"},
		{"bare number duration", "tokens: {access_ttl: 900}", `tokens.access_ttl: want a duration with a unit such as "15m", got the number 900`},
		{"quoted number duration", `tokens: {access_ttl: "900"}`, `tokens.access_ttl: want a duration such as "15m" or "1h30m", got "900"`},
		{"garbage duration", "login_throttle: {window: soon}", `login_throttle.window: want a duration`},
		{"float duration", "limits: {shutdown_timeout: 1.5}", `limits.shutdown_timeout: want a duration`},
		{"list duration", "limits: {shutdown_timeout: [1s]}", `limits.shutdown_timeout: want a duration`},
		{"string id", "users: [{id: one}]", `users[0].id: want a whole number in 0..4294967295, got "one"`},
		{"negative id", "users: [{id: -1}]", `users[0].id: want a whole number in 0..4294967295`},
		{"huge id", "users: [{id: 4294967296}]", `users[0].id: want a whole number in 0..4294967295`},
		{"int with unit", "limits: {max_request_bytes: 1MiB}", `limits.max_request_bytes: want a whole number, got "1MiB"`},
		{"map for string", "addr: {host: x}", "addr: want a string"},
		{"scalar for list", "cors: {allowed_origins: https://x}", "cors.allowed_origins: want a list"},
		{"scalar for section", "tokens: 5m", "tokens: want a mapping"},
		{"list at top", "- a\n", "(top level): want a mapping"},
		{"syntax", "addr: [\n", "yaml:"},
		{"duplicate key", "addr: a\naddr: b\n", "already defined"},
		{"two documents", "addr: a\n---\naddr: b\n", "second YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseErr(t, tc.src); !strings.Contains(got, tc.want) {
				t.Errorf("error %q does not contain %q", got, tc.want)
			}
		})
	}
	// Every decoding problem at once.
	got := parseErr(t, "adr: x\ntokens: {access_ttl: 5, bogus: 1}\nusers: [{id: x}]\n")
	for _, want := range []string{"adr: unknown key", "tokens.access_ttl:", "tokens.bogus: unknown key", "users[0].id:"} {
		if !strings.Contains(got, want) {
			t.Errorf("error %q does not contain %q", got, want)
		}
	}
}

// An M2M client that does not set access_token_lifetime gets the default:
// every access token expires.
func TestM2MLifetimeDefault(t *testing.T) {
	c := mustParse(t, full+"  - {id: z, secret_hash: \""+bcryptHash+"\", grant_types: [client_credentials], owner: o}\n", nil)
	if got := c.Clients[3].AccessTokenLifetime; got != defaultM2MLifetime {
		t.Errorf("access_token_lifetime = %s, want the default %s", got, defaultM2MLifetime)
	}
	if got := c.Tokens.SessionMaxLifetime.D(); got != 2160*time.Hour {
		t.Errorf("tokens.session_max_lifetime = %s, want 2160h", got)
	}
}

func TestDurationZeroAndAliases(t *testing.T) {
	c := mustParse(t, full+"  - {id: z, secret_hash: \""+bcryptHash+"\", grant_types: [password], access_token_lifetime: 0}\n", nil)
	if c.Clients[3].AccessTokenLifetime != 0 {
		t.Error("bare 0 is not a zero duration")
	}
	src := "base: &b {access_ttl: 1m}\n"
	if got := parseErr(t, src); !strings.Contains(got, "base: unknown key") {
		t.Error(got)
	}
	c = mustParse(t, "cors: {allowed_origins: &o [\"*\"]}\ntokens: &t {access_ttl: 1m}\nlogin_throttle: {window: 1h}\n", nil)
	if c.Tokens.AccessTTL.D() != time.Minute {
		t.Error(c.Tokens)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"addr no port", func(c *Config) { c.Addr = "localhost" }, "addr: want host:port"},
		{"addr bad port", func(c *Config) { c.Addr = "localhost:http" }, "addr: port must be a number"},
		{"addr port range", func(c *Config) { c.Addr = ":70000" }, "addr: port must be a number"},
		{"issuer relative", func(c *Config) { c.Issuer = "/auth" }, "issuer: must be an absolute http(s) URL"},
		{"issuer scheme", func(c *Config) { c.Issuer = "ftp://x" }, "issuer: must be"},
		{"issuer query", func(c *Config) { c.Issuer = "https://x/?a=b" }, "issuer: must be"},
		{"issuer fragment", func(c *Config) { c.Issuer = "https://x/#f" }, "issuer: must be"},
		{"redis scheme", func(c *Config) { c.Redis.URL = "http://x" }, "redis.url: must be a redis://"},
		{"durability replicas", func(c *Config) { c.Redis.Durability.Replicas = "all" }, "redis.durability.replicas: must be auto, none"},
		{"durability replicas range", func(c *Config) { c.Redis.Durability.Replicas = "-1" }, "redis.durability.replicas: must be auto, none"},
		{"durability timeout", func(c *Config) { c.Redis.Durability.Timeout = 0 }, "redis.durability.timeout: must be between 1ms and 5s"},
		{"durability timeout long", func(c *Config) { c.Redis.Durability.Timeout = Duration(time.Minute) }, "redis.durability.timeout: must be between"},
		{"empty key file", func(c *Config) { c.Signing.KeyFiles = []string{"a", ""} }, "signing.key_files[1]: must not be empty"},
		{"access ttl", func(c *Config) { c.Tokens.AccessTTL = 0 }, "tokens.access_ttl: must be > 0"},
		{"refresh ttl", func(c *Config) { c.Tokens.RefreshTTL = -1 }, "tokens.refresh_ttl: must be > 0"},
		{"code ttl", func(c *Config) { c.Tokens.CodeTTL = 0 }, "tokens.code_ttl: must be > 0"},
		{"refresh < access", func(c *Config) { c.Tokens.RefreshTTL = Duration(time.Minute) }, "tokens.refresh_ttl: must be ≥ tokens.access_ttl"},
		{"grace negative", func(c *Config) { c.Tokens.RefreshReuseGrace = -1 }, "tokens.refresh_reuse_grace: must be ≥ 0"},
		{"grace too long", func(c *Config) { c.Tokens.RefreshReuseGrace = c.Tokens.RefreshTTL }, "tokens.refresh_reuse_grace: must be < tokens.refresh_ttl"},
		{"max failures", func(c *Config) { c.LoginThrottle.MaxFailures = 0 }, "login_throttle.max_failures: must be ≥ 1"},
		{"window", func(c *Config) { c.LoginThrottle.Window = 0 }, "login_throttle.window: must be > 0"},
		{"origin path", func(c *Config) { c.CORS.AllowedOrigins = []string{"https://x/app"} }, "cors.allowed_origins[0]: must be"},
		{"tls cert only", func(c *Config) { c.TLS.KeyFile = "" }, "tls.key_file: required"},
		{"tls key only", func(c *Config) { c.TLS.CertFile = "" }, "tls.cert_file: required"},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, `log.format: want json or text, got "xml"`},
		{"log level", func(c *Config) { c.Log.Level = "trace" }, "log.level: want debug"},
		{"body limit", func(c *Config) { c.Limits.MaxRequestBytes = 0 }, "limits.max_request_bytes: must be > 0"},
		{"shutdown", func(c *Config) { c.Limits.ShutdownTimeout = 0 }, "limits.shutdown_timeout: must be > 0"},
		{"user id 0", func(c *Config) { c.Users[1].ID = 0 }, "users[1].id: must be ≥ 1"},
		{"user id dup", func(c *Config) { c.Users[1].ID = 1 }, "users[1].id: 1 is also users[0].id"},
		{"username empty", func(c *Config) { c.Users[0].Username = "" }, "users[0].username: must not be empty"},
		{"username dup", func(c *Config) { c.Users[1].Username = "alice" }, `users[1].username: "alice" is also users[0].username`},
		{"password hash empty", func(c *Config) { c.Users[0].PasswordHash = "" }, "users[0].password_hash: must not be empty"},
		{"password hash plain", func(c *Config) { c.Users[1].PasswordHash = "hunter2" }, "users[1].password_hash: not a bcrypt or argon2id hash"},
		{"password hash absurd", func(c *Config) {
			c.Users[1].PasswordHash = strings.Replace(argonHash, "m=1024", "m=4194304", 1)
		}, "users[1].password_hash: argon2id memory"},
		{"client id empty", func(c *Config) { c.Clients[1].ID = "" }, "clients[1].id: must not be empty"},
		{"client id space", func(c *Config) { c.Clients[1].ID = "a b" }, "clients[1].id: must not contain spaces"},
		{"client id dup", func(c *Config) { c.Clients[1].ID = "1001" }, `clients[1].id: "1001" is also clients[0].id`},
		{"secret hash bad", func(c *Config) { c.Clients[0].SecretHash = "$2a$10$short" }, "clients[0].secret_hash: bcrypt hash must be 60 characters"},
		{"no grant types", func(c *Config) { c.Clients[0].GrantTypes = nil }, "clients[0].grant_types: must name at least one"},
		{"unknown grant", func(c *Config) { c.Clients[2].GrantTypes = []string{"implicit"} }, `clients[2].grant_types[0]: unknown grant type "implicit"`},
		{"code without redirect", func(c *Config) { c.Clients[0].RedirectURIs = nil }, "clients[0].redirect_uris: authorization_code needs at least one redirect URI"},
		{"code with non-numeric id", func(c *Config) { c.Clients[0].ID = "web" }, `clients[0].id: authorization_code needs a numeric id`},
		{"code with id 0", func(c *Config) { c.Clients[0].ID = "0" }, `clients[0].id: authorization_code needs a numeric id`},
		{"cc without secret", func(c *Config) { c.Clients[1].SecretHash = ""; c.Clients[1].AssertionIssuers = nil }, "clients[1].secret_hash: client_credentials needs a secret_hash or assertion_issuers"},
		{"cc without owner", func(c *Config) { c.Clients[1].Owner = ""; c.Clients[1].AssertionIssuers = nil }, "clients[1].owner: client_credentials needs an owner or assertion_issuers"},
		{"redirect relative", func(c *Config) { c.Clients[0].RedirectURIs[0] = "/cb" }, "clients[0].redirect_uris[0]: must be an absolute URL without fragment"},
		{"redirect fragment", func(c *Config) { c.Clients[0].RedirectURIs[0] = "https://x/cb#f" }, "clients[0].redirect_uris[0]: must be an absolute URL without fragment"},
		{"redirect empty fragment", func(c *Config) { c.Clients[0].RedirectURIs[0] = "https://x/cb#" }, "clients[0].redirect_uris[0]: must be an absolute URL without fragment"},
		{"redirect http", func(c *Config) { c.Clients[0].RedirectURIs[1] = "http://app.example.com/cb" }, "clients[0].redirect_uris[1]: http is allowed only for loopback hosts"},
		{"redirect http lookalike", func(c *Config) { c.Clients[0].RedirectURIs[1] = "http://127.0.0.1.evil.com/cb" }, "clients[0].redirect_uris[1]: http is allowed only"},
		{"redirect custom scheme", func(c *Config) { c.Clients[0].RedirectURIs[1] = "javascript://x/%0aalert(1)" }, "clients[0].redirect_uris[1]: scheme must be https"},
		{"redirect userinfo", func(c *Config) { c.Clients[0].RedirectURIs[0] = "https://u:p@x/cb" }, "clients[0].redirect_uris[0]: must not contain user info"},
		{"lifetime negative", func(c *Config) { c.Clients[1].AccessTokenLifetime = -1 }, "clients[1].access_token_lifetime: must be > 0"},
		{"lifetime zero", func(c *Config) { c.Clients[1].AccessTokenLifetime = 0 }, "clients[1].access_token_lifetime: client_credentials needs a lifetime > 0"},
		{"session lifetime", func(c *Config) { c.Tokens.SessionMaxLifetime = 0 }, "tokens.session_max_lifetime: must be > 0"},
		{"reserved client id", func(c *Config) { c.Clients[1].ID = "tokend" }, `clients[1].id: "tokend" is reserved`},
		{"owner like a user id", func(c *Config) { c.Clients[1].Owner = "7" }, `clients[1].owner: must not be a number`},
		{"owner like foreign", func(c *Config) { c.Clients[1].Owner = "https://idp#1" }, `clients[1].owner: must not contain "://"`},
		{"resource audience blank", func(c *Config) { c.Clients[1].ResourceAudiences = []string{" "} }, "clients[1].resource_audiences[0]: must be a non-empty string"},
		{"assertion issuer", func(c *Config) { c.Clients[2].AssertionIssuers = []string{"idp"} }, "clients[2].assertion_issuers[0]: must be an absolute http(s) URL"},
		{"assertion audience without issuers", func(c *Config) { c.Clients[0].AssertionAudiences = []string{"tokend"} }, "clients[0].assertion_audiences: needs assertion_issuers"},
		{"assertion audience blank", func(c *Config) { c.Clients[2].AssertionAudiences = []string{""} }, "clients[2].assertion_audiences[0]: must be a non-empty string"},
		{"scope space", func(c *Config) { c.Clients[0].Scopes = []string{"read write"} }, "clients[0].scopes[0]: must be a non-empty word"},
		{"scope empty", func(c *Config) { c.Clients[0].Scopes = []string{"read", ""} }, "clients[0].scopes[1]: must be a non-empty word"},
		{"scope quote", func(c *Config) { c.Clients[0].Scopes = []string{`a"b`} }, "clients[0].scopes[0]:"},
		{"audience space", func(c *Config) { c.Clients[1].Audiences = []string{"my api"} }, "clients[1].audiences[0]: must be a non-empty string without spaces"},
		{"audience empty", func(c *Config) { c.Clients[1].Audiences = []string{""} }, "clients[1].audiences[0]:"},
		{"reuse grace of hours", func(c *Config) { c.Tokens.RefreshReuseGrace = Duration(2 * time.Hour) }, "tokens.refresh_reuse_grace: must be ≤ 1h0m0s"},
		{"throttle window of 1ms", func(c *Config) { c.LoginThrottle.Window = Duration(time.Millisecond) }, "login_throttle.window: must be ≥ 1s"},
		{"client throttle window", func(c *Config) { c.ClientAuthThrottle.Window = Duration(time.Millisecond) }, "client_auth_throttle.window: must be ≥ 1s"},
		{"client throttle max", func(c *Config) { c.ClientAuthThrottle.MaxFailures = 0 }, "client_auth_throttle.max_failures: must be ≥ 1"},
		{"per-user ceiling", func(c *Config) { c.LoginThrottle.MaxFailuresPerUser = 0 }, "login_throttle.max_failures_per_user: must be ≥ 1"},
		{"absurd body limit", func(c *Config) { c.Limits.MaxRequestBytes = 1 << 30 }, "limits.max_request_bytes: must be ≤"},
		{"body timeout", func(c *Config) { c.Limits.BodyTimeout = Duration(time.Hour) }, "limits.body_timeout: must be ≤ 5m0s"},
		{"no body timeout", func(c *Config) { c.Limits.BodyTimeout = 0 }, "limits.body_timeout: must be > 0"},
		{"streams", func(c *Config) { c.Limits.MaxConcurrentStreams = 0 }, "limits.max_concurrent_streams: must be ≥ 1"},
		{"M2M quota", func(c *Config) { c.Tokens.MaxM2MTokensPerOwner = 0 }, "tokens.max_m2m_tokens_per_owner: must be ≥ 1"},
		{"API token quota", func(c *Config) { c.Tokens.MaxAPITokensPerOwner = 0 }, "tokens.max_api_tokens_per_owner: must be ≥ 1"},
		{"proxy not a CIDR", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "proxy.local"} }, `trusted_proxies[1]: want a CIDR`},
		{"every peer trusted", func(c *Config) { c.TrustedProxies = []string{"0.0.0.0/0"} }, "trusted_proxies[0]: 0.0.0.0/0 trusts every peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, full, nil)
			tc.edit(c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tc.want)
			}
			if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 1 {
				t.Errorf("%d problems reported for one mistake: %v", n, err)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	c := mustParse(t, full, nil)
	c.CORS.AllowedOrigins = []string{"*", "http://localhost:5173", "https://*.example.com"}
	c.Clients[0].RedirectURIs = []string{"http://localhost/cb", "http://127.0.0.2:1/cb", "https://x.example/cb?a=b"}
	c.Clients[1].SecretHash = "" // assertion_issuers suffice
	c.Clients[1].Owner = ""
	c.Addr = ":0"
	c.Redis.URL = "unix:///run/redis.sock"
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestValidateReportsAll(t *testing.T) {
	src := `
addr: nope
tokens: {access_ttl: 0s}
users:
  - {id: 1, username: a, password_hash: x}
  - {id: 1, username: a, password_hash: "` + bcryptHash + `"}
clients:
  - {id: web, grant_types: [authorization_code, implicit], redirect_uris: ["http://example.com/cb#x"]}
`
	got := parseErr(t, src)
	want := []string{
		"addr:", "tokens.access_ttl:", "users[0].password_hash:", "users[1].id:", "users[1].username:",
		"clients[0].id:", "clients[0].grant_types[1]:", "clients[0].redirect_uris[0]:",
	}
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("error does not report %q:\n%s", w, got)
		}
	}
	if n := strings.Count(got, "\n") + 1; n != len(want) {
		t.Errorf("%d lines, want %d:\n%s", n, len(want), got)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokend.yaml")
	if err := os.WriteFile(path, []byte("adr: x\nlog: {level: loud}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, nil)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(line, path+": ") {
			t.Errorf("line %q does not name the file", line)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), nil); err == nil || !strings.Contains(err.Error(), "missing.yaml") ||
		!errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v", err)
	}
}

func TestRedisURLForms(t *testing.T) {
	for url, ok := range map[string]bool{
		"":                                          true,
		"redis://127.0.0.1:6379/0":                  true,
		"rediss://user:pw@redis.example:6380":       true,
		"redis+cluster://a:7000,b:7001,c:7002":      true,
		"rediss+cluster://a:7000,b:7001":            true,
		"unix:///run/redis.sock":                    true,
		"redis+sentinel://a:26379,b:26379/mymaster": true,
		"rediss+sentinel://u:p@a:26379/mymaster/2":  true,
		"redis+sentinel://a:26379,b:26379":          false,
		"http://127.0.0.1:6379":                     false,
		"memcached://x":                             false,
	} {
		c := Default()
		c.Redis.URL = url
		err := c.Validate()
		if (err == nil) != ok {
			t.Errorf("redis.url %q: err = %v, want ok=%v", url, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), "redis.url") {
			t.Errorf("redis.url %q: error %v does not name the key", url, err)
		}
	}
}

func TestWarnings(t *testing.T) {
	dir := t.TempDir()
	open, shared := filepath.Join(dir, "open.pem"), filepath.Join(dir, "shared.pem")
	private := filepath.Join(dir, "private.pem")
	for path, mode := range map[string]os.FileMode{open: 0o644, shared: 0o640, private: 0o600} {
		if err := os.WriteFile(path, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
	c := Default()
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("the defaults warn: %q", w)
	}
	c.Issuer = "http://auth.example.com"
	c.Signing.KeyFiles = []string{private, open, shared}
	c.Tokens.RefreshReuseGrace = Duration(10 * time.Minute)
	c.LoginThrottle.Window = Duration(5 * time.Second)
	c.LoginThrottle.MaxFailuresPerUser = 5
	c.TrustedProxies = []string{"10.0.0.0/4"}
	c.CORS.AllowedOrigins = []string{"*"}
	got := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{
		"issuer: http://auth.example.com is plain HTTP on a non-loopback host",
		"signing.key_files[1]: " + open + " is readable by group or others",
		"signing.key_files[2]: " + shared + " is readable by group or others",
		"tokens.refresh_reuse_grace: 10m0s is long",
		"login_throttle.window: 5s is short",
		"login_throttle.max_failures_per_user: 5 is below login_throttle.max_failures (10)",
		"trusted_proxies[0]: 10.0.0.0/4 is a wide range",
		`cors.allowed_origins[0]: "*" lets any web page`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "key_files[0]") {
		t.Errorf("a 0600 key file warned:\n%s", got)
	}
	c = Default()
	c.Issuer = "http://127.0.0.1:8080"
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("a loopback http issuer warns: %q", w)
	}
}
