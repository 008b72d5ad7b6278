package handlers

import (
	"context"
	"errors"
	"log/slog"

	"github.com/tokend/tokend/authn"
	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/dpop"
	"github.com/tokend/tokend/tokens"
)

// DPoP in the token calls (RFC 9449 §5). Every token-issuing call (auth.v1 Token and
// RefreshToken, ExchangeToken, GetAccessToken, M2M CreateToken and each grant of /oauth/token)
// calls bindProof once its caller is authenticated: with a valid proof, the access token it issues
// is bound to the proof's key (cnf.jkt, token_type DPoP). Refresh tokens are bound too where the
// refresh token is the only credential: public clients and first-party sign-ins (sessionKey). A
// client with dpop_bound_access_tokens gets nothing without a proof. A bound token is revoked by
// exactly what revokes its unbound twin (authz.Sources): binding adds a check, never a source.

// bindProof checks the request's DPoP proof and records it against replay: the thumbprint to bind
// to, "" without a proof. cl is the authenticated client (nil for a first-party sign-in).
func bindProof(ctx context.Context, log *slog.Logger, cl *config.Client) (string, error) {
	jkt, err := dpop.Bind(ctx)
	if err != nil {
		return "", dpopError(ctx, log, err)
	}
	if jkt == "" && cl != nil && cl.DPoPBoundAccessTokens {
		return "", dpop.ErrRequired().ConnectError()
	}
	return jkt, nil
}

// dpopError is a DPoP failure as a connect error: the refusal (unauthenticated, with the RFC 9449
// code and headers), or unavailable when the replay or nonce store failed.
func dpopError(ctx context.Context, log *slog.Logger, err error) error {
	if de, ok := dpop.As(err); ok {
		return de.ConnectError()
	}
	if errors.Is(err, context.Canceled) {
		return err // connectError's answer
	}
	log.WarnContext(ctx, "DPoP store unavailable", "err", err)
	return authn.ErrUnavailable()
}

// sessionKey is the key a new session's refresh tokens are bound to: the proof's, for a
// first-party sign-in (cl nil) or a public client, whose refresh token is otherwise a bearer
// credential; "" for a confidential client, whose refresh needs its secret (RFC 9449 §5).
func sessionKey(jkt string, cl *config.Client) string {
	if cl == nil || cl.IsPublic() {
		return jkt
	}
	return ""
}

// bind binds c to the key jkt ("" leaves it a bearer token).
func bind(c *tokens.Claims, jkt string) *tokens.Claims {
	if jkt != "" {
		c.Confirmation = &tokens.Confirmation{JKT: jkt}
	}
	return c
}

// tokenType is the token_type of an access token bound to jkt.
func tokenType(jkt string) string {
	if jkt != "" {
		return "DPoP"
	}
	return "Bearer"
}
