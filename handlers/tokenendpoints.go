package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokend/tokend/authn"
	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/tokens"
)

// RevocationStore is what POST /oauth/revoke changes.
type RevocationStore interface {
	RefreshClient(ctx context.Context, token string) (string, error)
	RevokeRefresh(ctx context.Context, token string) error
	RevokeFamily(ctx context.Context, familyID string) error
	DeleteM2MTokens(ctx context.Context, owner string, ids []string) (blacklisted, deleted int64, err error)
}

// TokenEndpoints serves RFC 7662 introspection and RFC 7009 revocation for
// authenticated clients.
type TokenEndpoints struct {
	clients  *Clients
	verifier *tokens.Verifier
	revoked  func(context.Context, *tokens.Claims) (bool, error)
	store    RevocationStore
	maxBytes int64
	log      *slog.Logger
	now      func() time.Time
}

// NewTokenEndpoints returns the introspection and revocation endpoints.
// revoked is the bearer check's revocation hook (sessions, API tokens, M2M
// blacklists), so introspection answers exactly as tokend's own checks do.
func NewTokenEndpoints(clients *Clients, verifier *tokens.Verifier, revoked func(context.Context, *tokens.Claims) (bool, error),
	store RevocationStore, maxBytes int64, log *slog.Logger) *TokenEndpoints {
	return &TokenEndpoints{clients: clients, verifier: verifier, revoked: revoked, store: store, maxBytes: maxBytes, log: log, now: time.Now}
}

// form parses a POSTed form (parseForm) and authenticates the client
// (HTTP Basic or client_id/client_secret). It writes the error response
// itself.
func (e *TokenEndpoints) form(w http.ResponseWriter, r *http.Request) (url.Values, *config.Client, bool) {
	req, oerr := parseForm(w, r, e.maxBytes)
	var cl *config.Client
	if oerr == nil {
		var err error
		if cl, err = e.clients.Check(r.Context(), req.ClientID, req.ClientSecret, req.Peer); err != nil {
			oerr = OAuthErrorFrom(clientError(err))
		}
	}
	if oerr == nil && req.Form.Get("token") == "" {
		oerr = &OAuthError{Status: http.StatusBadRequest, Code: "invalid_request", Description: "token is required"}
	}
	if oerr != nil {
		writeOAuthError(w, req, oerr)
		return nil, nil, false
	}
	return req.Form, cl, true
}

// Introspect implements POST /oauth/introspect (RFC 7662). Any token that
// tokend's bearer check would refuse (bad signature, foreign, expired,
// revoked, blacklisted, anything it came from gone) is {"active": false};
// so is every token the calling client may not see (RFC 7662 §4): only
// tokens issued to it, or whose audience it serves (its id or one of its
// resource_audiences), are active to it.
func (e *TokenEndpoints) Introspect(w http.ResponseWriter, r *http.Request) {
	form, cl, ok := e.form(w, r)
	if !ok {
		return
	}
	c, err := e.verifier.Verify(form.Get("token"))
	switch {
	case err != nil:
	case c.ClientID != cl.ID && !cl.ServesAudience(c.Audience):
		err = errors.New("not the caller's to see")
	case c.ExpiresAt == nil || !c.ExpiresAt.After(e.now()):
		err = errors.New("expired") // the verifier's leeway is for clock skew, not for introspection
	case e.revoked != nil:
		var revoked bool
		revoked, err = e.revoked(r.Context(), c)
		if err != nil {
			e.fail(w, r, "introspection: revocation check", err)
			return
		}
		if revoked {
			err = errors.New("revoked")
		}
	}
	if err != nil {
		writeOAuthJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	out := map[string]any{"active": true, "iss": c.Issuer, "sub": c.Subject, "jti": c.ID,
		"token_type": "Bearer", "kind": c.Kind}
	if jkt := c.BoundKey(); jkt != "" { // RFC 9449 §6.2
		out["token_type"], out["cnf"] = "DPoP", map[string]string{"jkt": jkt}
	}
	if len(c.Audience) > 0 {
		out["aud"] = []string(c.Audience)
	}
	if c.ExpiresAt != nil {
		out["exp"] = c.ExpiresAt.Unix()
	}
	if c.IssuedAt != nil {
		out["iat"] = c.IssuedAt.Unix()
	}
	for k, v := range map[string]string{"client_id": c.ClientID, "scope": c.Scope, "owner": c.Owner, "name": c.Name} {
		if v != "" {
			out[k] = v
		}
	}
	writeOAuthJSON(w, http.StatusOK, out)
}

// Revoke implements POST /oauth/revoke (RFC 7009): a client revokes a token
// issued to it — an M2M access token (blacklisted), a refresh token or a
// session's access token (the session is revoked). Tokens that are unknown,
// invalid or another client's are answered 200 and left alone, as the RFC
// says.
func (e *TokenEndpoints) Revoke(w http.ResponseWriter, r *http.Request) {
	form, cl, ok := e.form(w, r)
	if !ok {
		return
	}
	client := cl.ID
	token := form.Get("token")
	ctx := r.Context()
	var err error
	if strings.Count(token, ".") == 2 {
		if c, verr := e.verifier.Verify(token); verr == nil && c.ClientID == client {
			switch {
			case c.Kind == tokens.KindClient && c.Owner != "":
				_, _, err = e.store.DeleteM2MTokens(ctx, c.Owner, []string{c.ID})
			case c.SessionID != "":
				err = e.store.RevokeFamily(ctx, c.SessionID)
			}
		}
	} else if owner, rerr := e.store.RefreshClient(ctx, token); rerr == nil && owner == client {
		err = e.store.RevokeRefresh(ctx, token)
	} else if rerr != nil && !errors.Is(rerr, redisstore.ErrNotFound) {
		err = rerr
	}
	if err != nil {
		e.fail(w, r, "revocation", err)
		return
	}
	e.log.InfoContext(ctx, "token revocation requested", "event", "token.revoked", "client_id", client)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// fail answers a store failure: temporarily_unavailable, whatever it was
// (the token may be fine; the client retries), with the details logged.
func (e *TokenEndpoints) fail(w http.ResponseWriter, r *http.Request, op string, err error) {
	e.log.WarnContext(r.Context(), op+" failed", "err", err)
	writeOAuthError(w, nil, OAuthErrorFrom(authn.ErrUnavailable()))
}
