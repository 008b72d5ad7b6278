package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/clientaddr"
	"github.com/tokend/tokend/dpop"
)

// OAuthTokenRequest is a parsed POST /oauth/token request (RFC 6749 §3.2).
type OAuthTokenRequest struct {
	GrantType string
	Form      url.Values // the form fields (never the URL query)
	// Client credentials, from HTTP Basic or the form (never both).
	ClientID, ClientSecret string
	// BasicAuth reports that the client authenticated with HTTP Basic.
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
	req, oerr := o.parse(w, r)
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
			oerr = OAuthErrorFrom(err)
			if oerr.Status >= 500 {
				o.log.WarnContext(r.Context(), "token endpoint", "grant_type", req.GrantType, "err", err)
			}
		}
	}
	if oerr.Code == "invalid_client" && req != nil && req.BasicAuth {
		w.Header().Set("WWW-Authenticate", `Basic realm="tokend"`)
	}
	writeOAuthJSON(w, oerr.Status, oerr)
}

func (o *OAuth) parse(w http.ResponseWriter, r *http.Request) (*OAuthTokenRequest, *OAuthError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return nil, &OAuthError{Status: http.StatusMethodNotAllowed, Code: "invalid_request", Description: "use POST"}
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/x-www-form-urlencoded" {
		return nil, &OAuthError{Status: http.StatusUnsupportedMediaType, Code: "invalid_request",
			Description: "Content-Type must be application/x-www-form-urlencoded"}
	}
	if oerr := readForm(w, r, o.maxBytes); oerr != nil {
		return nil, oerr
	}
	form := r.PostForm
	// RFC 6749 §3.2: parameters must not be repeated.
	for k, v := range form {
		if len(v) > 1 && k != "audience" && k != "scope" {
			return nil, &OAuthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: k + " is repeated"}
		}
	}
	req := &OAuthTokenRequest{GrantType: form.Get("grant_type"), Form: form, Peer: clientaddr.String(r.Context(), r.RemoteAddr)}
	if req.GrantType == "" {
		return req, &OAuthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "grant_type is required"}
	}
	if id, secret, ok := r.BasicAuth(); ok {
		if form.Has("client_secret") {
			return req, &OAuthError{Status: http.StatusBadRequest, Code: "invalid_request",
				Description: "use one client authentication method, not two"}
		}
		// RFC 6749 §2.3.1: both are form-urlencoded inside Basic.
		var err1, err2 error
		req.ClientID, err1 = url.QueryUnescape(id)
		req.ClientSecret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return req, &OAuthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "malformed Basic credentials"}
		}
		if fid := form.Get("client_id"); fid != "" && fid != req.ClientID {
			return req, &OAuthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "client_id does not match the authenticated client"}
		}
		req.BasicAuth = true
	} else {
		req.ClientID, req.ClientSecret = form.Get("client_id"), form.Get("client_secret")
	}
	return req, nil
}

// readForm parses r's form body (at most maxBytes). Compressed bodies are
// refused: no OAuth client compresses a form, and inflating one costs CPU
// for nothing.
func readForm(w http.ResponseWriter, r *http.Request, maxBytes int64) *OAuthError {
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return &OAuthError{Status: http.StatusUnsupportedMediaType, Code: "invalid_request", Description: "Content-Encoding is not supported"}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBytes)
	err := r.ParseForm()
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooBig):
		return &OAuthError{Status: http.StatusRequestEntityTooLarge, Code: "invalid_request", Description: "request body too large"}
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The connection is closed after the answer: its body is unread.
		return &OAuthError{Status: http.StatusRequestTimeout, Code: "invalid_request", Description: "request body not received in time"}
	}
	return &OAuthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "malformed form body"}
}

// OAuthErrorFrom translates a handler's connect error into an RFC 6749
// error. Unauthenticated becomes invalid_grant: grants that fail client
// authentication return invalid_client themselves.
func OAuthErrorFrom(err error) *OAuthError {
	var oe *OAuthError
	if errors.As(err, &oe) {
		return oe
	}
	if de, ok := dpop.As(err); ok { // RFC 9449 §5, §8: 400 with invalid_dpop_proof or use_dpop_nonce
		return &OAuthError{Status: http.StatusBadRequest, Code: de.Code, Description: de.Description, Proof: de}
	}
	var ce *connect.Error
	msg := "internal error"
	if errors.As(err, &ce) {
		msg = ce.Message()
	}
	switch connect.CodeOf(err) {
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
		return &OAuthError{Status: http.StatusInternalServerError, Code: "server_error", Description: "internal error"}
	}
}

// clientError turns a failed client authentication (Clients.Check) into
// the form endpoints' answer: invalid_client, or the error as it is
// (throttled, unavailable).
func clientError(err error) error {
	if connect.CodeOf(err) == connect.CodeUnauthenticated {
		return InvalidClient()
	}
	return err
}

// InvalidClient is the answer to every failed client authentication.
func InvalidClient() *OAuthError {
	return &OAuthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: errBadClient.Error()}
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
