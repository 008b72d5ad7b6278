package tokens

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/golang-jwt/jwt/v5"
)

// Kinds of principal an access token speaks for (claim "kind"), so that a client or owner name can
// never pass for a user id (RFC 9700 §4.15.1).
const (
	KindUser     = "user"      // sub is a user id (decimal)
	KindClient   = "client"    // M2M token: a client acting for itself / its owner
	KindAPIToken = "api_token" // minted from an API token; sub is the owner user id
)

// Claims of an access token (RFC 9068). Audience always serialises as a JSON array.
type Claims struct {
	jwt.RegisteredClaims
	ClientID   string `json:"client_id,omitempty"`
	Scope      string `json:"scope,omitempty"`
	Kind       string `json:"kind"`
	SessionID  string `json:"sid,omitempty"`
	APITokenID string `json:"api_token_id,omitempty"`
	Owner      string `json:"owner,omitempty"`
	Name       string `json:"name,omitempty"`
	// AssertionIssuer is, on an M2M token bought with a client assertion,
	// the assertion's issuer: the token lives only while its client trusts it.
	AssertionIssuer string `json:"assertion_iss,omitempty"`
	// Confirmation binds the token to a key (RFC 7800): with cnf.jkt, only a caller holding the
	// key with that RFC 7638 thumbprint may use it, with a DPoP proof (RFC 9449 §6).
	Confirmation *Confirmation `json:"cnf,omitempty"`
}

// Confirmation is the cnf claim of a sender-constrained token.
type Confirmation struct {
	JKT string `json:"jkt"` // base64url SHA-256 JWK thumbprint (RFC 9449 §6.1)
}

// BoundKey is the thumbprint of the key the token is bound to, "" for a bearer token.
func (c *Claims) BoundKey() string {
	if c == nil || c.Confirmation == nil {
		return ""
	}
	return c.Confirmation.JKT
}

// checkClaims holds the rules on kind and sub that both Sign and Verify enforce: kind is one of the
// Kind constants, sub is present, and for a user or API-token kind sub is a user id in canonical
// decimal ("1", not "01" or "alice").
func checkClaims(c *Claims) error {
	switch c.Kind {
	case KindUser, KindAPIToken:
		if !isDecimalID(c.Subject) {
			return fmt.Errorf("kind %s needs a decimal user id as sub, got %q", c.Kind, c.Subject)
		}
	case KindClient:
		if c.Subject == "" {
			return errors.New("sub missing")
		}
	case "":
		return errors.New("kind missing")
	default:
		return fmt.Errorf("unknown kind %q", c.Kind)
	}
	return nil
}

// isDecimalID reports whether s is a uint64 in canonical decimal form.
func isDecimalID(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}
