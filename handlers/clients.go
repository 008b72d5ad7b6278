package handlers

import (
	"errors"
	"time"

	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/passhash"
)

// errBadClient is the one answer to every failed client authentication.
var errBadClient = errors.New("invalid client credentials")

// Clients is the directory of configured OAuth clients, with their secrets
// checked through a cache of recent successful verifications so that only
// the first call with a secret pays the slow hash.
type Clients struct {
	byID  map[string]*config.Client
	cache *passhash.SecretCache
	dummy string
	back  comebacks
}

// NewClients indexes the configured clients. cache may be nil (no cache).
func NewClients(clients []config.Client, cache *passhash.SecretCache) *Clients {
	c := &Clients{byID: make(map[string]*config.Client, len(clients)), cache: cache}
	sample := ""
	for i := range clients {
		cl := &clients[i]
		c.byID[cl.ID] = cl
		if sample == "" && cl.SecretHash != "" {
			sample = cl.SecretHash
		}
	}
	c.dummy = passhash.DummyFor(sample)
	return c
}

// Get returns the client with id.
func (c *Clients) Get(id string) (*config.Client, bool) {
	cl, ok := c.byID[id]
	return cl, ok
}

// IDs lists the configured client ids.
func (c *Clients) IDs() []string {
	ids := make([]string, 0, len(c.byID))
	for id := range c.byID {
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
	cl, ok := c.byID[id]
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
	cl, ok := c.byID[id]
	return ok && trustedIssuer(cl.AssertionIssuers, issuer)
}

// Authenticate checks a confidential client's secret. Unknown clients,
// public clients (no secret) and wrong secrets all fail alike and take
// about the same time (a dummy hash is verified for unknown ids).
func (c *Clients) Authenticate(id, secret string) (*config.Client, bool) {
	cl, known := c.byID[id]
	if !known || cl.IsPublic() {
		_ = passhash.Verify(c.dummy, secret)
		return nil, false
	}
	if secret == "" || len(secret) > maxPasswordLen {
		return nil, false
	}
	if err := c.cache.Verify(cl.ID, cl.SecretHash, secret); err != nil {
		return nil, false
	}
	return cl, true
}
