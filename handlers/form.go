package handlers

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/tokend/tokend/clientaddr"
)

// parseForm parses a POST to one of the form endpoints: token (RFC 6749
// §3.2), introspection (RFC 7662 §2.1) and revocation (RFC 7009 §2.1). It
// checks the method and media type, reads the body (at most maxBytes:
// 413 beyond), refuses repeated parameters (RFC 6749 §3.2; audience and
// scope may repeat) and takes the client's credentials from HTTP Basic or
// the form, never both (RFC 6749 §2.3). Inside Basic, the id and secret
// are form-urlencoded (RFC 6749 §2.3.1): a malformed escape is
// invalid_request, as any other malformed request.
//
// The request is returned with the error once its client fields are
// known, so that a refusal can answer a Basic client as RFC 6749 §5.2
// says (writeOAuthError).
func parseForm(w http.ResponseWriter, r *http.Request, maxBytes int64) (*OAuthTokenRequest, *OAuthError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return nil, &OAuthError{Status: http.StatusMethodNotAllowed, Code: "invalid_request", Description: "use POST"}
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/x-www-form-urlencoded" {
		return nil, &OAuthError{Status: http.StatusUnsupportedMediaType, Code: "invalid_request",
			Description: "Content-Type must be application/x-www-form-urlencoded"}
	}
	if oerr := readForm(w, r, maxBytes); oerr != nil {
		return nil, oerr
	}
	form := r.PostForm
	for k, v := range form {
		if len(v) > 1 && k != "audience" && k != "scope" {
			return nil, &OAuthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: k + " is repeated"}
		}
	}
	req := &OAuthTokenRequest{GrantType: form.Get("grant_type"), Form: form, Peer: clientaddr.String(r.Context(), r.RemoteAddr)}
	id, secret, basic := r.BasicAuth()
	if !basic {
		req.ClientID, req.ClientSecret = form.Get("client_id"), form.Get("client_secret")
		return req, nil
	}
	if form.Has("client_secret") {
		return req, &OAuthError{Status: http.StatusBadRequest, Code: "invalid_request",
			Description: "use one client authentication method, not two"}
	}
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
