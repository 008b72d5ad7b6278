package server

import (
	"encoding/json"
	"net/http"
	"strings"
)

// discovery is the OpenID Connect / RFC 8414 metadata document.
type discovery struct {
	Issuer                            string   `json:"issuer"`
	JWKSURI                           string   `json:"jwks_uri"`
	TokenEndpoint                     string   `json:"token_endpoint,omitempty"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint,omitempty"`
	RevocationEndpoint                string   `json:"revocation_endpoint,omitempty"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"` // RFC 8414: required, even when empty
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	IntrospectionAuthMethods          []string `json:"introspection_endpoint_auth_methods_supported,omitempty"`
	RevocationAuthMethods             []string `json:"revocation_endpoint_auth_methods_supported,omitempty"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported,omitempty"`
	AccessTokenSigningAlgs            []string `json:"access_token_signing_alg_values_supported"`
	DPoPSigningAlgs                   []string `json:"dpop_signing_alg_values_supported,omitempty"` // RFC 9449 §5.1
}

// staticJSON serves a document computed once at start.
func staticJSON(body []byte, maxAge string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age="+maxAge)
		w.Header().Set("Access-Control-Allow-Origin", "*")
		_, _ = w.Write(body)
	})
}

func discoveryJSON(d discovery) []byte {
	d.Issuer = strings.TrimSuffix(d.Issuer, "/")
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		panic(err) // a struct of strings always marshals
	}
	return b
}
