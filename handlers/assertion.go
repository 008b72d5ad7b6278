package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/authz"
	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/tokens"
)

// AssertionType is the only client_assertion_type tokend accepts (RFC 7523).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Assertions verifies client assertions: JWTs from an issuer a client
// trusts. tokend's own tokens are verified locally (and must not be
// revoked); other issuers' by the keys they publish (tokens.ForeignKeys).
// Assertions holds the policy: which issuers a client trusts, which
// audiences it accepts, whom an assertion speaks for, and each foreign
// assertion accepted once.
type Assertions struct {
	own     *tokens.Verifier
	issuer  string
	revoked func(context.Context, *tokens.Claims) (bool, error)
	used    AssertionStore
	foreign *tokens.ForeignKeys
	now     func() time.Time
}

// AssertionStore remembers the foreign assertions accepted, so that each is
// accepted once (RFC 7523 §3: jti).
type AssertionStore interface {
	// UseAssertionID records (issuer, jti) until until: fresh is false
	// when it was recorded already.
	UseAssertionID(ctx context.Context, issuer, jti string, until time.Time) (fresh bool, err error)
}

// NewAssertions returns a verifier of client assertions. own verifies
// tokend's tokens (issuer issuer); revoked is tokend's revocation check for
// them; used remembers foreign assertions' ids. client fetches foreign
// issuers' keys (nil: tokens.NewForeignKeys's default).
func NewAssertions(own *tokens.Verifier, issuer string, revoked func(context.Context, *tokens.Claims) (bool, error),
	used AssertionStore, client *http.Client) *Assertions {
	return &Assertions{own: own, issuer: strings.TrimSuffix(issuer, "/"), revoked: revoked, used: used,
		foreign: tokens.NewForeignKeys(client), now: time.Now}
}

// errAssertion is wrapped by every refusal; callers answer all of them alike.
var errAssertion = errors.New("invalid client assertion")

// assertionLeeway is the clock skew allowed on a foreign assertion's exp.
const assertionLeeway = 30 * time.Second

// Asserted is who a verified client assertion speaks for.
type Asserted struct {
	authz.Principal
	// Claims are the assertion's claims (the M2M token's original_token_claims).
	Claims map[string]any
	// Issuer is the assertion's issuer (no trailing slash).
	Issuer string
	// SessionID and APITokenID name the session or API token of one of
	// tokend's own tokens, on which the M2M tokens it buys depend.
	SessionID, APITokenID string
}

// Verify checks a client assertion for client cl (API.md section 4; RFC
// 7523 §3): signed by an issuer the client trusts, unexpired, its aud naming
// tokend (its issuer or token endpoint) or one of the client's
// assertion_audiences, and allowed by the authorization table. tokend's own
// tokens must not be revoked (they speak for their user: a first-party
// session or an API token; a token delegated to a client or an M2M token
// never does); a foreign assertion must name its owner (the client's
// owner_claim), which is qualified by its issuer, and is accepted once per
// jti. A store failure is returned as is (unavailable); every refusal wraps
// errAssertion.
func (a *Assertions) Verify(ctx context.Context, assertion string, cl *config.Client) (*Asserted, error) {
	if len(assertion) > 8192 {
		return nil, fmt.Errorf("%w: too long", errAssertion)
	}
	unverified := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, unverified); err != nil {
		return nil, fmt.Errorf("%w: %w", errAssertion, err)
	}
	iss, _ := unverified["iss"].(string)
	if iss == "" || !trustedIssuer(cl.AssertionIssuers, iss) {
		return nil, fmt.Errorf("%w: issuer %q not trusted by this client", errAssertion, iss)
	}
	var as *Asserted
	var err error
	if strings.TrimSuffix(iss, "/") == a.issuer {
		as, err = a.verifyOwn(ctx, assertion, unverified)
	} else {
		as, err = a.verifyForeign(ctx, assertion, iss, cl)
	}
	if err != nil {
		return nil, err
	}
	as.Issuer = strings.TrimSuffix(iss, "/")
	if err := a.checkAudience(as.Claims, cl.AssertionAudiences); err != nil {
		return nil, err
	}
	if err := authz.Authorize(authz.ClientAssertion, as.Principal, a.issuer); err != nil {
		return nil, fmt.Errorf("%w: %w", errAssertion, err)
	}
	if as.Kind == authz.Foreign {
		if err := a.useOnce(ctx, iss, as.Claims); err != nil {
			return nil, err
		}
	}
	return as, nil
}

// verifyOwn verifies one of tokend's own access tokens used as an assertion.
func (a *Assertions) verifyOwn(ctx context.Context, assertion string, claims map[string]any) (*Asserted, error) {
	c, err := a.own.Verify(assertion)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errAssertion, err)
	}
	if a.revoked != nil {
		revoked, err := a.revoked(ctx, c)
		if err != nil {
			return nil, err
		}
		if revoked {
			return nil, fmt.Errorf("%w: revoked", errAssertion)
		}
	}
	// The signature is verified: claims are the token's.
	return &Asserted{Principal: authz.FromClaims(c), Claims: claims, SessionID: c.SessionID, APITokenID: c.APITokenID}, nil
}

// verifyForeign verifies a trusted foreign issuer's assertion by its JWKS.
func (a *Assertions) verifyForeign(ctx context.Context, assertion, iss string, cl *config.Client) (*Asserted, error) {
	claims, err := a.foreign.Verify(ctx, assertion, iss, assertionLeeway)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errAssertion, err)
	}
	owner, _ := claims[cl.OwnerClaimName()].(string)
	if owner == "" {
		return nil, fmt.Errorf("%w: no owner claim %q", errAssertion, cl.OwnerClaimName())
	}
	return &Asserted{Principal: authz.Principal{Kind: authz.Foreign, Owner: authz.ForeignOwner(iss, owner), ClientID: cl.ID},
		Claims: claims}, nil
}

// checkAudience requires the assertion's aud to name tokend — its issuer or
// token endpoint — or one of the client's extra accepted values.
func (a *Assertions) checkAudience(claims map[string]any, extra []string) error {
	aud, err := jwt.MapClaims(claims).GetAudience()
	if err != nil {
		return fmt.Errorf("%w: aud: %w", errAssertion, err)
	}
	accepted := append([]string{a.issuer, a.issuer + "/oauth/token"}, extra...)
	for _, got := range aud {
		if slices.Contains(accepted, strings.TrimSuffix(got, "/")) || slices.Contains(accepted, got) {
			return nil
		}
	}
	return fmt.Errorf("%w: aud %q names none of %q", errAssertion, []string(aud), accepted)
}

// maxAssertionLife bounds how far in the future a foreign assertion may
// expire (RFC 7523 §3 allows refusing "unreasonably far" ones): its jti is
// remembered that long.
const maxAssertionLife = 24 * time.Hour

// useOnce accepts a foreign assertion's jti once until it expires (plus the
// leeway), across every replica.
func (a *Assertions) useOnce(ctx context.Context, iss string, claims map[string]any) error {
	jti, _ := claims["jti"].(string)
	if jti == "" || len(jti) > 256 {
		return fmt.Errorf("%w: jti missing or longer than 256 bytes", errAssertion)
	}
	exp, err := jwt.MapClaims(claims).GetExpirationTime()
	if err != nil || exp == nil {
		return fmt.Errorf("%w: exp", errAssertion)
	}
	if exp.Sub(a.now()) > maxAssertionLife {
		return fmt.Errorf("%w: exp more than %s ahead", errAssertion, maxAssertionLife)
	}
	fresh, err := a.used.UseAssertionID(ctx, strings.TrimSuffix(iss, "/"), jti, exp.Add(assertionLeeway))
	if err != nil {
		return err
	}
	if !fresh {
		return fmt.Errorf("%w: jti %q replayed", errAssertion, jti)
	}
	return nil
}

func trustedIssuer(trusted []string, iss string) bool {
	for _, t := range trusted {
		if strings.TrimSuffix(t, "/") == strings.TrimSuffix(iss, "/") {
			return true
		}
	}
	return false
}
