// Package dpop checks DPoP proofs (RFC 9449): a client proves, on every call, that it holds the
// private key an access or refresh token is bound to, so that a copied token is useless without
// the key.
//
// A proof is a JWS with typ "dpop+jwt", an asymmetric alg of Algs, and the public key in its jwk
// header (no private members). Check verifies its signature and claims against the call: htm,
// htu (scheme, host and path of the request, or of the issuer's origin), iat within a window,
// ath (hash of the access token) on protected calls, and the server nonce when Nonces are on.
// Record writes the proof's replay record (shared by the fleet) so that a jti is accepted once.
// Errors are *Error with the RFC 9449 §7.1 codes; ConnectError and SetHeaders put them on the wire.
//
// Wrap keeps the DPoP header of each request for the token calls, which call Bind once their
// client is authenticated; the bearer check (package authn) calls Check itself.
package dpop
