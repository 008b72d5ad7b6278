package authz

import "github.com/tokend/tokend/tokens"

// Source is one thing a token came from and still depends on: when it is revoked, expires or is gone,
// tokend's bearer check and introspection refuse the token.
type Source struct {
	Kind  SourceKind
	ID    string // the session (refresh-token family) id, API token id, M2M token id, user id or client id
	Owner string // M2MRecord only: the token's owner, which names its record
}

// SourceKind is what a Source is.
type SourceKind uint8

// The kinds of source, and what revokes each.
const (
	// Session is a sign-in's refresh-token family: revoked by logout, refresh-token reuse or a replayed
	// authorization code; gone when it expires (refresh_ttl, at most tokens.session_max_lifetime).
	Session SourceKind = iota + 1
	// APITokenRecord is the API token an access token was bought with: deleted, or expired.
	APITokenRecord
	// M2MRecord is an M2M token's own record: blacklisted (DeleteTokens, /oauth/revoke); a record that
	// is missing is refused too, so that state lost in Redis never makes a revoked token good again.
	M2MRecord
	// User is a configured user: removed from the configuration.
	User
	// Client is a configured client: removed from the configuration.
	Client
	// AssertionTrust is a client's trust in an assertion issuer (ID; Owner:
	// the client): withdrawn when the issuer leaves the client's
	// assertion_issuers.
	AssertionTrust
	// Malformed is a token that lacks what its kind must record (a session token without sid, say):
	// always refused.
	Malformed
)

// Sources returns everything the token with claims c depends on, in one place:
//
//   - a user's session token: its session, its user, and its client unless first-party;
//   - an access token bought with an API token: the API token and its user;
//   - an M2M token: its record and its client; when it was bought with a client assertion, the
//     client's trust in the assertion's issuer; and when that assertion was one of tokend's own
//     tokens, that token's session or API token and its user (an M2M token never outlives the
//     sign-in or API token it came from).
//
// Every source must be live for the token to pass; of a foreign assertion, tokend sees only whether
// the client still trusts its issuer (the issuer's own revocations are not visible to tokend).
func Sources(c *tokens.Claims) []Source {
	var out []Source
	bad := []Source{{Kind: Malformed}}
	if c.SessionID != "" {
		out = append(out, Source{Kind: Session, ID: c.SessionID})
	}
	if c.APITokenID != "" {
		out = append(out, Source{Kind: APITokenRecord, ID: c.APITokenID})
	}
	switch c.Kind {
	case tokens.KindUser:
		if c.SessionID == "" {
			return bad
		}
		out = append(out, Source{Kind: User, ID: c.Subject})
		if c.ClientID != "" && c.ClientID != FirstPartyClientID {
			out = append(out, Source{Kind: Client, ID: c.ClientID})
		}
	case tokens.KindAPIToken:
		if c.APITokenID == "" {
			return bad
		}
		out = append(out, Source{Kind: User, ID: c.Subject})
	case tokens.KindClient:
		if c.Owner == "" || c.ID == "" || c.ClientID == "" {
			return bad
		}
		out = append(out, Source{Kind: M2MRecord, ID: c.ID, Owner: c.Owner}, Source{Kind: Client, ID: c.ClientID})
		if c.AssertionIssuer != "" {
			out = append(out, Source{Kind: AssertionTrust, ID: c.AssertionIssuer, Owner: c.ClientID})
		}
		if c.SessionID != "" || c.APITokenID != "" { // minted with a user's token: the owner is that user
			out = append(out, Source{Kind: User, ID: c.Owner})
		}
	default:
		return bad
	}
	return out
}
