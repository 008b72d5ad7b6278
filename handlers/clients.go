package handlers

import (
	"errors"

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
