package tokens

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
)

// KeySet is the list of signing keys: the first signs, all are published and accepted. Replace
// swaps the whole list at once (keys shared through Redis rotate while tokend runs); every other
// method sees one list or the other, never a mix. It is safe for concurrent use.
type KeySet struct {
	state atomic.Pointer[keyState]
}

// keyState is one immutable list of keys.
type keyState struct {
	keys  []*Key
	byKID map[string]*Key
	jwks  []byte
}

// NewKeySet makes a KeySet of at least one key; keys[0] signs new tokens. Two keys with the same kid
// (the same key twice) are an error.
func NewKeySet(keys ...*Key) (*KeySet, error) {
	st, err := newKeyState(keys)
	if err != nil {
		return nil, err
	}
	ks := new(KeySet)
	ks.state.Store(st)
	return ks, nil
}

// Replace makes keys the set's list: keys[0] signs from now on, and a kid not among keys is
// refused by every Verifier of the set from now on (tokens it verified before are verified anew).
// The same rules as NewKeySet apply; on error the set is unchanged.
func (ks *KeySet) Replace(keys ...*Key) error {
	st, err := newKeyState(keys)
	if err != nil {
		return err
	}
	ks.state.Store(st)
	return nil
}

func newKeyState(keys []*Key) (*keyState, error) {
	if len(keys) == 0 {
		return nil, errors.New("key set: no keys")
	}
	ks := &keyState{
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
func (ks *KeySet) Signer() *Key { return ks.state.Load().keys[0] }

// Keys returns every key of the set, signer first.
func (ks *KeySet) Keys() []*Key { return append([]*Key(nil), ks.state.Load().keys...) }

// JWKS returns the RFC 7517 JSON Web Key Set of the public keys, for /.well-known/jwks.json.
// It is computed once per list; each call returns a fresh copy.
func (ks *KeySet) JWKS() []byte { return bytes.Clone(ks.state.Load().jwks) }

// key returns the key whose kid is kid, or nil.
func (ks *KeySet) key(kid string) *Key { return ks.state.Load().byKID[kid] }
