// Package passhash hashes and verifies the passwords of configured users and
// the secrets of configured clients.
//
// Hashes are strings in the forms other tools write: argon2id as a PHC string
// ($argon2id$v=19$m=…,t=…,p=…$salt$hash, what the reference argon2 CLI prints)
// and bcrypt ($2a$, $2b$, $2y$, what htpasswd -B prints). New hashes are
// argon2id with OWASP's parameters. Verification compares in constant time and
// refuses parameters that would make one check absurdly expensive, so that a
// hostile or mistyped configuration cannot stall the server.
//
// DummyFor gives a hash to verify against when a username is unknown, so that
// an unknown user costs as much as a wrong password. SecretCache remembers
// recent successful verifications of client secrets, so that a machine client
// presenting the same secret on every request pays the slow hash once.
package passhash
