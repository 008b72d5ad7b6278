package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/dpop"
)

// OAuthTokenRequest is a parsed POST to a form endpoint (/oauth/token,
// /oauth/introspect, /oauth/revoke; RFC 6749 §3.2, RFC 7662, RFC 7009).
type OAuthTokenRequest struct {
	GrantType string
	Form      url.Values // the form fields (never the URL query)
	// Client credentials, from HTTP Basic or the form (never both).
	ClientID, ClientSecret string
	// BasicAuth reports that the client sent HTTP Basic credentials.
	BasicAuth bool
	// Peer is the caller's address (for throttling).
	Peer string
}

// OAuthTokenResponse is the JSON body of a successful token response.
type OAuthTokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// OAuthError is an RFC 6749 §5.2 error response.
type OAuthError struct {
	Status      int    `json:"-"`
	RetryAfter  int64  `json:"-"` // seconds; sent as Retry-After when > 0
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	// Proof is set for a refused DPoP proof: its WWW-Authenticate and DPoP-Nonce go out too.
	Proof *dpop.Error `json:"-"`
}

func (e *OAuthError) Error() string { return e.Code + ": " + e.Description }

// GrantFunc handles one grant type. It returns an *OAuthError, or a connect
// error from the RPC handler it calls (translated by OAuthErrorFrom).
type GrantFunc func(ctx context.Context, req *OAuthTokenRequest) (*OAuthTokenResponse, error)

// OAuth serves the standard token endpoint: each grant turns the form into
// the same request an RPC would carry and calls the same handler code.
type OAuth struct {
	grants   map[string]GrantFunc
	maxBytes int64
	log      *slog.Logger
}

// NewOAuth returns the token endpoint with no grants yet.
func NewOAuth(maxBytes int64, log *slog.Logger) *OAuth {
	return &OAuth{grants: map[string]GrantFunc{}, maxBytes: maxBytes, log: log}
}

// Handle registers the handler of a grant type.
func (o *OAuth) Handle(grantType string, f GrantFunc) { o.grants[grantType] = f }

// GrantTypes lists the registered grant types (for the discovery document).
func (o *OAuth) GrantTypes() []string {
	var g []string
	for _, name := range []string{"authorization_code", "refresh_token", "password", "client_credentials"} {
		if _, ok := o.grants[name]; ok {
			g = append(g, name)
		}
	}
	return g
}

// ServeHTTP implements POST /oauth/token.
func (o *OAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, oerr := parseForm(w, r, o.maxBytes)
	if oerr == nil && req.GrantType == "" {
		oerr = &OAuthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "grant_type is required"}
	}
	if oerr == nil {
		grant, ok := o.grants[req.GrantType]
		if !ok {
			oerr = &OAuthError{Status: http.StatusBadRequest, Code: "unsupported_grant_type",
				Description: "grant_type must be one of " + strings.Join(o.GrantTypes(), ", ")}
		} else {
			resp, err := grant(r.Context(), req)
			if err == nil {
				writeOAuthJSON(w, http.StatusOK, resp)
				return
			}
			report(r.Context(), o.log, "/oauth/token "+req.GrantType, err) // logs what the client is not told
			oerr = OAuthErrorFrom(err)
		}
	}
	writeOAuthError(w, req, oerr)
}

// OAuthErrorFrom is the one table of RFC 6749 §5.2 errors: a handler's
// error, answered as the RPC would be (connectError), in RFC 6749's terms.
// Unauthenticated becomes invalid_grant: grants that fail client
// authentication return invalid_client themselves.
func OAuthErrorFrom(err error) *OAuthError {
	var oe *OAuthError
	if errors.As(err, &oe) {
		return oe
	}
	if de, ok := dpop.As(err); ok { // RFC 9449 §5, §8: 400 with invalid_dpop_proof or use_dpop_nonce
		return &OAuthError{Status: http.StatusBadRequest, Code: de.Code, Description: de.Description, Proof: de}
	}
	ce, _ := connectError(err)
	msg := ce.Message()
	if errors.Is(err, errRedirectMismatch) || errors.Is(err, errVerifierMismatch) { // RFC 6749 §5.2, RFC 7636 §4.6
		return &OAuthError{Status: http.StatusBadRequest, Code: "invalid_grant", Description: msg}
	}
	switch ce.Code() {
	case connect.CodeInvalidArgument:
		return &OAuthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: msg}
	case connect.CodeUnauthenticated:
		return &OAuthError{Status: http.StatusBadRequest, Code: "invalid_grant", Description: msg}
	case connect.CodePermissionDenied:
		return &OAuthError{Status: http.StatusBadRequest, Code: "unauthorized_client", Description: msg}
	case connect.CodeResourceExhausted:
		retry, _ := RetryAfter(ce)
		return &OAuthError{Status: http.StatusTooManyRequests, Code: "invalid_request", Description: msg, RetryAfter: retry}
	case connect.CodeUnavailable:
		return &OAuthError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: msg}
	default:
		return &OAuthError{Status: http.StatusInternalServerError, Code: "server_error", Description: errInternal.Error()}
	}
}

// clientError turns a failed client authentication (Clients.Check) into
// the form endpoints' answer: invalid_client, or the error as it is
// (throttled, unavailable).
func clientError(err error) error {
	if errors.Is(err, errBadClient) {
		return InvalidClient()
	}
	return err
}

// InvalidClient is the answer to every failed client authentication.
func InvalidClient() *OAuthError {
	return &OAuthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: errBadClient.Error()}
}

// writeOAuthError answers a form request with oerr; a client that tried
// HTTP Basic and failed is told which scheme to use (RFC 6749 §5.2).
func writeOAuthError(w http.ResponseWriter, req *OAuthTokenRequest, oerr *OAuthError) {
	if oerr.Code == "invalid_client" && req != nil && req.BasicAuth {
		w.Header().Set("WWW-Authenticate", `Basic realm="tokend"`)
	}
	writeOAuthJSON(w, oerr.Status, oerr)
}

func writeOAuthJSON(w http.ResponseWriter, status int, v any) {
	if oe, ok := v.(*OAuthError); ok && oe.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(oe.RetryAfter, 10))
	}
	if oe, ok := v.(*OAuthError); ok && oe.Proof != nil {
		oe.Proof.SetHeaders(w.Header())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
