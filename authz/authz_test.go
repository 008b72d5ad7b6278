package authz_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/authz"
	"github.com/tokend/tokend/tokens"
)

const issuer = "https://tokend.example"

func claims(kind string, edit func(c *tokens.Claims)) *tokens.Claims {
	c := &tokens.Claims{Kind: kind}
	c.Subject, c.ID = "7", "jti-1"
	c.Audience = jwt.ClaimStrings{issuer}
	edit(c)
	return c
}

func TestFromClaims(t *testing.T) {
	for name, tc := range map[string]struct {
		c         *tokens.Claims
		kind      authz.Kind
		owner, id string
	}{
		"first-party":            {claims(tokens.KindUser, func(c *tokens.Claims) { c.ClientID = "tokend" }), authz.FirstParty, "7", "tokend"},
		"first-party, no client": {claims(tokens.KindUser, func(*tokens.Claims) {}), authz.FirstParty, "7", "tokend"},
		"delegated":              {claims(tokens.KindUser, func(c *tokens.Claims) { c.ClientID = "1001" }), authz.Delegated, "7", "1001"},
		"API token":              {claims(tokens.KindAPIToken, func(c *tokens.Claims) { c.ClientID = "tokend" }), authz.APIToken, "7", "tokend"},
		"M2M": {claims(tokens.KindClient, func(c *tokens.Claims) { c.Subject, c.ClientID, c.Owner = "svc", "svc", "svc-owner" }),
			authz.M2MClient, "svc-owner", "svc"},
		"M2M without owner": {claims(tokens.KindClient, func(c *tokens.Claims) { c.Subject, c.ClientID = "svc", "svc" }), 0, "", "svc"},
		"unknown kind":      {claims("admin", func(*tokens.Claims) {}), 0, "", ""},
	} {
		p := authz.FromClaims(tc.c)
		if p.Kind != tc.kind || p.Owner != tc.owner || p.ClientID != tc.id {
			t.Errorf("%s: %+v, want kind %v owner %q client %q", name, p, tc.kind, tc.owner, tc.id)
		}
	}
}

func TestAuthorize(t *testing.T) {
	first := authz.Principal{Kind: authz.FirstParty, Owner: "7", Audience: []string{issuer + "/"}}
	if err := authz.Authorize(authz.CreateAPIToken, first, issuer); err != nil {
		t.Errorf("first-party CreateToken: %v", err)
	}
	for name, tc := range map[string]struct {
		proc string
		p    authz.Principal
	}{
		"delegated":         {authz.CreateAPIToken, authz.Principal{Kind: authz.Delegated, Audience: []string{issuer}}},
		"other audience":    {authz.GetM2MTokens, authz.Principal{Kind: authz.M2MClient, Audience: []string{"api"}}},
		"no kind":           {authz.GetM2MTokens, authz.Principal{Audience: []string{issuer}}},
		"unknown procedure": {"/x.Y/Z", first},
	} {
		err := authz.Authorize(tc.proc, tc.p, issuer)
		var denied *authz.DeniedError
		if !errors.Is(err, authz.ErrDenied) || !errors.As(err, &denied) || denied.Reason == "" {
			t.Errorf("%s: %v, want a DeniedError", name, err)
		}
	}
	// A foreign subject's audience was checked where its assertion was.
	if err := authz.Authorize(authz.ClientAssertion, authz.Principal{Kind: authz.Foreign}, issuer); err != nil {
		t.Errorf("foreign assertion: %v", err)
	}
}

func TestSources(t *testing.T) {
	src := func(k authz.SourceKind, id, owner string) authz.Source {
		return authz.Source{Kind: k, ID: id, Owner: owner}
	}
	malformed := []authz.Source{{Kind: authz.Malformed}}
	for name, tc := range map[string]struct {
		c    *tokens.Claims
		want []authz.Source
	}{
		"first-party session": {claims(tokens.KindUser, func(c *tokens.Claims) { c.SessionID, c.ClientID = "fam", "tokend" }),
			[]authz.Source{src(authz.Session, "fam", ""), src(authz.User, "7", "")}},
		"delegated session": {claims(tokens.KindUser, func(c *tokens.Claims) { c.SessionID, c.ClientID = "fam", "1001" }),
			[]authz.Source{src(authz.Session, "fam", ""), src(authz.User, "7", ""), src(authz.Client, "1001", "")}},
		"session token without sid": {claims(tokens.KindUser, func(*tokens.Claims) {}), malformed},
		"API token": {claims(tokens.KindAPIToken, func(c *tokens.Claims) { c.APITokenID = "api_token_x" }),
			[]authz.Source{src(authz.APITokenRecord, "api_token_x", ""), src(authz.User, "7", "")}},
		"API token without id": {claims(tokens.KindAPIToken, func(*tokens.Claims) {}), malformed},
		"M2M by secret": {claims(tokens.KindClient, func(c *tokens.Claims) { c.ClientID, c.Owner = "svc", "svc-owner" }),
			[]authz.Source{src(authz.M2MRecord, "jti-1", "svc-owner"), src(authz.Client, "svc", "")}},
		"M2M from a session": {claims(tokens.KindClient, func(c *tokens.Claims) { c.ClientID, c.Owner, c.SessionID = "self", "7", "fam" }),
			[]authz.Source{src(authz.Session, "fam", ""), src(authz.M2MRecord, "jti-1", "7"), src(authz.Client, "self", ""), src(authz.User, "7", "")}},
		"M2M from an API token": {claims(tokens.KindClient, func(c *tokens.Claims) { c.ClientID, c.Owner, c.APITokenID = "self", "7", "api_token_x" }),
			[]authz.Source{src(authz.APITokenRecord, "api_token_x", ""), src(authz.M2MRecord, "jti-1", "7"), src(authz.Client, "self", ""), src(authz.User, "7", "")}},
		"M2M without owner": {claims(tokens.KindClient, func(c *tokens.Claims) { c.ClientID = "svc" }), malformed},
		"unknown kind":      {claims("admin", func(*tokens.Claims) {}), malformed},
	} {
		if got := authz.Sources(tc.c); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}

func TestForeignOwner(t *testing.T) {
	if got := authz.ForeignOwner("https://idp.example/", "1"); got != "https://idp.example#1" {
		t.Errorf("ForeignOwner = %q", got)
	}
}
