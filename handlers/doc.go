// Package handlers implements tokend's RPC services, one file per service.
// Each handler holds the rules of its API (credentials, scopes, audiences,
// lifetimes, ownership) and turns store and rule errors into connect codes
// in one place (errors.go). Handlers declare the store methods they call as
// small interfaces; redisstore satisfies them.
package handlers
