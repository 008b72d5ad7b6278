// Package authz is tokend's authorization model, in one place: who a credential speaks for (a
// [Principal] of one [Kind]), which procedures each kind may call ([Table]), and what every token tokend
// issues depends on, so that revoking or removing any of it refuses the token ([Dependencies]).
//
// The package holds rules only: it speaks neither Redis nor HTTP. The bearer middleware (authn) applies
// the table before a protected handler runs; the server turns dependencies into revocation checks.
package authz

import (
	"errors"
	"slices"
	"strings"

	"github.com/tokend/tokend/tokens"
)

// Kind is the kind of principal a credential speaks for.
type Kind uint8

// The kinds of principal. A token's claims name exactly one (see [FromClaims]).
const (
	// FirstParty is a user's own sign-in session (auth.v1 Token): the user in person, through tokend's
	// own front end. Its tokens carry client_id [FirstPartyClientID].
	FirstParty Kind = iota + 1
	// Delegated is a user's token issued to a client (authorization code or password grant): the
	// client acts for the user within its scopes, and may not manage the user's credentials.
	Delegated
	// APIToken is a user acting through an API token (a script the user set up).
	APIToken
	// M2MClient is an M2M client's token, speaking for the token's owner.
	M2MClient
	// Foreign is a subject asserted by a foreign issuer a client trusts (client assertions only); its
	// owner is always qualified by the issuer ([ForeignOwner]).
	Foreign
)

// Kinds lists every kind, in order (for tests and documentation that walk the table).
var Kinds = []Kind{FirstParty, Delegated, APIToken, M2MClient, Foreign}

func (k Kind) String() string {
	switch k {
	case FirstParty:
		return "first-party session"
	case Delegated:
		return "token delegated to a client"
	case APIToken:
		return "API token"
	case M2MClient:
		return "M2M client"
	case Foreign:
		return "foreign subject"
	}
	return "unknown"
}

// FirstPartyClientID is the client_id of the tokens tokend issues for itself: first-party sessions and
// access tokens bought with an API token (RFC 9068 §2.2 wants a client_id on every access token).
// No configured client may use it.
const FirstPartyClientID = "tokend"

// Principal is who a verified credential speaks for.
type Principal struct {
	Kind Kind
	// Owner is whose credentials the principal acts on: the user id for users (any kind), the token's
	// owner for M2M tokens, the issuer-qualified subject for foreign subjects.
	Owner string
	// ClientID is the client the credential was issued to (FirstPartyClientID for tokend's own).
	ClientID string
	// Audience is the token's aud.
	Audience []string
	// Scope is the token's space-separated scope.
	Scope string
}

// FromClaims returns the principal of one of tokend's own verified access tokens. A token of an
// unknown kind, or an M2M token without an owner, has Kind 0, which the table allows nothing.
func FromClaims(c *tokens.Claims) Principal {
	p := Principal{ClientID: c.ClientID, Audience: c.Audience, Scope: c.Scope}
	switch c.Kind {
	case tokens.KindUser:
		p.Owner = c.Subject
		p.Kind = Delegated
		if c.ClientID == FirstPartyClientID || c.ClientID == "" { // "": tokens minted before client_id was always set
			p.Kind, p.ClientID = FirstParty, FirstPartyClientID
		}
	case tokens.KindAPIToken:
		p.Kind, p.Owner = APIToken, c.Subject
	case tokens.KindClient:
		if c.Owner != "" {
			p.Kind, p.Owner = M2MClient, c.Owner
		}
	}
	return p
}

// ForeignOwner is the owner of M2M tokens obtained with a foreign issuer's assertion: the issuer and
// the subject it asserts, so that it never equals a tokend user id (decimal), a configured owner (which
// may not contain "://") or another issuer's subject.
func ForeignOwner(issuer, subject string) string {
	return strings.TrimSuffix(issuer, "/") + "#" + subject
}

// Procedures the table rules. The RPC names are the Connect procedure paths; ClientAssertion is the use
// of a principal's token as the client_assertion of M2M CreateToken (and of the client_credentials grant).
const (
	CreateAPIToken            = "/priv.tokenservice.v1alpha1.TokenService/CreateToken"
	ListAPITokens             = "/priv.tokenservice.v1alpha1.TokenService/ListTokens"
	DeleteAPIToken            = "/priv.tokenservice.v1alpha1.TokenService/DeleteToken"
	GenerateAuthorizationCode = "/auth.AuthService/GenerateAuthorizationCode"
	GetM2MTokens              = "/m2moauthserver.pb.M2MOAuthService/GetTokens"
	DeleteM2MTokens           = "/m2moauthserver.pb.M2MOAuthService/DeleteTokens"
	ClientAssertion           = "client_assertion"
)

// Rule says which kinds may call one procedure. Every rule also requires the credential's audience to
// name tokend itself (its issuer): a token minted for a resource server never manages anything here.
type Rule struct {
	Allowed []Kind
	// Why is the refusal message for every other kind.
	Why string
}

// Table is the whole authorization table: every procedure that needs a caller, and who may call it.
// Managing credentials — API tokens, authorization codes, M2M tokens — is for the user in person
// (a first-party session). A user's API token acts for the user on M2M tokens (listing, revoking, and
// minting them by assertion: the scripting use of API tokens), but never mints API tokens or codes. An
// M2M token whose audience names tokend manages its owner's M2M tokens. A token delegated to a client
// manages nothing: a third party holding it cannot act as the user.
var Table = map[string]Rule{
	CreateAPIToken:            {Allowed: []Kind{FirstParty}, Why: "only the user's own sign-in session may manage API tokens"},
	ListAPITokens:             {Allowed: []Kind{FirstParty}, Why: "only the user's own sign-in session may manage API tokens"},
	DeleteAPIToken:            {Allowed: []Kind{FirstParty}, Why: "only the user's own sign-in session may manage API tokens"},
	GenerateAuthorizationCode: {Allowed: []Kind{FirstParty}, Why: "only the user's own sign-in session may issue authorization codes"},
	GetM2MTokens:              {Allowed: []Kind{FirstParty, APIToken, M2MClient}, Why: "this token may not manage M2M tokens"},
	DeleteM2MTokens:           {Allowed: []Kind{FirstParty, APIToken, M2MClient}, Why: "this token may not manage M2M tokens"},
	ClientAssertion:           {Allowed: []Kind{FirstParty, APIToken, Foreign}, Why: "this token may not be used as a client assertion"},
}

// ErrDenied is what every refusal of Authorize is (errors.Is).
var ErrDenied = errors.New("permission denied")

// DeniedError is a refusal of Authorize; its text may be shown to the caller.
type DeniedError struct{ Reason string }

func (e *DeniedError) Error() string { return e.Reason }

// Is makes every DeniedError match ErrDenied.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// Authorize reports whether p may call procedure, given tokend's issuer: nil, or a *DeniedError.
// Unknown procedures are denied.
func Authorize(procedure string, p Principal, issuer string) error {
	r, ok := Table[procedure]
	switch {
	case !ok:
		return &DeniedError{"unknown procedure"}
	case !slices.Contains(r.Allowed, p.Kind):
		return &DeniedError{r.Why}
	case p.Kind != Foreign && !namesIssuer(p.Audience, issuer): // a foreign assertion's aud is checked where it is verified
		return &DeniedError{"the token's audience does not name this server"}
	}
	return nil
}

// namesIssuer reports whether aud names tokend's issuer (a trailing slash aside).
func namesIssuer(aud []string, issuer string) bool {
	issuer = strings.TrimSuffix(issuer, "/")
	for _, a := range aud {
		if strings.TrimSuffix(a, "/") == issuer {
			return true
		}
	}
	return false
}
