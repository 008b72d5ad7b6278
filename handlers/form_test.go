package handlers

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestFormEndpointsParseAlike sends the same malformed requests to the
// three form endpoints: each must refuse them with the same status and
// error, before any client is authenticated.
func TestFormEndpointsParseAlike(t *testing.T) {
	const maxBytes = 1024
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	te := NewTokenEndpoints(NewClients(nil, nil), nil, nil, nil, maxBytes, log)
	endpoints := map[string]http.Handler{
		"token":      NewOAuth(maxBytes, log),
		"introspect": http.HandlerFunc(te.Introspect),
		"revoke":     http.HandlerFunc(te.Revoke),
	}
	form := "application/x-www-form-urlencoded"
	for _, c := range []struct {
		name, method, contentType, body string
		basic                           [2]string // id, secret; empty: none
		status                          int
	}{
		{name: "GET", method: http.MethodGet, contentType: form, body: "token=x", status: http.StatusMethodNotAllowed},
		{name: "JSON body", contentType: "application/json", body: `{"token":"x"}`, status: http.StatusUnsupportedMediaType},
		{name: "body over the limit", contentType: form, body: "token=" + strings.Repeat("a", maxBytes), status: http.StatusRequestEntityTooLarge},
		{name: "malformed form", contentType: form, body: "token=%zz", status: http.StatusBadRequest},
		{name: "repeated parameter", contentType: form, body: "token=a&token=b&grant_type=x", status: http.StatusBadRequest},
		{name: "malformed escape in Basic id", contentType: form, body: "token=x&grant_type=x", basic: [2]string{"cl%zz", "s"}, status: http.StatusBadRequest},
		{name: "malformed escape in Basic secret", contentType: form, body: "token=x&grant_type=x", basic: [2]string{"cl", "s%"}, status: http.StatusBadRequest},
		{name: "Basic and client_secret", contentType: form, body: "token=x&grant_type=x&client_secret=s", basic: [2]string{"cl", "s"}, status: http.StatusBadRequest},
		{name: "Basic id against client_id", contentType: form, body: "token=x&grant_type=x&client_id=other", basic: [2]string{"cl", "s"}, status: http.StatusBadRequest},
	} {
		for name, h := range endpoints {
			t.Run(c.name+"/"+name, func(t *testing.T) {
				method := c.method
				if method == "" {
					method = http.MethodPost
				}
				r := httptest.NewRequest(method, "/oauth/"+name, strings.NewReader(c.body))
				r.Header.Set("Content-Type", c.contentType)
				if c.basic[0] != "" {
					r.SetBasicAuth(c.basic[0], c.basic[1])
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != c.status {
					t.Fatalf("status %d, want %d (%s)", w.Code, c.status, w.Body)
				}
				var oe OAuthError
				if err := json.Unmarshal(w.Body.Bytes(), &oe); err != nil || oe.Code != "invalid_request" {
					t.Fatalf("body %s, want an invalid_request error", w.Body)
				}
			})
		}
	}
}
