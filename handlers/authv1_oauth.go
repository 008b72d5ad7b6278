package handlers

import (
	"context"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	authv1 "github.com/tokend/tokend/gen/auth/v1"
)

// PasswordGrant is the password grant of /oauth/token (RFC 6749 §4.3).
// RFC 9700 §2.4 says the grant must not be used; tokend serves it because
// its contract asks for it, but only to confidential clients configured with
// grant type "password", which must authenticate.
func (h *AuthV1) PasswordGrant(clients *Clients) GrantFunc {
	return func(ctx context.Context, req *OAuthTokenRequest) (*OAuthTokenResponse, error) {
		cl, err := clients.Check(ctx, req.ClientID, req.ClientSecret, req.Peer)
		if err != nil {
			return nil, clientError(err)
		}
		if !cl.AllowsGrant("password") {
			return nil, &OAuthError{Status: http.StatusBadRequest, Code: "unauthorized_client",
				Description: "this client may not use the password grant"}
		}
		username, password := req.Form.Get("username"), req.Form.Get("password")
		if username == "" || password == "" {
			return nil, &OAuthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "username and password are required"}
		}
		if len(username) > maxUsernameLen || len(password) > maxPasswordLen {
			return nil, &OAuthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "username or password too long"}
		}
		scope, ok := SubsetScope(req.Form.Get("scope"), cl.Scopes)
		if !ok {
			return nil, &OAuthError{Status: http.StatusBadRequest, Code: "invalid_scope", Description: "scope outside the client's scopes"}
		}
		resp, err := h.Login(ctx, username, password, req.Peer, cl.ID, scope)
		if err != nil {
			return nil, err
		}
		return oauthResponse(resp, scope), nil
	}
}

// RefreshGrant is the refresh_token grant of /oauth/token (RFC 6749 §6),
// the same rotation as the RefreshToken RPC. A client that presents
// credentials must be the client the refresh token was issued to; a token
// presented by another client is treated as stolen and its family revoked.
func (h *AuthV1) RefreshGrant(clients *Clients) GrantFunc {
	return func(ctx context.Context, req *OAuthTokenRequest) (*OAuthTokenResponse, error) {
		authenticated := ""
		if req.ClientID != "" || req.ClientSecret != "" {
			cl, known := clients.Get(req.ClientID)
			switch {
			case known && cl.IsPublic() && req.ClientSecret == "":
				authenticated = cl.ID // public clients identify themselves only
			default:
				cl, err := clients.Check(ctx, req.ClientID, req.ClientSecret, req.Peer)
				if err != nil {
					return nil, clientError(err)
				}
				authenticated = cl.ID
			}
		}
		token := req.Form.Get("refresh_token")
		if token == "" {
			return nil, &OAuthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "refresh_token is required"}
		}
		resp, sess, err := h.refresh(ctx, token)
		if err != nil {
			return nil, err
		}
		if authenticated != "" && sess.ClientID != "" && sess.ClientID != authenticated {
			if err := h.sessions.RevokeRefresh(ctx, resp.RefreshToken); err != nil {
				return nil, storeError(ctx, h.log, "revoke refresh token", err)
			}
			h.log.WarnContext(ctx, "refresh token presented by another client; session revoked",
				"client_id", authenticated, "issued_to", sess.ClientID)
			return nil, connect.NewError(connect.CodeUnauthenticated, errBadRefreshToken)
		}
		return oauthResponse(resp, sess.Scope), nil
	}
}

func oauthResponse(r *authv1.TokenResponse, scope string) *OAuthTokenResponse {
	return &OAuthTokenResponse{
		AccessToken:  r.AccessToken,
		TokenType:    r.TokenType,
		ExpiresIn:    r.ExpiresIn,
		RefreshToken: r.RefreshToken,
		Scope:        scope,
	}
}

// SubsetScope checks that the space-separated requested scopes are all in
// allowed, and returns them normalised (deduplicated, single spaces).
func SubsetScope(requested string, allowed []string) (string, bool) {
	var out []string
	seen := map[string]bool{}
	for _, s := range strings.Fields(requested) {
		if seen[s] {
			continue
		}
		seen[s] = true
		ok := false
		for _, a := range allowed {
			ok = ok || a == s
		}
		if !ok {
			return "", false
		}
		out = append(out, s)
	}
	return strings.Join(out, " "), true
}
