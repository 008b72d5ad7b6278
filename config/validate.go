package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/tokend/tokend/passhash"
)

// Validate reports every problem at once, joined, each as "key.path: what is
// wrong", e.g. "users[1].password_hash: not a bcrypt or argon2id hash". It
// parses hashes but does not compute any, so it is fast.
func (c *Config) Validate() error {
	var p problems
	p.check("addr", checkAddr(c.Addr))
	p.check("issuer", checkHTTPURL(c.Issuer, "an absolute http(s) URL without query or fragment"))
	p.check("redis.url", checkRedisURL(c.Redis.URL))
	p.check("redis.durability.replicas", checkReplicas(c.Redis.Durability.Replicas))
	if d := c.Redis.Durability.Timeout.D(); d < time.Millisecond || d > 5*time.Second {
		p.add("redis.durability.timeout", "must be between 1ms and 5s")
	}
	for i, f := range c.Signing.KeyFiles {
		if f == "" {
			p.add(fmt.Sprintf("signing.key_files[%d]", i), "must not be empty")
		}
	}
	c.validateSigning(&p)

	t := c.Tokens
	p.positive("tokens.access_ttl", t.AccessTTL)
	p.positive("tokens.refresh_ttl", t.RefreshTTL)
	p.positive("tokens.code_ttl", t.CodeTTL)
	if t.AccessTTL > 0 && t.RefreshTTL > 0 && t.RefreshTTL < t.AccessTTL {
		p.add("tokens.refresh_ttl", "must be ≥ tokens.access_ttl (%s)", t.AccessTTL)
	}
	if t.MaxM2MTokensPerOwner < 1 {
		p.add("tokens.max_m2m_tokens_per_owner", "must be ≥ 1")
	}
	if t.MaxAPITokensPerOwner < 1 {
		p.add("tokens.max_api_tokens_per_owner", "must be ≥ 1")
	}
	switch {
	case t.RefreshReuseGrace < 0:
		p.add("tokens.refresh_reuse_grace", "must be ≥ 0")
	case t.RefreshTTL > 0 && t.RefreshReuseGrace >= t.RefreshTTL:
		p.add("tokens.refresh_reuse_grace", "must be < tokens.refresh_ttl (%s)", t.RefreshTTL)
	}

	p.positive("tokens.session_max_lifetime", t.SessionMaxLifetime)

	if c.LoginThrottle.MaxFailures < 1 {
		p.add("login_throttle.max_failures", "must be ≥ 1")
	}
	if c.LoginThrottle.MaxFailuresPerUser < 1 {
		p.add("login_throttle.max_failures_per_user", "must be ≥ 1")
	}
	p.positive("login_throttle.window", c.LoginThrottle.Window)
	if c.ClientAuthThrottle.MaxFailures < 1 {
		p.add("client_auth_throttle.max_failures", "must be ≥ 1")
	}
	p.positive("client_auth_throttle.window", c.ClientAuthThrottle.Window)
	for i, s := range c.TrustedProxies {
		if _, err := parseProxy(s); err != nil {
			p.add(fmt.Sprintf("trusted_proxies[%d]", i), "want a CIDR such as 10.0.0.0/8 or an address, got %q", s)
		}
	}

	for i, o := range c.CORS.AllowedOrigins {
		p.check(fmt.Sprintf("cors.allowed_origins[%d]", i), checkOrigin(o))
	}

	switch {
	case c.TLS.CertFile != "" && c.TLS.KeyFile == "":
		p.add("tls.key_file", "required when tls.cert_file is set")
	case c.TLS.CertFile == "" && c.TLS.KeyFile != "":
		p.add("tls.cert_file", "required when tls.key_file is set")
	}

	if !slices.Contains([]string{"json", "text"}, c.Log.Format) {
		p.add("log.format", "want json or text, got %q", c.Log.Format)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		p.add("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Limits.MaxRequestBytes <= 0 {
		p.add("limits.max_request_bytes", "must be > 0")
	}
	p.positive("limits.body_timeout", c.Limits.BodyTimeout)
	if c.Limits.MaxConcurrentStreams < 1 {
		p.add("limits.max_concurrent_streams", "must be ≥ 1")
	}
	p.positive("limits.shutdown_timeout", c.Limits.ShutdownTimeout)
	if d := c.DPoP.IATWindow.D(); d < time.Second || d > 10*time.Minute {
		p.add("dpop.iat_window", "must be between 1s and 10m")
	}
	if d := c.DPoP.NonceRotateEvery.D(); d != 0 && (d < 10*time.Second || d > 24*time.Hour) {
		p.add("dpop.nonce_rotate_every", "must be 0 (no nonces) or between 10s and 24h")
	}

	c.refuseUnsafe(&p)
	c.validateUsers(&p)
	c.validateClients(&p)
	return errors.Join(p...)
}

// KeyPickup is how often every replica reads the signing keys in Redis; a
// new key is published for signing.jwks_max_age plus PublishMargin before
// it signs.
const (
	KeyPickup     = time.Second
	PublishMargin = 3 * KeyPickup
)

// PublishLead is how long a new key in Redis is published before it signs.
func (s Signing) PublishLead() time.Duration { return s.JWKSMaxAge.D() + PublishMargin }

func (c *Config) validateSigning(p *problems) {
	s := c.Signing
	if len(s.KeyFiles) > 0 && s.KEKFile != "" {
		p.add("signing.kek_file", "set either signing.key_files (keys in files) or signing.kek_file (keys in Redis), not both")
	}
	if !slices.Contains([]string{"EdDSA", "ES256", "RS256"}, s.Alg) {
		p.add("signing.alg", "want EdDSA, ES256 or RS256, got %q", s.Alg)
	}
	if s.JWKSMaxAge < 0 || s.JWKSMaxAge.D() > 24*time.Hour {
		p.add("signing.jwks_max_age", "must be between 0 and 24h")
	}
	if s.RotateEvery.D() < 2*s.PublishLead() {
		p.add("signing.rotate_every", "must be ≥ %s: twice signing.jwks_max_age plus %s, so that a key signs at least as long as it waits", 2*s.PublishLead(), 2*PublishMargin)
	}
}

// RequireSigningKeys is the production server's check that signing keys
// are configured: a key generated at start would differ on every replica
// and die with every restart.
func (c *Config) RequireSigningKeys() error {
	if len(c.Signing.KeyFiles) == 0 && c.Signing.KEKFile == "" && c.Signing.KEK == "" {
		return errors.New("no signing keys: set signing.key_files (PEM files from tokend keygen) or a key-encryption key for keys shared through Redis (signing.kek_file, or the TOKEND_SIGNING_KEK environment variable; make one with: openssl rand -base64 32)")
	}
	return nil
}

// maxSecretHashes bounds a client's secret_hashes: a wrong secret is
// verified against each, so each costs a slow hash.
const maxSecretHashes = 3

// Bounds beyond which a setting can only be a mistake (refused), and
// below which it is merely doubtful (Warnings).
const (
	maxReuseGrace      = time.Hour        // refused beyond: reuse detection would be off in all but name
	warnReuseGrace     = time.Minute      // warned beyond
	minThrottleWindow  = time.Second      // refused below: a window that forgets at once limits nothing
	warnThrottleWindow = time.Minute      // warned below
	maxRequestBytes    = 64 << 20         // refused beyond
	warnRequestBytes   = 1 << 20          // warned beyond
	maxBodyTimeout     = 5 * time.Minute  // refused beyond: a stalled body would hold memory that long
	warnBodyTimeout    = 30 * time.Second // warned beyond
	maxStreams         = 10000            // refused beyond
	warnStreams        = 1000             // warned beyond
	warnAccessTTL      = 24 * time.Hour   // warned beyond: access tokens are not revocable everywhere
	warnMaxFailures    = 100              // warned beyond (login and client authentication)
	warnM2MPerOwner    = 1_000_000        // warned beyond
)

// refuseUnsafe refuses settings that can only be a mistake.
func (c *Config) refuseUnsafe(p *problems) {
	if g := c.Tokens.RefreshReuseGrace; g.D() > maxReuseGrace && g < c.Tokens.RefreshTTL { // ≥ refresh_ttl: reported above
		p.add("tokens.refresh_reuse_grace", "must be ≤ %s: a longer grace turns off reuse detection", maxReuseGrace)
	}
	for key, w := range map[string]Duration{"login_throttle.window": c.LoginThrottle.Window, "client_auth_throttle.window": c.ClientAuthThrottle.Window} {
		if w > 0 && w.D() < minThrottleWindow {
			p.add(key, "must be ≥ %s: a shorter window forgets failures at once and limits nothing", minThrottleWindow)
		}
	}
	if c.Limits.MaxRequestBytes > maxRequestBytes {
		p.add("limits.max_request_bytes", "must be ≤ %d (64 MiB); no request tokend serves is larger than 128 KiB", maxRequestBytes)
	}
	if c.Limits.BodyTimeout.D() > maxBodyTimeout {
		p.add("limits.body_timeout", "must be ≤ %s: a stalled body holds memory this long", maxBodyTimeout)
	}
	if c.Limits.MaxConcurrentStreams > maxStreams {
		p.add("limits.max_concurrent_streams", "must be ≤ %d", maxStreams)
	}
	for i, s := range c.TrustedProxies {
		if pr, err := parseProxy(s); err == nil && pr.Bits() == 0 {
			p.add(fmt.Sprintf("trusted_proxies[%d]", i), "%s trusts every peer: any client could name its own address", s)
		}
	}
}

// Warnings lists settings that are allowed but doubtful, each as "key:
// why", for the log at start (once). It reads the permissions of the key
// files named (not their contents); a file it cannot stat is left to the
// start-up that opens it.
func (c *Config) Warnings() []string {
	var w []string
	add := func(key, format string, args ...any) { w = append(w, key+": "+fmt.Sprintf(format, args...)) }
	if u, err := url.Parse(c.Issuer); err == nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		add("issuer", "%s is plain HTTP on a non-loopback host: tokens and secrets cross the network in clear (use https, or TLS at a proxy and an https issuer)", c.Issuer)
	}
	for i, f := range c.Signing.KeyFiles {
		if readableByOthers(f) {
			add(fmt.Sprintf("signing.key_files[%d]", i), "%s is readable by group or others; make it 0600 (chmod 600) or a mounted secret", f)
		}
	}
	if c.Signing.KEKFile != "" && readableByOthers(c.Signing.KEKFile) {
		add("signing.kek_file", "%s is readable by group or others; make it 0600 (chmod 600) or a mounted secret", c.Signing.KEKFile)
	}
	if c.TLS.KeyFile != "" && readableByOthers(c.TLS.KeyFile) {
		add("tls.key_file", "%s is readable by group or others; make it 0600", c.TLS.KeyFile)
	}
	if g := c.Tokens.RefreshReuseGrace.D(); g > warnReuseGrace {
		add("tokens.refresh_reuse_grace", "%s is long: a stolen refresh token can be used this long after its owner's without revoking the session (seconds are enough for retries)", g)
	}
	if t := c.Tokens.AccessTTL.D(); t > warnAccessTTL {
		add("tokens.access_ttl", "%s is long: resource servers that verify tokens offline honour them this long", t)
	}
	for key, v := range map[string]Duration{"login_throttle.window": c.LoginThrottle.Window, "client_auth_throttle.window": c.ClientAuthThrottle.Window} {
		if v.D() >= minThrottleWindow && v.D() < warnThrottleWindow {
			add(key, "%s is short: a guesser gets max_failures attempts every %s", v, v)
		}
	}
	for key, n := range map[string]int{"login_throttle.max_failures": c.LoginThrottle.MaxFailures, "client_auth_throttle.max_failures": c.ClientAuthThrottle.MaxFailures} {
		if n > warnMaxFailures {
			add(key, "%d failures per window is many for a password or secret guess", n)
		}
	}
	if lt := c.LoginThrottle; lt.MaxFailuresPerUser < lt.MaxFailures {
		add("login_throttle.max_failures_per_user", "%d is below login_throttle.max_failures (%d): one address can lock a user out everywhere", lt.MaxFailuresPerUser, lt.MaxFailures)
	}
	if n := c.Limits.MaxRequestBytes; n > warnRequestBytes {
		add("limits.max_request_bytes", "%d is above 1 MiB; every procedure's own limit is smaller, so this only matters if it is lowered", n)
	}
	if d := c.Limits.BodyTimeout.D(); d > warnBodyTimeout {
		add("limits.body_timeout", "%s is long: stalled request bodies hold connections and memory this long", d)
	}
	if n := c.Limits.MaxConcurrentStreams; n > warnStreams {
		add("limits.max_concurrent_streams", "%d streams per HTTP/2 connection lets one connection hold a lot", n)
	}
	if n := c.Tokens.MaxM2MTokensPerOwner; n > warnM2MPerOwner {
		add("tokens.max_m2m_tokens_per_owner", "%d lets one owner fill Redis (each token is about 1 KiB)", n)
	}
	for i, s := range c.TrustedProxies {
		if pr, err := parseProxy(s); err == nil && pr.Bits() > 0 && pr.Bits() < pr.Addr().BitLen()/4 {
			add(fmt.Sprintf("trusted_proxies[%d]", i), "%s is a wide range: every peer in it can name any client address", s)
		}
	}
	for i, o := range c.CORS.AllowedOrigins {
		if o == "*" {
			add(fmt.Sprintf("cors.allowed_origins[%d]", i), `"*" lets any web page call tokend from its visitors' browsers`)
		}
	}
	slices.Sort(w)
	return w
}

// readableByOthers reports whether the file at path exists with group or
// other permission bits set.
func readableByOthers(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().Perm()&0o077 != 0
}

func (c *Config) validateUsers(p *problems) {
	ids := map[uint32]int{}
	names := map[string]int{}
	for i, u := range c.Users {
		at := fmt.Sprintf("users[%d]", i)
		if u.ID == 0 {
			p.add(at+".id", "must be ≥ 1")
		} else if j, dup := ids[u.ID]; dup {
			p.add(at+".id", "%d is also users[%d].id", u.ID, j)
		} else {
			ids[u.ID] = i
		}
		if u.Username == "" {
			p.add(at+".username", "must not be empty")
		} else if j, dup := names[u.Username]; dup {
			p.add(at+".username", "%q is also users[%d].username", u.Username, j)
		} else {
			names[u.Username] = i
		}
		if u.PasswordHash == "" {
			p.add(at+".password_hash", "must not be empty")
		} else {
			p.check(at+".password_hash", hashProblem(u.PasswordHash))
		}
	}
}

func (c *Config) validateClients(p *problems) {
	ids := map[string]int{}
	for i := range c.Clients {
		cl := &c.Clients[i]
		at := fmt.Sprintf("clients[%d]", i)
		switch j, dup := ids[cl.ID]; {
		case cl.ID == "":
			p.add(at+".id", "must not be empty")
		case strings.IndexFunc(cl.ID, badRune) >= 0:
			p.add(at+".id", "must not contain spaces or control characters")
		case dup:
			p.add(at+".id", "%q is also clients[%d].id", cl.ID, j)
		case cl.ID == firstPartyClientID:
			p.add(at+".id", "%q is reserved: it is the client_id of tokend's own first-party tokens", cl.ID)
		default:
			ids[cl.ID] = i
		}
		if cl.SecretHash != "" {
			p.check(at+".secret_hash", hashProblem(cl.SecretHash))
		}
		for j, h := range cl.SecretHashes {
			p.check(fmt.Sprintf("%s.secret_hashes[%d]", at, j), hashProblem(h))
		}
		if len(cl.SecretHashes) > maxSecretHashes {
			p.add(at+".secret_hashes", "at most %d: one secret and those it replaces while clients move over", maxSecretHashes)
		}

		if len(cl.GrantTypes) == 0 {
			p.add(at+".grant_types", "must name at least one of %s", strings.Join(grantTypes, ", "))
		}
		for j, g := range cl.GrantTypes {
			if !slices.Contains(grantTypes, g) {
				p.add(fmt.Sprintf("%s.grant_types[%d]", at, j), "unknown grant type %q (want one of %s)", g, strings.Join(grantTypes, ", "))
			}
		}
		if cl.AllowsGrant(GrantAuthorizationCode) {
			if len(cl.RedirectURIs) == 0 {
				p.add(at+".redirect_uris", "authorization_code needs at least one redirect URI")
			}
			if _, ok := cl.NumericID(); !ok && cl.ID != "" {
				p.add(at+".id", "authorization_code needs a numeric id in 1..4294967295 (auth.AuthService's client_id is a uint32), got %q", cl.ID)
			}
		}
		if cl.AllowsGrant(GrantClientCredentials) && len(cl.AssertionIssuers) == 0 {
			if cl.IsPublic() {
				p.add(at+".secret_hash", "client_credentials needs a secret_hash or assertion_issuers")
			}
			if cl.Owner == "" {
				p.add(at+".owner", "client_credentials needs an owner or assertion_issuers")
			}
		}
		for j, u := range cl.RedirectURIs {
			p.check(fmt.Sprintf("%s.redirect_uris[%d]", at, j), checkRedirectURI(u))
		}
		for j, s := range cl.Scopes {
			if !isScopeToken(s) {
				p.add(fmt.Sprintf("%s.scopes[%d]", at, j), "must be a non-empty word of printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3), got %q", s)
			}
		}
		for j, a := range cl.Audiences {
			if a == "" || strings.IndexFunc(a, badRune) >= 0 {
				p.add(fmt.Sprintf("%s.audiences[%d]", at, j), "must be a non-empty string without spaces, got %q", a)
			}
		}
		switch {
		case cl.AccessTokenLifetime < 0:
			p.add(at+".access_token_lifetime", "must be > 0")
		case cl.AccessTokenLifetime == 0 && cl.AllowsGrant(GrantClientCredentials):
			// RFC 9068 §2.2: exp is required. A token without one could never be
			// revoked at a verifier that does not ask tokend (introspection).
			p.add(at+".access_token_lifetime", "client_credentials needs a lifetime > 0, such as 1h: every access token expires (RFC 9068)")
		}
		if isDecimal(cl.Owner) {
			p.add(at+".owner", "must not be a number: user ids own the M2M tokens users buy with their own tokens, and a configured owner must never share them, got %q", cl.Owner)
		}
		if strings.Contains(cl.Owner, "://") {
			p.add(at+".owner", "must not contain \"://\": owners of the form <issuer>#<subject> belong to foreign assertions, got %q", cl.Owner)
		}
		for j, a := range cl.ResourceAudiences {
			if a == "" || strings.IndexFunc(a, badRune) >= 0 {
				p.add(fmt.Sprintf("%s.resource_audiences[%d]", at, j), "must be a non-empty string without spaces, got %q", a)
			}
		}
		for j, iss := range cl.AssertionIssuers {
			p.check(fmt.Sprintf("%s.assertion_issuers[%d]", at, j), checkHTTPURL(iss, "an absolute http(s) URL"))
		}
		if len(cl.AssertionAudiences) > 0 && len(cl.AssertionIssuers) == 0 {
			p.add(at+".assertion_audiences", "needs assertion_issuers: only client assertions are checked for it")
		}
		for j, a := range cl.AssertionAudiences {
			if a == "" || strings.IndexFunc(a, badRune) >= 0 {
				p.add(fmt.Sprintf("%s.assertion_audiences[%d]", at, j), "must be a non-empty string without spaces, got %q", a)
			}
		}
	}
}

// firstPartyClientID is the client_id of tokend's own tokens (authz.FirstPartyClientID; config does
// not import authz).
const firstPartyClientID = "tokend"

// problems collects "path: message" errors.
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, errors.New(path+": "+fmt.Sprintf(format, args...)))
}

// check adds msg unless it is empty.
func (p *problems) check(path, msg string) {
	if msg != "" {
		p.add(path, "%s", msg)
	}
}

func (p *problems) positive(path string, d Duration) {
	if d <= 0 {
		p.add(path, "must be > 0, got %s", d)
	}
}

func hashProblem(h string) string {
	err := passhash.Validate(h)
	if me, ok := errors.AsType[*passhash.MalformedError](err); ok {
		return me.Reason + ` (make one with "tokend hash")`
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

func isDecimal(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

func badRune(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// isScopeToken reports whether s is a scope-token: 1*NQCHAR, RFC 6749 §3.3.
func isScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
			return false
		}
	}
	return true
}

func checkAddr(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("want host:port such as 127.0.0.1:8080 or :8080, got %q", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("port must be a number in 0..65535, got %q", port)
	}
	return ""
}

// checkHTTPURL checks for an absolute http(s) URL with a host and without
// query, fragment or user info; want says so in the message.
func checkHTTPURL(s, want string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || strings.Contains(s, "#") {
		return fmt.Sprintf("must be %s, got %q", want, s)
	}
	return ""
}

const redisURLForms = "must be a redis://, rediss://, redis+cluster://, rediss+cluster://, redis+sentinel://, rediss+sentinel:// or unix:// URL, or empty for embedded in-memory Redis"

func checkRedisURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return redisURLForms
	}
	switch u.Scheme {
	case "redis", "rediss", "redis+cluster", "rediss+cluster", "unix":
	case "redis+sentinel", "rediss+sentinel":
		if strings.Trim(u.Path, "/") == "" {
			return "a Sentinel URL names the master: redis+sentinel://host:port[,host:port]/master-name[/db]"
		}
	default:
		return redisURLForms
	}
	return ""
}

// checkReplicas accepts what redisstore.ParseReplicas reads: "auto" (or
// empty), "none", or a number of replicas from 0 to 100.
func checkReplicas(s string) string {
	switch s {
	case "", "auto", "none":
		return ""
	}
	if n, err := strconv.Atoi(s); err != nil || n < 0 || n > 100 {
		return "must be auto, none, or a number of replicas (0-100)"
	}
	return ""
}

// checkOrigin accepts "*" or a browser origin: scheme and host (which may
// hold one "*" wildcard), and no path.
func checkOrigin(s string) string {
	if s == "*" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.ForceQuery || strings.Contains(s, "#") {
		return fmt.Sprintf(`must be "*" or an origin such as "https://app.example.com" (scheme and host, no path), got %q`, s)
	}
	return ""
}

// checkRedirectURI follows RFC 9700 §2.1 and §4.1.1: absolute, no fragment,
// https except for loopback redirects, which native apps use over http
// (RFC 8252 §7.3).
func checkRedirectURI(s string) string {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" || strings.Contains(s, "#") {
		return fmt.Sprintf("must be an absolute URL without fragment, got %q", s)
	}
	if u.User != nil {
		return fmt.Sprintf("must not contain user info, got %q", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return fmt.Sprintf("http is allowed only for loopback hosts (127.0.0.1, [::1], localhost); use https, got %q", s)
		}
	default:
		return fmt.Sprintf("scheme must be https (http for loopback hosts), got %q", s)
	}
	return ""
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
