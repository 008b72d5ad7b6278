package dpop_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"time"
)

// costlyProof: an RSA-8192, e = 2^31-1 jwk (parseJWK refuses both) and a junk signature below n.
func costlyProof(htu string) string {
	n := make([]byte, 1024)
	_, _ = rand.Read(n)
	n[0] |= 0x80
	n[len(n)-1] |= 1
	b64 := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "RS256",
		"jwk": map[string]string{"kty": "RSA", "n": b64(n), "e": b64([]byte{0x7f, 0xff, 0xff, 0xff})}})
	c, _ := json.Marshal(map[string]any{"jti": "j", "htm": "POST", "htu": htu, "iat": time.Now().Unix()})
	sig := make([]byte, 1024)
	sig[1] = 1
	return b64(h) + "." + b64(c) + "." + b64(sig)
}
