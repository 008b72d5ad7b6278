package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	authpb "github.com/tokend/tokend/gen/auth"
)

// TestOAuth2LibraryCodeFlow drives /oauth/token with golang.org/x/oauth2:
// the library makes the PKCE verifier and challenge, exchanges the code,
// and refreshes through a TokenSource.
func TestOAuth2LibraryCodeFlow(t *testing.T) {
	ts := startCodeServer(t, nil)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, http.DefaultClient)
	alice := codeClient(ts, accessToken(t, ts, "alice"))

	// issue plays the login front end: it takes the library's authorization
	// request (as a browser would carry it) and issues a code for it.
	issue := func(conf *oauth2.Config, verifier string) string {
		t.Helper()
		u, err := url.Parse(conf.AuthCodeURL("state", oauth2.S256ChallengeOption(verifier)))
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		gen, err := alice.GenerateAuthorizationCode(ctx, connect.NewRequest(&authpb.GenerateAuthorizationCodeRequest{
			UserId: 7, ClientId: 1001, RedirectUri: q.Get("redirect_uri"), Scope: q.Get("scope"),
			CodeChallenge: q.Get("code_challenge"), CodeChallengeMethod: q.Get("code_challenge_method"),
		}))
		if err != nil {
			t.Fatal(err)
		}
		return gen.Msg.Code
	}

	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		conf := &oauth2.Config{
			ClientID: "1001", ClientSecret: codeSecret, RedirectURL: codeRedirect, Scopes: []string{"read", "profile"},
			Endpoint: oauth2.Endpoint{AuthURL: "https://login.example/authorize", TokenURL: ts.URL + "/oauth/token", AuthStyle: style},
		}
		verifier := oauth2.GenerateVerifier()
		tok, err := conf.Exchange(ctx, issue(conf, verifier), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("auth style %d: Exchange: %v", style, err)
		}
		if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "Bearer" ||
			tok.Expiry.Before(time.Now().Add(ts.cfg.Tokens.AccessTTL.D()-time.Minute)) || tok.Extra("scope") != "read profile" {
			t.Fatalf("token %+v, scope %v", tok, tok.Extra("scope"))
		}
		claims := verifyWithJWKS(t, ts, tok.AccessToken)
		if claims["sub"] != "7" || claims["client_id"] != "1001" {
			t.Fatalf("claims %v", claims)
		}

		// An expired token makes the TokenSource refresh with the refresh_token grant.
		tok.Expiry = time.Now().Add(-time.Minute)
		fresh, err := conf.TokenSource(ctx, tok).Token()
		if err != nil {
			t.Fatalf("refresh through TokenSource: %v", err)
		}
		if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken || !fresh.Valid() {
			t.Fatalf("refresh gave %+v", fresh)
		}
	}

	// The library's errors: a wrong verifier is invalid_grant, a wrong
	// secret invalid_client, a replayed code invalid_grant.
	conf := &oauth2.Config{ClientID: "1001", ClientSecret: codeSecret, RedirectURL: codeRedirect, Scopes: []string{"read"},
		Endpoint: oauth2.Endpoint{TokenURL: ts.URL + "/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}}
	verifier := oauth2.GenerateVerifier()
	code := issue(conf, verifier)
	wantOAuthError := func(err error, want string) {
		t.Helper()
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != want {
			t.Fatalf("got %v, want %s", err, want)
		}
	}
	_, err := conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
	wantOAuthError(err, "invalid_grant")
	_, err = conf.Exchange(ctx, code)
	wantOAuthError(err, "invalid_grant")
	bad := *conf
	bad.ClientSecret = "wrong"
	_, err = bad.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	wantOAuthError(err, "invalid_client")
	wrongRedirect := *conf
	wrongRedirect.RedirectURL = "http://127.0.0.1:9999/cb"
	_, err = wrongRedirect.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	wantOAuthError(err, "invalid_grant")
	first, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("the code after failed exchanges: %v", err)
	}
	_, err = conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	wantOAuthError(err, "invalid_grant")
	assertSessionRevoked(t, ts, first.AccessToken, first.RefreshToken)

	// A public client (no secret) with PKCE.
	pub := &oauth2.Config{ClientID: "1002", RedirectURL: codeRedirect, Scopes: []string{"read"},
		Endpoint: oauth2.Endpoint{TokenURL: ts.URL + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier = oauth2.GenerateVerifier()
	u, _ := url.Parse(pub.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
	gen, err := alice.GenerateAuthorizationCode(ctx, connect.NewRequest(&authpb.GenerateAuthorizationCodeRequest{
		UserId: 7, ClientId: 1002, RedirectUri: codeRedirect, Scope: "read",
		CodeChallenge: u.Query().Get("code_challenge"), CodeChallengeMethod: "S256",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Exchange(ctx, gen.Msg.Code, oauth2.VerifierOption(verifier)); err != nil {
		t.Fatalf("public client: %v", err)
	}
}

func TestDiscoveryAdvertisesCodeFlow(t *testing.T) {
	ts := start(t, "", withCodeClients)
	var doc struct {
		GrantTypes []string `json:"grant_types_supported"`
		PKCE       []string `json:"code_challenge_methods_supported"`
		Token      string   `json:"token_endpoint"`
	}
	getJSON(t, ts.URL+"/.well-known/openid-configuration", &doc)
	if !slices.Contains(doc.GrantTypes, "authorization_code") || !slices.Equal(doc.PKCE, []string{"S256"}) || doc.Token != ts.URL+"/oauth/token" {
		t.Fatalf("discovery %+v", doc)
	}
}
