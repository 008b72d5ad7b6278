package handlers

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/passhash"
	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/tracing"
)

// Clients is the directory of configured OAuth clients, with their secrets
// checked through a cache of recent successful verifications so that only
// the first call with a secret pays the slow hash.
type Clients struct {
	dir   atomic.Pointer[clientDir]
	cache *passhash.SecretCache
	limit ClientLimit
	// checks joins concurrent Checks of one (id, secret): a burst of
	// calls with a new secret counts and verifies once.
	checks singleflight.Group
	back   comebacks
}

// clientDir is one immutable list of clients.
type clientDir struct {
	byID  map[string]*config.Client
	dummy string
}

// ClientLimit throttles failed client authentications (Clients.Check).
type ClientLimit struct {
	Limiter     Limiter
	MaxFailures int           // per (client, address) and per address, within Window
	Window      time.Duration // fixed, from the first failure
	Log         *slog.Logger
	// Refused, when set, is called for every refused authentication, with
	// the reason: "credentials" (wrong or unknown) or "throttled".
	Refused func(reason string)
}

// Limit makes Check throttle failed authentications.
func (c *Clients) Limit(l ClientLimit) { c.limit = l }

// NewClients indexes the configured clients. cache may be nil (no cache).
func NewClients(clients []config.Client, cache *passhash.SecretCache) *Clients {
	c := &Clients{cache: cache}
	c.Replace(clients)
	return c
}

// Replace makes clients the directory (a configuration reload): a client
// no longer listed is refused from now on, and so is everything issued to
// it (Current); a secret hash no longer listed is refused at once, even if
// it verified recently (the cache is keyed by hash).
func (c *Clients) Replace(clients []config.Client) {
	d := &clientDir{byID: make(map[string]*config.Client, len(clients))}
	sample := ""
	for i := range clients {
		cl := &clients[i]
		d.byID[cl.ID] = cl
		if hs := cl.Hashes(); sample == "" && len(hs) > 0 {
			sample = hs[0]
		}
	}
	d.dummy = passhash.DummyFor(sample)
	c.dir.Store(d)
}

// Get returns the client with id.
func (c *Clients) Get(id string) (*config.Client, bool) {
	cl, ok := c.dir.Load().byID[id]
	return cl, ok
}

// IDs lists the configured client ids.
func (c *Clients) IDs() []string {
	d := c.dir.Load()
	ids := make([]string, 0, len(d.byID))
	for id := range d.byID {
		ids = append(ids, id)
	}
	return ids
}

// SetComebacks records which client ids came back after a removal, and
// when they were removed (redisstore.SyncConfigured).
func (c *Clients) SetComebacks(since map[string]time.Time) { c.back.set(since) }

// Ready is errNotSynced until SetComebacks (see Users.Ready).
func (c *Clients) Ready() error { return c.back.ready() }

// Current returns the client id if what was issued to it at issued still
// belongs to a configured client; else errGone (not configured, or removed after
// issued and configured again), or errNotSynced until SetComebacks.
func (c *Clients) Current(id string, issued time.Time) (*config.Client, error) {
	cl, ok := c.dir.Load().byID[id]
	if !ok {
		return nil, errGone
	}
	if err := c.back.check(id, issued); err != nil {
		return nil, err
	}
	return cl, nil
}

// Trusts reports whether client id is configured and lists issuer among
// its assertion_issuers.
func (c *Clients) Trusts(id, issuer string) bool {
	cl, ok := c.dir.Load().byID[id]
	return ok && trustedIssuer(cl.AssertionIssuers, issuer)
}

// Authenticate checks a confidential client's secret. Unknown clients,
// public clients (no secret) and wrong secrets all fail alike and take
// about the same time (a dummy hash is verified for unknown ids). It is not
// throttled: endpoints call Check.
func (c *Clients) Authenticate(id, secret string) (*config.Client, bool) {
	d := c.dir.Load()
	cl, known := d.byID[id]
	if !known || cl.IsPublic() || secret == "" || len(secret) > maxPasswordLen {
		// One slow hash, as for a wrong secret of a known client: the time
		// of a refusal tells nothing of which ids exist.
		_ = passhash.Verify(d.dummy, secret[:min(len(secret), maxPasswordLen)])
		return nil, false
	}
	// One hash per listed secret: a client rotating its secret (two hashes
	// for a while) answers a wrong one more slowly, which tells that it is
	// rotating, not its secret. Padding every refusal to the most hashes a
	// client may list would multiply what each guess costs tokend instead.
	for _, h := range cl.Hashes() {
		if c.cache.Verify(cl.ID, h, secret) == nil {
			return cl, true
		}
	}
	return nil, false
}

// authenticate is Authenticate in a span of its own (the slow hash).
func (c *Clients) authenticate(ctx context.Context, id, secret string) (*config.Client, bool) {
	_, end := tracing.Start(ctx, "passhash.verify")
	defer end()
	return c.Authenticate(id, secret)
}

// cached reports whether secret verified recently against one of cl's hashes.
func (c *Clients) cached(cl *config.Client, secret string) bool {
	for _, h := range cl.Hashes() {
		if c.cache.Cached(cl.ID, h, secret) {
			return true
		}
	}
	return false
}

// Check authenticates a confidential client as Authenticate does, with
// failures throttled per (client id, client address) and per client
// address (the address from clientaddr via peer). A secret that verified
// recently (the secret cache) passes at once, without touching the
// limiter: only a call that must hash the secret counts an attempt first
// (so parallel guesses cannot overshoot the limit), and takes it back if
// it succeeds. Errors are connect errors: unauthenticated (errBadClient),
// resource_exhausted with retry info, or unavailable.
func (c *Clients) Check(ctx context.Context, id, secret, addr string) (*config.Client, error) {
	if cl, known := c.dir.Load().byID[id]; known && !cl.IsPublic() && secret != "" && c.cached(cl, secret) {
		return cl, nil
	}
	sum := sha256.Sum256([]byte(id + "\x00" + secret))
	v, err, _ := c.checks.Do(string(sum[:]), func() (any, error) { return c.check(ctx, id, secret, addr) })
	if err != nil {
		return nil, err // a value every joined caller may return: a sentinel, a throttledError, a wrapped store error
	}
	return v.(*config.Client), nil
}

// check is Check without the joining of concurrent calls.
func (c *Clients) check(ctx context.Context, id, secret, addr string) (*config.Client, error) {
	if c.limit.Limiter == nil {
		if cl, ok := c.authenticate(ctx, id, secret); ok {
			return cl, nil
		}
		c.refused(ctx, id, addr, "credentials")
		return nil, errBadClient
	}
	g := redisstore.LimitGroup{Tag: addrTag(addr), Limits: []redisstore.Limit{
		{Name: "client:" + id, Max: c.limit.MaxFailures},
		{Name: "client-addr", Max: c.limit.MaxFailures},
	}}
	wait, err := takeLimits(ctx, c.limit.Limiter, c.limit.Window, g)
	if err != nil {
		return nil, fmt.Errorf("client authentication limit: %w", err)
	}
	if wait > 0 {
		c.refused(ctx, id, addr, "throttled")
		return nil, throttledError{wait}
	}
	cl, ok := c.authenticate(ctx, id, secret)
	if !ok {
		c.refused(ctx, id, addr, "credentials")
		return nil, errBadClient
	}
	if err := c.limit.Limiter.LimitForgive(ctx, g); err != nil {
		return nil, fmt.Errorf("client authentication limit: %w", err)
	}
	return cl, nil
}

// refused logs and counts a refused client authentication: the client id
// as given (it names no secret) and the address, never the secret.
func (c *Clients) refused(ctx context.Context, id, addr, reason string) {
	if len(id) > 200 {
		id = id[:200]
	}
	if c.limit.Log != nil {
		c.limit.Log.InfoContext(ctx, "client authentication refused", "event", "client_auth.refused", "client_id", id, "addr", addr, "reason", reason)
	}
	if c.limit.Refused != nil {
		c.limit.Refused(reason)
	}
}
