package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
)

// Signing algorithms (JWS "alg" values) that tokend signs and accepts.
const (
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
	AlgRS256 = "RS256"
)

const (
	minRSABits      = 2048
	generateRSABits = 3072
)

// Key is a private signing key with its JWK identity. It is safe for concurrent use.
type Key struct {
	alg    string
	kid    string
	signer crypto.Signer // ed25519.PrivateKey, *ecdsa.PrivateKey or *rsa.PrivateKey
	pub    crypto.PublicKey
	jwk    jwk

	// header is the base64url-encoded JWS header for tokens signed by this key, followed by ".".
	header string
}

// jwk is the public half of a Key as published in the JWKS (RFC 7517, 7518, 8037), fields in the
// order shown there.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// ID returns the key's kid: its RFC 7638 JWK thumbprint (SHA-256, base64url without padding).
func (k *Key) ID() string { return k.kid }

// Alg returns the JWS algorithm the key signs with: "EdDSA", "ES256" or "RS256".
func (k *Key) Alg() string { return k.alg }

// Public returns the public key: ed25519.PublicKey, *ecdsa.PublicKey or *rsa.PublicKey.
// The caller must not modify it.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// ParseKeyPEM reads one private key from PEM: PKCS#8 ("PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY") or
// PKCS#1 ("RSA PRIVATE KEY"). Ed25519, P-256 and RSA keys of at least 2048 bits are accepted; other
// curves, small RSA keys, encrypted keys and files holding more than one private key are refused.
// Other blocks (such as "EC PARAMETERS" written by openssl ecparam) are skipped.
func ParseKeyPEM(data []byte) (*Key, error) {
	var found *pem.Block
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
			if found != nil {
				return nil, errors.New("parse key: PEM holds more than one private key")
			}
			found = b
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("parse key: encrypted private keys are not supported; decrypt it first (openssl pkey)")
		}
	}
	if found == nil {
		return nil, errors.New(`parse key: no "PRIVATE KEY", "EC PRIVATE KEY" or "RSA PRIVATE KEY" PEM block found`)
	}
	if strings.Contains(found.Headers["Proc-Type"], "ENCRYPTED") {
		return nil, errors.New("parse key: encrypted private keys are not supported; decrypt it first (openssl pkey)")
	}

	var (
		priv any
		err  error
	)
	switch found.Type {
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(found.Bytes)
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(found.Bytes)
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(found.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parse key: %s: %w (supported: Ed25519, P-256, RSA >= %d bits)", found.Type, err, minRSABits)
	}
	k, err := newKey(priv)
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	return k, nil
}

// LoadKeyFile reads a PEM private key file (see ParseKeyPEM).
func LoadKeyFile(path string) (*Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	k, err := ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// GenerateKey makes a new key for alg: "EdDSA" (also ""), "ES256" (P-256) or "RS256" (3072 bits).
func GenerateKey(alg string) (*Key, error) {
	var (
		priv any
		err  error
	)
	switch alg {
	case "", AlgEdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgRS256:
		priv, err = rsa.GenerateKey(rand.Reader, generateRSABits)
	default:
		return nil, fmt.Errorf("generate key: unsupported alg %q (want EdDSA, ES256 or RS256)", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return newKey(priv)
}

// MarshalPEM encodes the private key as PKCS#8 PEM ("PRIVATE KEY").
func (k *Key) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.signer)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// newKey checks a parsed private key and computes its JWK, kid and JWS header.
func newKey(priv any) (*Key, error) {
	k := &Key{}
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		k.alg, k.signer, k.pub = AlgEdDSA, p, p.Public().(ed25519.PublicKey)
	case *ecdsa.PrivateKey:
		if p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("unsupported elliptic curve %s: only P-256 (ES256) is accepted", p.Curve.Params().Name)
		}
		k.alg, k.signer, k.pub = AlgES256, p, &p.PublicKey
	case *rsa.PrivateKey:
		if bits := p.N.BitLen(); bits < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits refused: at least %d bits required", bits, minRSABits)
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("rsa key: %w", err)
		}
		p.Precompute()
		k.alg, k.signer, k.pub = AlgRS256, p, &p.PublicKey
	default:
		return nil, fmt.Errorf("unsupported key type %T: want Ed25519, P-256 or RSA", priv)
	}
	var err error
	if k.jwk, k.kid, err = publicJWK(k.pub); err != nil {
		return nil, err
	}
	k.jwk.Kid, k.jwk.Alg, k.jwk.Use = k.kid, k.alg, "sig"

	hdr, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid"`
	}{k.alg, typAccessToken, k.kid})
	if err != nil {
		return nil, err
	}
	k.header = base64.RawURLEncoding.EncodeToString(hdr) + "."
	return k, nil
}

// publicJWK returns the key-type members of pub's JWK and its RFC 7638 thumbprint.
func publicJWK(pub crypto.PublicKey) (jwk, string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	var (
		j     jwk
		thumb string // the required members in lexicographic order, no whitespace (RFC 7638 §3.2)
	)
	switch p := pub.(type) {
	case ed25519.PublicKey:
		j = jwk{Kty: "OKP", Crv: "Ed25519", X: b64(p)}
		thumb = `{"crv":"Ed25519","kty":"OKP","x":"` + j.X + `"}`
	case *ecdsa.PublicKey:
		// Uncompressed point 0x04 || X || Y: fixed-length coordinates as RFC 7518 §6.2.1.2 requires.
		raw, err := p.Bytes()
		if err != nil || len(raw) != 65 {
			return jwk{}, "", fmt.Errorf("ec public key: %v", err)
		}
		j = jwk{Kty: "EC", Crv: "P-256", X: b64(raw[1:33]), Y: b64(raw[33:65])}
		thumb = `{"crv":"P-256","kty":"EC","x":"` + j.X + `","y":"` + j.Y + `"}`
	case *rsa.PublicKey:
		j = jwk{Kty: "RSA", N: b64(p.N.Bytes()), E: b64(big.NewInt(int64(p.E)).Bytes())}
		thumb = `{"e":"` + j.E + `","kty":"RSA","n":"` + j.N + `"}`
	default:
		return jwk{}, "", fmt.Errorf("unsupported public key type %T", pub)
	}
	sum := sha256.Sum256([]byte(thumb))
	return j, b64(sum[:]), nil
}
