package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration of a tokend process.
type Config struct {
	Addr          string        `yaml:"addr"`   // listen address, host:port
	Issuer        string        `yaml:"issuer"` // iss claim; base of the discovery document
	Redis         Redis         `yaml:"redis"`
	Signing       Signing       `yaml:"signing"`
	Tokens        Tokens        `yaml:"tokens"`
	LoginThrottle LoginThrottle `yaml:"login_throttle"`
	// ClientAuthThrottle limits failed client authentications.
	ClientAuthThrottle ClientAuthThrottle `yaml:"client_auth_throttle"`
	// TrustedProxies are the CIDRs (or single addresses) of reverse proxies
	// whose X-Forwarded-For / Forwarded name the client address.
	TrustedProxies []string `yaml:"trusted_proxies,omitempty"`
	CORS           CORS     `yaml:"cors"`
	TLS            TLS      `yaml:"tls"`
	Log            Log      `yaml:"log"`
	// PIDFile, when set, is where serve writes its process id, for tokend
	// reload (which sends it SIGHUP).
	PIDFile string   `yaml:"pid_file,omitempty"`
	Limits  Limits   `yaml:"limits"`
	Users   []User   `yaml:"users,omitempty"`
	Clients []Client `yaml:"clients,omitempty"`
	// DPoP configures sender-constrained tokens (RFC 9449).
	DPoP DPoP `yaml:"dpop"`
}

// DPoP configures the checking of DPoP proofs.
type DPoP struct {
	// IATWindow is how far a proof's iat may be from tokend's clock, either way; a proof's jti is
	// remembered (in Redis, for the fleet) twice this long.
	IATWindow Duration `yaml:"iat_window"`
	// NonceRotateEvery turns server nonces on (RFC 9449 §8): every proof must carry the fleet's
	// current or previous nonce, rotated this often. 0: no nonces.
	NonceRotateEvery Duration `yaml:"nonce_rotate_every"`
}

// Redis says where state lives.
type Redis struct {
	URL        string     `yaml:"url,omitempty"` // empty: embedded in-memory Redis (nothing kept)
	Durability Durability `yaml:"durability"`
}

// Durability says how many replicas must confirm a write that revokes or
// rotates before tokend acknowledges it (Redis WAIT after the write); when
// fewer confirm within Timeout the call answers unavailable.
type Durability struct {
	// Replicas: "auto" (default: one replica on every master seen with a
	// connected replica, none on a master that never had one), "none" (or
	// 0: never wait), or a number of replicas to wait for on every master.
	Replicas string   `yaml:"replicas,omitempty"`
	Timeout  Duration `yaml:"timeout"` // how long each wait may take
}

// Signing says where the access-token signing keys come from: key files
// (KeyFiles), or keys shared by every replica through Redis, sealed under a
// key-encryption key (KEKFile or the TOKEND_SIGNING_KEK environment
// variable) and rotated every RotateEvery.
type Signing struct {
	KeyFiles []string `yaml:"key_files,omitempty"` // PEM; the first signs, all are in the JWKS; empty: keys in Redis (or, in development, generated at start)
	// KEKFile holds the key-encryption key: 32 bytes in base64
	// (openssl rand -base64 32). It is never written to Redis.
	KEKFile string `yaml:"kek_file,omitempty"`
	// KEK is the key-encryption key from TOKEND_SIGNING_KEK, when KEKFile is not set.
	KEK         string   `yaml:"-"`
	Alg         string   `yaml:"alg"`          // algorithm of keys made in Redis: EdDSA, ES256 or RS256
	RotateEvery Duration `yaml:"rotate_every"` // how long a key in Redis signs before the next takes over
	// JWKSMaxAge is the max-age of /.well-known/jwks.json; a new key in
	// Redis is published this long (and a few seconds) before it signs.
	JWKSMaxAge Duration `yaml:"jwks_max_age"`
}

// SharedKeys reports whether the signing keys live in Redis: a
// key-encryption key is configured and no key files.
func (s Signing) SharedKeys() bool {
	return len(s.KeyFiles) == 0 && (s.KEKFile != "" || s.KEK != "")
}

// Tokens sets lifetimes.
type Tokens struct {
	AccessTTL         Duration `yaml:"access_ttl"`
	RefreshTTL        Duration `yaml:"refresh_ttl"`
	CodeTTL           Duration `yaml:"code_ttl"`
	RefreshReuseGrace Duration `yaml:"refresh_reuse_grace"` // a just-rotated refresh token may be presented again this long
	// SessionMaxLifetime is the absolute lifetime of a sign-in: no refresh-token rotation takes a
	// session past its start plus this.
	SessionMaxLifetime Duration `yaml:"session_max_lifetime"`
	// MaxM2MTokensPerOwner is the most live (unexpired, revoked or not) M2M
	// tokens one owner may hold; CreateToken beyond it is resource_exhausted.
	MaxM2MTokensPerOwner int `yaml:"max_m2m_tokens_per_owner"`
	// MaxAPITokensPerOwner is the most API tokens one user may hold;
	// CreateToken beyond it is resource_exhausted.
	MaxAPITokensPerOwner int `yaml:"max_api_tokens_per_owner"`
}

// LoginThrottle limits failed password logins: per (username, client
// address) and per client address, and, much higher, per username from
// every address, so that a distributed guess on one account stays bounded
// while one attacker cannot lock a user out from elsewhere.
type LoginThrottle struct {
	MaxFailures        int      `yaml:"max_failures"`
	MaxFailuresPerUser int      `yaml:"max_failures_per_user"`
	Window             Duration `yaml:"window"`
}

// ClientAuthThrottle limits failed client authentications (a wrong
// client secret on any endpoint), per (client, client address) and per
// client address.
type ClientAuthThrottle struct {
	MaxFailures int      `yaml:"max_failures"`
	Window      Duration `yaml:"window"`
}

// TrustedPrefixes returns TrustedProxies parsed (Validate has checked
// them; a bare address is a one-address prefix).
func (c *Config) TrustedPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		if p, err := parseProxy(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parseProxy(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Addr().Is4In6() {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96), nil
	}
	return p.Masked(), nil
}

// CORS lists the browser origins allowed to call.
type CORS struct {
	AllowedOrigins []string `yaml:"allowed_origins,omitempty"` // "*" allows any
}

// TLS names a certificate and key; both or neither.
type TLS struct {
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" && t.KeyFile != "" }

// Log sets the log format and level.
type Log struct {
	Format string `yaml:"format"` // json or text
	Level  string `yaml:"level"`  // debug, info, warn or error
}

// Limits bounds requests and shutdown.
type Limits struct {
	MaxRequestBytes      int64    `yaml:"max_request_bytes"`      // ceiling on every request body; each procedure has its own, smaller limit
	BodyTimeout          Duration `yaml:"body_timeout"`           // a request body must arrive within this long of its headers
	MaxConcurrentStreams int      `yaml:"max_concurrent_streams"` // HTTP/2 streams one connection may have open at once
	ShutdownTimeout      Duration `yaml:"shutdown_timeout"`
}

// User is a user who signs in with a password.
type User struct {
	ID           uint32 `yaml:"id"` // ≥ 1; the sub claim of the user's tokens, in decimal
	Username     string `yaml:"username"`
	PasswordHash string `yaml:"password_hash"` // bcrypt or argon2id, see passhash
}

// Grant types a client may be allowed.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantPassword          = "password"
	GrantClientCredentials = "client_credentials"
)

var grantTypes = []string{GrantAuthorizationCode, GrantRefreshToken, GrantPassword, GrantClientCredentials}

// Client is an OAuth client.
type Client struct {
	ID         string `yaml:"id"`
	SecretHash string `yaml:"secret_hash,omitempty"` // empty (and no secret_hashes): a public client (must use PKCE; cannot use client_credentials without assertion_issuers)
	// SecretHashes are further accepted secrets, so that a secret rotates
	// with an overlap: add the new one, move the clients over, remove the old.
	SecretHashes        []string `yaml:"secret_hashes,omitempty"`
	RedirectURIs        []string `yaml:"redirect_uris,omitempty"`
	GrantTypes          []string `yaml:"grant_types,omitempty"`
	Scopes              []string `yaml:"scopes,omitempty"`
	Owner               string   `yaml:"owner,omitempty"` // owner of M2M tokens made with the secret
	Audiences           []string `yaml:"audiences,omitempty"`
	AccessTokenLifetime Duration `yaml:"access_token_lifetime"`         // the most an M2M token may live; > 0 for client_credentials
	AssertionIssuers    []string `yaml:"assertion_issuers,omitempty"`   // trusted issuers of client_assertion JWTs
	AssertionAudiences  []string `yaml:"assertion_audiences,omitempty"` // when set, a client assertion's aud must name one of these (RFC 7523 §3)
	OwnerClaim          string   `yaml:"owner_claim,omitempty"`         // claim of a client assertion naming the owner; empty: defaultOwnerClaim
	// ResourceAudiences are the audiences this client serves as a resource server: at RFC 7662
	// introspection it sees tokens issued to it or whose aud names it or one of these, and no others.
	ResourceAudiences []string `yaml:"resource_audiences,omitempty"`
	// DPoPBoundAccessTokens: this client gets DPoP-bound tokens only; a token request without a
	// proof is refused (RFC 9449 §5.2).
	DPoPBoundAccessTokens bool `yaml:"dpop_bound_access_tokens,omitempty"`
}

// ServesAudience reports whether the client may introspect a token with audience aud: aud names the
// client's id or one of its resource_audiences.
func (c *Client) ServesAudience(aud []string) bool {
	for _, a := range aud {
		if a == c.ID || slices.Contains(c.ResourceAudiences, a) {
			return true
		}
	}
	return false
}

// NumericID returns the client id as a uint32 when it is one, written the
// canonical way (no sign, no leading zeros) and not 0, the proto zero value.
// Only such clients serve auth.AuthService, whose client_id is a uint32.
func (c *Client) NumericID() (uint32, bool) {
	n, err := strconv.ParseUint(c.ID, 10, 32)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != c.ID {
		return 0, false
	}
	return uint32(n), true
}

// AllowsGrant reports whether the client may use grant type g.
func (c *Client) AllowsGrant(g string) bool { return slices.Contains(c.GrantTypes, g) }

// defaultOwnerClaim is the claim of a client assertion that names the owner
// when a client's owner_claim is empty.
const defaultOwnerClaim = "sub"

// OwnerClaimName returns OwnerClaim, or defaultOwnerClaim when it is empty.
func (c *Client) OwnerClaimName() string {
	if c.OwnerClaim == "" {
		return defaultOwnerClaim
	}
	return c.OwnerClaim
}

// IsPublic reports whether the client has no secret.
func (c *Client) IsPublic() bool { return c.SecretHash == "" && len(c.SecretHashes) == 0 }

// Hashes returns every accepted secret hash: secret_hash, then secret_hashes.
func (c *Client) Hashes() []string {
	if c.SecretHash == "" {
		return c.SecretHashes
	}
	return append([]string{c.SecretHash}, c.SecretHashes...)
}

// Duration is a time.Duration written in YAML as a Go duration string
// ("15m", "720h", "2s"). Numbers are refused, since "900" could mean seconds
// or nanoseconds; only a bare 0 is accepted.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

func parseDuration(n *yaml.Node) (Duration, error) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int":
			if n.Value == "0" {
				return 0, nil
			}
			return 0, fmt.Errorf("want a duration with a unit such as \"15m\", got the number %s", n.Value)
		case "!!str":
			v, err := time.ParseDuration(n.Value)
			if err != nil {
				return 0, fmt.Errorf("want a duration such as \"15m\" or \"1h30m\", got %q", n.Value)
			}
			return Duration(v), nil
		}
	}
	return 0, fmt.Errorf("want a duration such as \"15m\", got %q", n.Value)
}

// defaultM2MLifetime is a client's access_token_lifetime when its entry does not set one.
const defaultM2MLifetime = Duration(time.Hour)

// Default returns the defaults that a configuration file overrides.
func Default() Config {
	const addr = "127.0.0.1:8080"
	return Config{
		Addr:   addr,
		Issuer: defaultIssuer(addr),
		Redis:  Redis{Durability: Durability{Replicas: "auto", Timeout: Duration(200 * time.Millisecond)}},
		// 30 days: long enough that the JWKS changes rarely, short enough that a key leaked
		// unnoticed stops signing within a month.
		Signing: Signing{Alg: "EdDSA", RotateEvery: Duration(720 * time.Hour), JWKSMaxAge: Duration(5 * time.Minute)},
		Tokens: Tokens{
			AccessTTL:         Duration(15 * time.Minute),
			RefreshTTL:        Duration(720 * time.Hour),
			CodeTTL:           Duration(5 * time.Minute),
			RefreshReuseGrace: Duration(2 * time.Second),
			// 90 days: a quarter without signing in again, as the longest-lived consumer sessions do.
			SessionMaxLifetime: Duration(2160 * time.Hour),
			// a line of its own, apart from the lifetimes above
			MaxM2MTokensPerOwner: 10000,
			MaxAPITokensPerOwner: 100,
		},
		LoginThrottle:      LoginThrottle{MaxFailures: 10, MaxFailuresPerUser: 100, Window: Duration(15 * time.Minute)},
		ClientAuthThrottle: ClientAuthThrottle{MaxFailures: 10, Window: Duration(15 * time.Minute)},
		Log:                Log{Format: "json", Level: "info"},
		Limits: Limits{MaxRequestBytes: 1 << 20, BodyTimeout: Duration(10 * time.Second), MaxConcurrentStreams: 100,
			ShutdownTimeout: Duration(15 * time.Second)},
		DPoP: DPoP{IATWindow: Duration(time.Minute)},
	}
}
