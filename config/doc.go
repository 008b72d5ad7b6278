// Package config is tokend's configuration: one struct, decoded strictly from
// YAML over the defaults, overridden by a few environment variables, and
// validated once at start-up.
//
// Unknown keys are errors, durations are Go duration strings ("15m"), and
// Validate reports every problem at once, each naming its key path
// (users[1].password_hash, clients[0].redirect_uris[0], ...), so that a bad
// file is fixed in one round rather than one error at a time.
package config
