package handlers

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzOAuthTokenEndpoint feeds arbitrary methods, content types,
// Authorization headers and bodies to POST /oauth/token. The endpoint must
// never panic and never answer 5xx; every refusal is an RFC 6749 JSON error
// with a known code; and a grant runs only with a parsed form whose client
// credentials came from exactly one place.
func FuzzOAuthTokenEndpoint(f *testing.F) {
	o := NewOAuth(1024, slog.New(slog.NewTextHandler(io.Discard, nil)))
	o.Handle("password", func(_ context.Context, req *OAuthTokenRequest) (*OAuthTokenResponse, error) {
		if req.GrantType != "password" || req.Form.Get("grant_type") != "password" {
			return nil, &OAuthError{Status: http.StatusTeapot, Code: "grant_mismatch"}
		}
		if req.BasicAuth && req.Form.Has("client_secret") {
			return nil, &OAuthError{Status: http.StatusTeapot, Code: "two_auth_methods"}
		}
		if req.ClientID == "c1" && req.ClientSecret == "s1" {
			return &OAuthTokenResponse{AccessToken: "at", TokenType: "Bearer"}, nil
		}
		return nil, InvalidClient()
	})
	known := map[string]bool{"invalid_request": true, "invalid_client": true, "unsupported_grant_type": true}

	form := "application/x-www-form-urlencoded"
	f.Add("POST", form, "", "grant_type=password&client_id=c1&client_secret=s1&username=u&password=p")
	f.Add("POST", form, "Basic YzE6czE=", "grant_type=password&username=u&password=p")
	f.Add("POST", form, "Basic YzE6czE=", "grant_type=password&client_secret=s1")
	f.Add("POST", form, "Basic %%%", "grant_type=password")
	f.Add("POST", form, "", "grant_type=password&grant_type=password")
	f.Add("POST", form, "", "grant_type=client_credentials")
	f.Add("POST", form, "", "%zz=1")
	f.Add("POST", form, "", strings.Repeat("a", 2048))
	f.Add("POST", "application/json", "", `{"grant_type":"password"}`)
	f.Add("GET", "", "", "")
	f.Fuzz(func(t *testing.T, method, contentType, authz, body string) {
		if !validMethod(method) {
			return // net/http refuses such a request line before any handler runs
		}
		r := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(body))
		r.Method = method
		r.Header.Set("Content-Type", contentType)
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		w := httptest.NewRecorder()
		o.ServeHTTP(w, r)

		if w.Code >= 500 || w.Code == http.StatusTeapot {
			t.Fatalf("status %d, body %s", w.Code, w.Body)
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("Cache-Control %q", cc)
		}
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("body is not JSON: %q", w.Body)
		}
		if w.Code == http.StatusOK {
			if method != http.MethodPost || out["access_token"] != "at" {
				t.Fatalf("accepted %s: %v", method, out)
			}
			return
		}
		code, _ := out["error"].(string)
		if !known[code] {
			t.Fatalf("status %d with error %q", w.Code, code)
		}
	})
}

// validMethod reports whether m is an HTTP token (RFC 9110 §9.1).
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return true
}
