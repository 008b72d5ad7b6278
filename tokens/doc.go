// Package tokens holds tokend's signing keys and its access tokens.
//
// A [Key] is an Ed25519 (EdDSA), P-256 (ES256) or RSA (RS256, at least 2048 bits) private key read from
// PEM or generated; its kid is its RFC 7638 JWK thumbprint. A [KeySet] is the configured list of keys:
// the first signs, all are published in the JWKS, so an old key can stay in the set until the tokens it
// signed have expired.
//
// Access tokens are JWTs in the RFC 9068 profile (header typ "at+jwt" and kid). [KeySet.Sign] makes them;
// [Verifier.Verify] accepts only tokens that tokend itself could have made: a listed asymmetric alg that
// matches the kid's key, typ at+jwt, a good signature, the configured issuer, an expiry, and a known kind.
//
// A [Minter] fills in what every token carries (iss, iat, exp, jti) and signs. [ForeignKeys] verifies
// JWTs of other issuers (client assertions) by the keys they publish, fetched over HTTP and cached.
//
// The package speaks no Redis and serves no HTTP: revocation, trust and audience rules belong to the
// handlers.
package tokens
