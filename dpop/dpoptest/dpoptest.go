// Package dpoptest makes DPoP proofs for tests: honest ones, and ones broken in each way a
// hostile or careless client might break them.
package dpoptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"
)

// Key is a proof-signing key: ES256 (P-256) or EdDSA (Ed25519).
type Key struct {
	Alg  string
	priv crypto.Signer
}

// NewES256 returns a fresh P-256 key.
func NewES256() *Key {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return &Key{Alg: "ES256", priv: k}
}

// NewEdDSA returns a fresh Ed25519 key.
func NewEdDSA() *Key {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	return &Key{Alg: "EdDSA", priv: k}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// JWK is the public JWK of k as a map; with private, the private member d too (a hostile proof).
func (k *Key) JWK(private bool) map[string]any {
	switch p := k.priv.(type) {
	case *ecdsa.PrivateKey:
		pub, _ := p.PublicKey.Bytes() // 0x04 || X || Y
		m := map[string]any{"kty": "EC", "crv": "P-256", "x": b64(pub[1:33]), "y": b64(pub[33:])}
		if private {
			d, _ := p.Bytes()
			m["d"] = b64(d)
		}
		return m
	case ed25519.PrivateKey:
		m := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(p.Public().(ed25519.PublicKey))}
		if private {
			m["d"] = b64(p.Seed())
		}
		return m
	}
	return nil
}

// Thumbprint is the RFC 7638 thumbprint of k: the cnf.jkt of tokens bound to it.
func (k *Key) Thumbprint() string {
	j := k.JWK(false)
	var s string
	if j["kty"] == "EC" {
		s = `{"crv":"P-256","kty":"EC","x":"` + j["x"].(string) + `","y":"` + j["y"].(string) + `"}`
	} else {
		s = `{"crv":"Ed25519","kty":"OKP","x":"` + j["x"].(string) + `"}`
	}
	sum := sha256.Sum256([]byte(s))
	return b64(sum[:])
}

// Ath is the ath claim for an access token.
func Ath(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return b64(sum[:])
}

// Opts shape one proof. The zero value makes an honest proof for a token call.
type Opts struct {
	AccessToken string        // sets ath
	Nonce       string        // sets nonce
	JTI         string        // default: random
	IATOffset   time.Duration // iat = now + IATOffset
	// Header and Claims override or add members (a nil value deletes one).
	Header, Claims map[string]any
	// HMAC signs with HS256 under this secret instead of the key; None sends alg "none" unsigned.
	HMAC []byte
	None bool
}

// Proof signs a proof for method and url.
func (k *Key) Proof(method, url string, o Opts) string {
	h := map[string]any{"typ": "dpop+jwt", "alg": k.Alg, "jwk": k.JWK(false)}
	c := map[string]any{"htm": method, "htu": url, "iat": time.Now().Add(o.IATOffset).Unix(), "jti": o.JTI}
	if o.JTI == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		c["jti"] = b64(b[:])
	}
	if o.AccessToken != "" {
		c["ath"] = Ath(o.AccessToken)
	}
	if o.Nonce != "" {
		c["nonce"] = o.Nonce
	}
	switch {
	case o.None:
		h["alg"] = "none"
	case o.HMAC != nil:
		h["alg"] = "HS256"
	}
	merge(h, o.Header)
	merge(c, o.Claims)
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(c)
	in := b64(hb) + "." + b64(cb)
	switch {
	case o.None:
		return in + "."
	case o.HMAC != nil:
		m := hmac.New(sha256.New, o.HMAC)
		m.Write([]byte(in))
		return in + "." + b64(m.Sum(nil))
	}
	return in + "." + b64(k.sign([]byte(in)))
}

func (k *Key) sign(in []byte) []byte {
	switch p := k.priv.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(p, in)
	case *ecdsa.PrivateKey:
		d := sha256.Sum256(in)
		r, s, _ := ecdsa.Sign(rand.Reader, p, d[:])
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
	return nil
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
		} else {
			dst[k] = v
		}
	}
}
