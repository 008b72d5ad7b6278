package handlers

import (
	"context"
	"net/http"
	"strings"

	"github.com/tokend/tokend/config"
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
		if !cl.AllowsGrant(config.GrantPassword) {
			return nil, errNoPasswordGrant
		}
		username, password := req.Form.Get("username"), req.Form.Get("password")
		if err := checkCredentials(username, password); err != nil {
			return nil, err
		}
		scope, ok := SubsetScope(req.Form.Get("scope"), cl.Scopes)
		if !ok {
			return nil, &OAuthError{Status: http.StatusBadRequest, Code: "invalid_scope", Description: "scope outside the client's scopes"}
		}
		resp, err := h.Login(ctx, username, password, req.Peer, cl.ID, scope)
		if err != nil {
			return nil, err
		}
		out := oauthResponse(resp, scope)
		if !cl.AllowsGrant(config.GrantRefreshToken) { // the session exists (sid), but only its access token is handed out
			out.RefreshToken = ""
		}
		return out, nil
	}
}

// RefreshGrant is the refresh_token grant of /oauth/token (RFC 6749 §6),
// the same rotation as the RefreshToken RPC: a confidential client
// authenticates, a public client may name itself, and a token presented by
// a client other than the one it was issued to is treated as stolen and its
// family revoked.
func (h *AuthV1) RefreshGrant() GrantFunc {
	return func(ctx context.Context, req *OAuthTokenRequest) (*OAuthTokenResponse, error) {
		by, err := h.presenter(ctx, req.ClientID, req.ClientSecret)
		if err != nil {
			return nil, clientError(err) // invalid_client, or throttled / unavailable
		}
		resp, sess, err := h.refresh(ctx, req.Form.Get("refresh_token"), by)
		if err != nil {
			return nil, clientError(err)
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
