package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/internal/jsonstr"
)

const typAccessToken = "at+jwt" // RFC 9068 §2.1

// signBuf holds the scratch buffers of one Sign call, pooled so that signing allocates little more
// than the returned string.
type signBuf struct{ payload, token []byte }

var signBufs = sync.Pool{New: func() any { return &signBuf{payload: make([]byte, 0, 512), token: make([]byte, 0, 1024)} }}

// Sign signs c with the KeySet's signer. The header is {"alg", "typ":"at+jwt", "kid"}. It refuses
// claims that Verify would refuse for their kind or sub; it does not fill in iat, exp or jti.
func (ks *KeySet) Sign(c *Claims) (string, error) {
	if c == nil {
		return "", errors.New("sign: nil claims")
	}
	if err := checkClaims(c); err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	k := ks.state.Load().keys[0]
	b := signBufs.Get().(*signBuf)
	defer func() {
		if cap(b.payload) <= 64<<10 && cap(b.token) <= 64<<10 {
			signBufs.Put(b)
		}
	}()

	b.payload = appendClaims(b.payload[:0], c)
	tok := append(b.token[:0], k.header...)
	tok = base64.RawURLEncoding.AppendEncode(tok, b.payload)
	tok, err := k.appendSignature(tok)
	b.token = tok
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return string(tok), nil
}

// appendSignature signs the JWS signing input in (header.payload) and appends "." and the
// base64url signature.
func (k *Key) appendSignature(in []byte) ([]byte, error) {
	var sig []byte
	switch p := k.signer.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(p, in)
	case *ecdsa.PrivateKey:
		digest := sha256.Sum256(in)
		der, err := ecdsa.SignASN1(rand.Reader, p, digest[:])
		if err != nil {
			return in, err
		}
		var raw [64]byte // JWS wants R || S, each 32 bytes big-endian (RFC 7518 §3.4)
		if err := derToRaw(der, raw[:]); err != nil {
			return in, err
		}
		sig = raw[:]
	case *rsa.PrivateKey:
		digest := sha256.Sum256(in)
		var err error
		sig, err = rsa.SignPKCS1v15(rand.Reader, p, crypto.SHA256, digest[:])
		if err != nil {
			return in, err
		}
	default:
		return in, fmt.Errorf("unsupported key type %T", k.signer)
	}
	in = append(in, '.')
	return base64.RawURLEncoding.AppendEncode(in, sig), nil
}

// derToRaw turns an ASN.1 ECDSA signature, SEQUENCE { INTEGER r, INTEGER s }, into r || s with each
// half left-padded to len(out)/2 bytes.
func derToRaw(der, out []byte) error {
	bad := errors.New("malformed ECDSA signature")
	if len(der) < 2 || der[0] != 0x30 || int(der[1]) != len(der)-2 || der[1] >= 0x80 {
		return bad
	}
	rest := der[2:]
	half := len(out) / 2
	for i := range 2 {
		if len(rest) < 2 || rest[0] != 0x02 || rest[1] >= 0x80 || int(rest[1]) > len(rest)-2 || rest[1] == 0 {
			return bad
		}
		n := int(rest[1])
		v := rest[2 : 2+n]
		rest = rest[2+n:]
		for len(v) > 0 && v[0] == 0 {
			v = v[1:]
		}
		if len(v) > half {
			return bad
		}
		copy(out[i*half+half-len(v):(i+1)*half], v)
	}
	if len(rest) != 0 {
		return bad
	}
	return nil
}

// appendClaims appends c as JSON, byte for byte what encoding/json makes of it (with jwt's default
// MarshalSingleStringAsArray and TimePrecision), except that aud is always an array. The tests hold
// it to json.Marshal, and fail if Claims gains a field that is not written here.
func appendClaims(b []byte, c *Claims) []byte {
	start := len(b)
	b = appendStringField(b, `,"iss":`, c.Issuer)
	b = appendStringField(b, `,"sub":`, c.Subject)
	if len(c.Audience) > 0 {
		b = append(b, `,"aud":[`...)
		for i, a := range c.Audience {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonstr.Append(b, a)
		}
		b = append(b, ']')
	}
	b = appendDateField(b, `,"exp":`, c.ExpiresAt)
	b = appendDateField(b, `,"nbf":`, c.NotBefore)
	b = appendDateField(b, `,"iat":`, c.IssuedAt)
	b = appendStringField(b, `,"jti":`, c.ID)
	b = appendStringField(b, `,"client_id":`, c.ClientID)
	b = appendStringField(b, `,"scope":`, c.Scope)
	b = append(b, `,"kind":`...) // not omitempty
	b = jsonstr.Append(b, c.Kind)
	b = appendStringField(b, `,"sid":`, c.SessionID)
	b = appendStringField(b, `,"api_token_id":`, c.APITokenID)
	b = appendStringField(b, `,"owner":`, c.Owner)
	b = appendStringField(b, `,"name":`, c.Name)
	b = appendStringField(b, `,"assertion_iss":`, c.AssertionIssuer)
	if c.Confirmation != nil {
		b = jsonstr.Append(append(b, `,"cnf":{"jkt":`...), c.Confirmation.JKT)
		b = append(b, '}')
	}
	b[start] = '{' // kind is always written, so there is a leading comma to replace
	return append(b, '}')
}

func appendStringField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return jsonstr.Append(append(b, name...), v)
}

func appendDateField(b []byte, name string, d *jwt.NumericDate) []byte {
	if d == nil {
		return b
	}
	return strconv.AppendInt(append(b, name...), d.Unix(), 10)
}
