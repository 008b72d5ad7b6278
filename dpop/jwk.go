package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// privateMembers are the JWK members that carry private or symmetric key material (RFC 7518 §6):
// a proof's jwk with any of them is refused (RFC 9449 §4.3 step 7).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// publicJWK is the public key of a proof's jwk header and its RFC 7638 thumbprint.
type publicJWK struct {
	key crypto.PublicKey
	jkt string
}

// parseJWK reads a public JWK (EC P-256/P-384, OKP Ed25519 or RSA ≥ 2048 bits) and computes its
// thumbprint from the required members only, in lexicographic order (RFC 7638 §3.2).
func parseJWK(raw json.RawMessage) (publicJWK, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return publicJWK{}, errors.New("jwk is not a JSON object")
	}
	for _, p := range privateMembers {
		if _, ok := m[p]; ok {
			return publicJWK{}, errors.New("jwk holds private key material")
		}
	}
	str := func(name string) (string, []byte, error) {
		s, ok := m[name].(string)
		if !ok || s == "" {
			return "", nil, fmt.Errorf("jwk member %s missing", name)
		}
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || base64.RawURLEncoding.EncodeToString(b) != s { // no line breaks, no stray bits
			return "", nil, fmt.Errorf("jwk member %s is not base64url", name)
		}
		return s, b, nil
	}
	kty, _ := m["kty"].(string)
	var thumb string
	var key crypto.PublicKey
	switch kty {
	case "EC":
		crv, _ := m["crv"].(string)
		var curve elliptic.Curve
		switch crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		default:
			return publicJWK{}, fmt.Errorf("unsupported EC curve %q", crv)
		}
		xs, x, err := str("x")
		if err != nil {
			return publicJWK{}, err
		}
		ys, y, err := str("y")
		if err != nil {
			return publicJWK{}, err
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) != size || len(y) != size {
			return publicJWK{}, errors.New("jwk coordinates have the wrong length")
		}
		point := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return publicJWK{}, errors.New("jwk is not a point on its curve")
		}
		key = pub
		thumb = `{"crv":` + quote(crv) + `,"kty":"EC","x":` + quote(xs) + `,"y":` + quote(ys) + `}`
	case "OKP":
		crv, _ := m["crv"].(string)
		if crv != "Ed25519" {
			return publicJWK{}, fmt.Errorf("unsupported OKP curve %q", crv)
		}
		xs, x, err := str("x")
		if err != nil {
			return publicJWK{}, err
		}
		if len(x) != ed25519.PublicKeySize {
			return publicJWK{}, errors.New("jwk x has the wrong length")
		}
		key = ed25519.PublicKey(x)
		thumb = `{"crv":"Ed25519","kty":"OKP","x":` + quote(xs) + `}`
	case "RSA":
		ns, n, err := str("n")
		if err != nil {
			return publicJWK{}, err
		}
		es, e, err := str("e")
		if err != nil {
			return publicJWK{}, err
		}
		if len(n) < 256 || len(n) > 1024 || n[0] == 0 || len(e) > 4 || len(e) == 0 || e[0] == 0 {
			return publicJWK{}, errors.New("jwk RSA modulus must be 2048 to 8192 bits, exponent minimal")
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		if exp < 3 || exp%2 == 0 {
			return publicJWK{}, errors.New("jwk RSA exponent is unusable")
		}
		key = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
		thumb = `{"e":` + quote(es) + `,"kty":"RSA","n":` + quote(ns) + `}`
	default:
		return publicJWK{}, fmt.Errorf("unsupported kty %q", kty)
	}
	sum := sha256.Sum256([]byte(thumb))
	return publicJWK{key: key, jkt: base64.RawURLEncoding.EncodeToString(sum[:])}, nil
}

// quote writes a JSON string for a value known to need no escaping (base64url or a curve name).
func quote(s string) string { return `"` + s + `"` }

// Thumbprint returns the RFC 7638 SHA-256 thumbprint, base64url, of a public JWK given as JSON.
func Thumbprint(jwk []byte) (string, error) {
	k, err := parseJWK(jwk)
	return k.jkt, err
}
