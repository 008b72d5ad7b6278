package tokens

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// KeySet is the configured list of signing keys: the first signs, all are published and accepted.
// It is immutable and safe for concurrent use.
type KeySet struct {
	keys  []*Key
	byKID map[string]*Key
	jwks  []byte
}

// NewKeySet makes a KeySet of at least one key; keys[0] signs new tokens. Two keys with the same kid
// (the same key twice) are an error.
func NewKeySet(keys ...*Key) (*KeySet, error) {
	if len(keys) == 0 {
		return nil, errors.New("key set: no keys")
	}
	ks := &KeySet{
		keys:  make([]*Key, len(keys)),
		byKID: make(map[string]*Key, len(keys)),
	}
	jwks := make([]jwk, len(keys))
	for i, k := range keys {
		if k == nil || k.signer == nil {
			return nil, fmt.Errorf("key set: key %d is nil", i)
		}
		if _, dup := ks.byKID[k.kid]; dup {
			return nil, fmt.Errorf("key set: key %d duplicates kid %s", i, k.kid)
		}
		ks.keys[i] = k
		ks.byKID[k.kid] = k
		jwks[i] = k.jwk
	}
	var err error
	ks.jwks, err = json.Marshal(struct {
		Keys []jwk `json:"keys"`
	}{jwks})
	if err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	return ks, nil
}

// Signer returns the key that signs new tokens (the first one).
func (ks *KeySet) Signer() *Key { return ks.keys[0] }

// Keys returns every key of the set, signer first.
func (ks *KeySet) Keys() []*Key { return append([]*Key(nil), ks.keys...) }

// JWKS returns the RFC 7517 JSON Web Key Set of the public keys, for /.well-known/jwks.json.
// It is computed once; each call returns a fresh copy.
func (ks *KeySet) JWKS() []byte { return bytes.Clone(ks.jwks) }

// key returns the key whose kid is kid, or nil.
func (ks *KeySet) key(kid string) *Key { return ks.byKID[kid] }
