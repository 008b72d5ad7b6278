// Package dpopclient is the client side of DPoP (RFC 9449) for Go programs that call tokend: a
// key that signs proofs and remembers the server's nonce, a connect-go interceptor that sends
// "Authorization: DPoP <token>" with a proof on every call (gRPC, gRPC-Web and Connect alike), and
// an http.RoundTripper that adds proofs to plain HTTP requests, such as those golang.org/x/oauth2
// makes to /oauth/token. Both retry a call once when the server asks for a fresh nonce.
package dpopclient

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
)

// Key is an ES256 proof key. Keep it for as long as the tokens bound to it live: a bound access
// or refresh token is useless with any other key. It is safe for concurrent use.
type Key struct {
	priv  *ecdsa.PrivateKey
	jwk   map[string]string
	thumb string

	mu    sync.Mutex
	nonce string
}

// New returns a Key with a fresh P-256 key pair.
func New() (*Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return FromECDSA(priv)
}

// FromECDSA returns a Key signing with priv, a P-256 key.
func FromECDSA(priv *ecdsa.PrivateKey) (*Key, error) {
	if priv.Curve != elliptic.P256() {
		return nil, errors.New("dpopclient: the key must be P-256 (ES256)")
	}
	pub, err := priv.PublicKey.Bytes()
	if err != nil {
		return nil, err
	}
	enc := base64.RawURLEncoding.EncodeToString
	k := &Key{priv: priv, jwk: map[string]string{"kty": "EC", "crv": "P-256", "x": enc(pub[1:33]), "y": enc(pub[33:])}}
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + k.jwk["x"] + `","y":"` + k.jwk["y"] + `"}`))
	k.thumb = enc(sum[:])
	return k, nil
}

// Thumbprint is the key's RFC 7638 thumbprint: the cnf.jkt of the tokens bound to it.
func (k *Key) Thumbprint() string { return k.thumb }

// Proof returns a proof for a request with method to url (no query or fragment needed); with an
// access token, for a protected call (ath). It carries the last nonce the server sent.
func (k *Key) Proof(method, url, accessToken string) (string, error) {
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	enc := base64.RawURLEncoding.EncodeToString
	claims := map[string]any{"jti": enc(jti[:]), "htm": method, "htu": url, "iat": time.Now().Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		claims["ath"] = enc(sum[:])
	}
	k.mu.Lock()
	if k.nonce != "" {
		claims["nonce"] = k.nonce
	}
	k.mu.Unlock()
	h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": k.jwk})
	c, _ := json.Marshal(claims)
	in := enc(h) + "." + enc(c)
	digest := sha256.Sum256([]byte(in))
	r, s, err := ecdsa.Sign(rand.Reader, k.priv, digest[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return in + "." + enc(sig), nil
}

// remember keeps the nonce of a response's headers; it reports whether the response asked for a
// new one (use_dpop_nonce).
func (k *Key) remember(h http.Header) (retry bool) {
	if n := h.Get("DPoP-Nonce"); n != "" {
		k.mu.Lock()
		changed := n != k.nonce
		k.nonce = n
		k.mu.Unlock()
		return changed && strings.Contains(h.Get("WWW-Authenticate"), `error="use_dpop_nonce"`)
	}
	return false
}

// Interceptor returns a connect-go interceptor for a client of the server at baseURL (as given
// to the client constructor): each call gets a proof for POST baseURL+procedure and, when token
// returns one, "Authorization: DPoP <token>" with the proof's ath. token may be nil (token calls).
func (k *Key) Interceptor(baseURL string, token func() string) connect.Interceptor {
	return &interceptor{k: k, base: strings.TrimSuffix(baseURL, "/"), token: token}
}

type interceptor struct {
	k     *Key
	base  string
	token func() string
}

func (i *interceptor) sign(h http.Header, procedure string) error {
	var at string
	if i.token != nil {
		at = i.token()
	}
	p, err := i.k.Proof(http.MethodPost, i.base+procedure, at)
	if err != nil {
		return err
	}
	h.Set("DPoP", p)
	if at != "" {
		h.Set("Authorization", "DPoP "+at)
	}
	return nil
}

func (i *interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		for attempt := 0; ; attempt++ {
			if err := i.sign(req.Header(), req.Spec().Procedure); err != nil {
				return nil, err
			}
			resp, err := next(ctx, req)
			if err == nil {
				i.k.remember(resp.Header())
				return resp, nil
			}
			var ce *connect.Error
			if attempt == 0 && errors.As(err, &ce) && (i.k.remember(ce.Meta()) || strings.HasPrefix(ce.Message(), "use_dpop_nonce")) {
				continue // the server asked for its nonce: once more, with it
			}
			return nil, err
		}
	}
}

func (i *interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		_ = i.sign(conn.RequestHeader(), spec.Procedure) // a signing failure surfaces as the server's refusal
		return conn
	}
}

func (i *interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// Transport returns an http.RoundTripper that adds a proof (no ath) to every request it sends
// through base (nil: http.DefaultTransport), and sends a request once more, with the nonce, when
// the server answers use_dpop_nonce. Give it to golang.org/x/oauth2 through the context
// (oauth2.HTTPClient) to get DPoP-bound tokens from /oauth/token.
func (k *Key) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{k: k, base: base}
}

type transport struct {
	k    *Key
	base http.RoundTripper
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
		r.Body.Close()
	}
	for attempt := 0; ; attempt++ {
		u := *r.URL
		u.RawQuery, u.Fragment = "", ""
		p, err := t.k.Proof(r.Method, u.String(), "")
		if err != nil {
			return nil, err
		}
		req := r.Clone(r.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.Header.Set("DPoP", p)
		resp, err := t.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		if t.k.remember(resp.Header) && attempt == 0 {
			resp.Body.Close()
			continue
		}
		return resp, nil
	}
}
