package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/passhash"
)

const scriptSecret = "script-client-secret"

// withPasswordClient adds a confidential client allowed the password grant.
func withPasswordClient(c *config.Config) {
	h, err := passhash.HashBcrypt(scriptSecret, 4)
	if err != nil {
		panic(err)
	}
	c.Clients = append(c.Clients, config.Client{
		ID: "script", SecretHash: h, GrantTypes: []string{"password", "refresh_token"}, Scopes: []string{"read", "write"},
	}, config.Client{
		ID: "other", SecretHash: h, GrantTypes: []string{"refresh_token"}, Scopes: []string{"read"},
	})
}

type tokenResult struct {
	Status int
	Header http.Header
	Body   map[string]any
}

func postForm(t *testing.T, ts *testServer, form url.Values, basicUser, basicPass string) tokenResult {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token endpoint answered non-JSON (%s): %v", resp.Status, err)
	}
	return tokenResult{resp.StatusCode, resp.Header, body}
}

func TestOAuthPasswordAndRefreshGrants(t *testing.T) {
	ts := start(t, "", withPasswordClient)
	r := postForm(t, ts, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password}, "scope": {"read"}}, "script", scriptSecret)
	if r.Status != 200 || r.Body["access_token"] == nil || r.Body["refresh_token"] == nil || r.Body["token_type"] != "Bearer" || r.Body["scope"] != "read" {
		t.Fatalf("password grant: %d %v", r.Status, r.Body)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control %q", r.Header.Get("Cache-Control"))
	}
	claims := verifyWithJWKS(t, ts, r.Body["access_token"].(string))
	if claims["sub"] != "7" || claims["client_id"] != "script" || claims["scope"] != "read" {
		t.Fatalf("claims %v", claims)
	}

	// Refresh with form credentials; the old token is then consumed.
	rt := r.Body["refresh_token"].(string)
	r2 := postForm(t, ts, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"script"}, "client_secret": {scriptSecret}}, "", "")
	if r2.Status != 200 || r2.Body["refresh_token"] == rt {
		t.Fatalf("refresh grant: %d %v", r2.Status, r2.Body)
	}
	// Another client presenting the token: refused, and the session is revoked.
	r3 := postForm(t, ts, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r2.Body["refresh_token"].(string)}}, "other", scriptSecret)
	if r3.Status != 400 || r3.Body["error"] != "invalid_grant" {
		t.Fatalf("refresh by another client: %d %v", r3.Status, r3.Body)
	}
	r4 := postForm(t, ts, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r2.Body["refresh_token"].(string)}}, "script", scriptSecret)
	if r4.Status != 400 || r4.Body["error"] != "invalid_grant" {
		t.Fatalf("session survived a foreign client: %d %v", r4.Status, r4.Body)
	}
}

func TestOAuthErrors(t *testing.T) {
	ts := start(t, "", withPasswordClient)
	cases := []struct {
		name       string
		form       url.Values
		user, pass string
		status     int
		code       string
	}{
		{"no grant_type", url.Values{}, "", "", 400, "invalid_request"},
		{"unknown grant", url.Values{"grant_type": {"implicit"}}, "", "", 400, "unsupported_grant_type"},
		{"bad client secret", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password}}, "script", "nope", 401, "invalid_client"},
		{"unknown client", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password}}, "ghost", "nope", 401, "invalid_client"},
		{"client without the grant", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password}}, "other", scriptSecret, 400, "unauthorized_client"},
		{"wrong password", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"x"}}, "script", scriptSecret, 400, "invalid_grant"},
		{"scope outside", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password}, "scope": {"admin"}}, "script", scriptSecret, 400, "invalid_scope"},
		{"two auth methods", url.Values{"grant_type": {"password"}, "client_secret": {scriptSecret}}, "script", scriptSecret, 400, "invalid_request"},
		{"repeated parameter", url.Values{"grant_type": {"password", "password"}}, "", "", 400, "invalid_request"},
		{"bad refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, "", "", 400, "invalid_grant"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := postForm(t, ts, c.form, c.user, c.pass)
			if r.Status != c.status || r.Body["error"] != c.code {
				t.Fatalf("got %d %v, want %d %s", r.Status, r.Body, c.status, c.code)
			}
			if c.code == "invalid_client" && r.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("invalid_client over Basic without WWW-Authenticate")
			}
		})
	}
	// Wrong content type and method.
	resp, err := http.Post(ts.URL+"/oauth/token", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("JSON body: %d", resp.StatusCode)
	}
	resp, err = http.Get(ts.URL + "/oauth/token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
}
