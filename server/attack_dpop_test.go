package server_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/dpop/dpoptest"
	"github.com/tokend/tokend/gen/auth/authpbconnect"
	authv1 "github.com/tokend/tokend/gen/auth/v1"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
)

// costlyProof is a DPoP proof whose jwk is an RSA public key of 8192 bits with
// exponent 2^31-1 and whose signature is junk: were such a key accepted,
// checking it would cost one RSA-8192 modexp with a 31-bit exponent (tens of
// ES256 verifications) and need no key at all.
func costlyProof(t *testing.T, method, htu string) string {
	t.Helper()
	n := make([]byte, 1024)
	_, _ = rand.Read(n)
	n[0] |= 0x80
	n[len(n)-1] |= 1
	b64 := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": "RS256",
		"jwk": map[string]string{"kty": "RSA", "n": b64(n), "e": b64([]byte{0x7f, 0xff, 0xff, 0xff})}})
	c, _ := json.Marshal(map[string]any{"jti": fmt.Sprint(time.Now().UnixNano()), "htm": method, "htu": htu, "iat": time.Now().Unix()})
	sig := make([]byte, 1024) // below n
	sig[1] = 1
	return b64(h) + "." + b64(c) + "." + b64(sig)
}

// An unauthenticated caller (no client, a made-up refresh token) must not
// make tokend verify a costly proof signature: RefreshToken checks the proof
// (dpop.Peek) before the refresh token is looked up, so the proof's key is
// refused before any signature work (RSA modulus of at most 4096 bits,
// e = 65537). The answer "signature does not verify" would show the modexp ran.
func TestAttackRefreshVerifiesCostlyProofUnauthenticated(t *testing.T) {
	ts := start(t, "", nil)
	refreshURL := ts.URL + authv1connect.AuthServiceRefreshTokenProcedure
	proof := costlyProof(t, "POST", refreshURL)
	if len(proof) > 8<<10 {
		t.Fatalf("proof %d bytes: over maxProofLen", len(proof))
	}
	c := authv1connect.NewAuthServiceClient(http.DefaultClient, ts.URL, connect.WithProtoJSON(), headers("DPoP", proof))
	_, err := c.RefreshToken(t.Context(), connect.NewRequest(&authv1.RefreshTokenRequest{RefreshToken: "not-a-refresh-token"}))
	t.Logf("answer: %v", err)
	if err != nil && strings.Contains(err.Error(), "signature does not verify") {
		t.Fatalf("unauthenticated RefreshToken verified an RSA-8192 e=2^31-1 proof signature: %v", err)
	}
}

// A public client's ExchangeToken needs no credential but the client id: a
// made-up code must be refused without the proof's replay record written to
// Redis (the proof is recorded only once the code has been exchanged), and
// without a costly proof verified.
func TestAttackPublicExchangeRecordsProofBeforeCode(t *testing.T) {
	ts := startCodeServer(t, nil)
	proc := ts.URL + authpbconnect.AuthServiceExchangeTokenProcedure
	k := dpoptest.NewES256()
	proof := k.Proof("POST", proc, dpoptest.Opts{})
	c := authpbconnect.NewAuthServiceClient(http.DefaultClient, ts.URL, connect.WithProtoJSON(), headers("DPoP", proof))
	_, err1 := c.ExchangeToken(t.Context(), exchangeReq("made-up-code-1", 1002, "", codeRedirect, testVerifier))
	_, err2 := c.ExchangeToken(t.Context(), exchangeReq("made-up-code-2", 1002, "", codeRedirect, testVerifier))
	t.Logf("first: %v; second, same proof: %v", err1, err2)
	if err2 != nil && strings.Contains(err2.Error(), "jti was used before") {
		t.Fatalf("a made-up code wrote the proof's replay record: %v", err2)
	}
	costly := authpbconnect.NewAuthServiceClient(http.DefaultClient, ts.URL, connect.WithProtoJSON(), headers("DPoP", costlyProof(t, "POST", proc)))
	if _, err := costly.ExchangeToken(t.Context(), exchangeReq("made-up-code-3", 1002, "", codeRedirect, testVerifier)); err != nil &&
		strings.Contains(err.Error(), "signature does not verify") {
		t.Fatalf("a made-up code made tokend verify an RSA-8192 proof: %v", err)
	}
}
