package dpop

import (
	"errors"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// Error codes (RFC 9449 §7.1, §8, §12.2; RFC 6750 §3.1 for invalid_token).
const (
	CodeInvalidProof = "invalid_dpop_proof" // the proof is missing, malformed or fails a check
	CodeUseNonce     = "use_dpop_nonce"     // the proof lacks the server's current nonce
	CodeInvalidToken = "invalid_token"      // the access token does not go with the proof's key
)

// Error is a refused DPoP proof. Its Description is safe to send: it names the rule that failed,
// never anything secret.
type Error struct {
	Code        string
	Description string
	// Nonce is a fresh server nonce for the client to use (DPoP-Nonce), when nonces are on.
	Nonce string
	// Resource is true for a protected call (401, WWW-Authenticate); false for a token call
	// (RFC 9449 §5: 400 with the error in the body).
	Resource bool
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

// As returns err's *Error, if it is one.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func invalid(desc string) *Error { return &Error{Code: CodeInvalidProof, Description: desc} }

// WWWAuthenticate is the challenge of e (RFC 9449 §7.1): DPoP error=…, error_description=…, algs=….
func (e *Error) WWWAuthenticate() string {
	return `DPoP error="` + e.Code + `", error_description="` + strings.ReplaceAll(e.Description, `"`, `'`) +
		`", algs="` + strings.Join(Algs, " ") + `"`
}

// SetHeaders sets the response headers of e: WWW-Authenticate and, if e carries one, DPoP-Nonce.
func (e *Error) SetHeaders(h http.Header) {
	h.Set("WWW-Authenticate", e.WWWAuthenticate())
	if e.Nonce != "" {
		h.Set(NonceHeader, e.Nonce)
	}
}

// ConnectError is e for Connect, gRPC and gRPC-Web: unauthenticated, with the RFC 9449 error code
// in its message and WWW-Authenticate and DPoP-Nonce in its metadata.
func (e *Error) ConnectError() *connect.Error {
	ce := connect.NewError(connect.CodeUnauthenticated, e)
	e.SetHeaders(ce.Meta())
	return ce
}

// HTTPStatus is the status of e on a plain HTTP endpoint: 401 on a protected call, 400 on the
// token endpoint (RFC 9449 §5, §7.1).
func (e *Error) HTTPStatus() int {
	if e.Resource {
		return http.StatusUnauthorized
	}
	return http.StatusBadRequest
}
