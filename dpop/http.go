package dpop

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
)

// request is what Wrap keeps of a request carrying a DPoP header, for Bind.
type request struct {
	c      *Checker
	proofs []string
	target Target
}

type requestKey struct{}

// Wrap has every request that carries a DPoP header keep it, with the method and URL it came to,
// for the token calls' Bind; when nonces are on, such a request's response carries the current
// nonce in DPoP-Nonce. It checks nothing itself: requests without the header pass untouched.
func (c *Checker) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proofs := r.Header.Values(ProofHeader)
		if len(proofs) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if c.nonces != nil {
			if n, err := c.nonces.Current(r.Context()); err == nil {
				w = &nonceWriter{ResponseWriter: w, nonce: n}
			}
		}
		req := &request{c: c, proofs: proofs, target: TargetOf(r, "")}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestKey{}, req)))
	})
}

// TargetOf is the Target of r, with accessToken for ath.
func TargetOf(r *http.Request, accessToken string) Target {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return Target{Method: r.Method, Scheme: scheme, Host: r.Host, Path: r.URL.EscapedPath(), AccessToken: accessToken}
}

// Bind checks the DPoP proof of ctx's request for a token call and records it against replay:
// the thumbprint to bind the tokens to, or "" when the request carries no proof. It is called by
// every token-issuing call once the client is authenticated (so that no unauthenticated caller
// makes tokend write a replay record). Failures are an *Error, or another error when the replay
// record cannot be written (unavailable).
func Bind(ctx context.Context) (string, error) {
	p, err := Peek(ctx)
	if p == nil || err != nil {
		return "", err
	}
	if err := Record(ctx, p); err != nil {
		return "", err
	}
	return p.JKT, nil
}

// ErrRequired is the refusal of a token call without a proof by a client that must send one, or
// of a refresh token bound to a key without a proof of that key.
func ErrRequired() *Error { return invalid("this client must send a DPoP proof") }

// ErrKeyMismatch is the refusal of a proof whose key is not the one the token or session is
// bound to.
func ErrKeyMismatch() *Error { return invalid("DPoP proof key does not match the bound key") }

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Peek checks the DPoP proof of ctx's request for a token call without recording it: nil when the
// request carries none. The caller records it with Record once it acts on it.
func Peek(ctx context.Context) (*Proof, error) {
	req, ok := ctx.Value(requestKey{}).(*request)
	if !ok {
		return nil, nil
	}
	if len(req.proofs) != 1 {
		return nil, invalid("exactly one DPoP header is allowed")
	}
	return req.c.Check(ctx, req.proofs[0], req.target)
}

// Record records p, from Peek on ctx's request, against replay (see Checker.Record).
func Record(ctx context.Context, p *Proof) error {
	req, ok := ctx.Value(requestKey{}).(*request)
	if !ok {
		return errors.New("dpop: Record without a proof")
	}
	return req.c.Record(ctx, p)
}

// nonceWriter adds DPoP-Nonce to a response that has none yet when its header goes out (an error
// that carries a nonce of its own keeps it: one value, never two).
type nonceWriter struct {
	http.ResponseWriter
	nonce string
	sent  bool
}

func (w *nonceWriter) addNonce() {
	if !w.sent {
		w.sent = true
		if h := w.ResponseWriter.Header(); h.Get(NonceHeader) == "" {
			h.Set(NonceHeader, w.nonce)
		}
	}
}

func (w *nonceWriter) WriteHeader(code int) { w.addNonce(); w.ResponseWriter.WriteHeader(code) }

func (w *nonceWriter) Write(b []byte) (int, error) { w.addNonce(); return w.ResponseWriter.Write(b) }

func (w *nonceWriter) Flush() {
	w.addNonce()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *nonceWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
