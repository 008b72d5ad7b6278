// Package handlers implements tokend's RPC services, one file per service.
// Each handler holds the rules of its API (credentials, scopes, audiences,
// lifetimes, ownership) and returns errors that say what happened; one
// table (errors.go: connectError, applied by ErrorInterceptor) turns them
// into connect codes and messages, and OAuthErrorFrom into RFC 6749 errors
// for the form endpoints (form.go parses their requests). Handlers declare
// the store methods they call as small interfaces; redisstore satisfies
// them. Signing and foreign keys are the tokens package's.
package handlers
