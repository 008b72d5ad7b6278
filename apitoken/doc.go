// Package apitoken defines the two strings of an API token: its public id,
// a TypeID ("api_token_" + 26 base32 characters over a UUIDv7), and its
// secret, which carries the id, 256 random bits and a checksum behind a
// fixed prefix.
//
// The prefix lets secret scanners recognise a leaked tokend secret; the
// checksum lets them (and tokend) reject a mistyped or truncated one without
// a database look-up; the embedded id lets tokend find the record in one
// O(1) step and then compare the secret's hash in constant time.
package apitoken
