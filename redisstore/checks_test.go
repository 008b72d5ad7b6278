package redisstore

import (
	"context"
	"time"
)

// Shorthands for the tests: each precheck settled on its own, as the
// revocation checks settle it (server.revoked).

// FamilyActive reports whether the family familyID exists (has a live
// token) and is not revoked: SessionCheck, settled on its own.
func (s *Store) FamilyActive(ctx context.Context, familyID string) (bool, error) {
	refused, err := Settle(ctx, s.SessionCheck(familyID))
	return !refused && err == nil, err
}

// APITokenActive reports whether the API token id exists (not deleted, not
// expired): APITokenCheck, settled on its own.
func (s *Store) APITokenActive(ctx context.Context, id string) (bool, error) {
	refused, err := Settle(ctx, s.APITokenCheck(id))
	return !refused && err == nil, err
}

// M2MBlacklisted reports whether the owner's token id is blacklisted:
// M2MCheck, settled on its own.
func (s *Store) M2MBlacklisted(ctx context.Context, owner, id string) (bool, error) {
	return Settle(ctx, s.M2MCheck(owner, id))
}

// rot is a Rotation with successor lifetime ttl and reuse grace window
// grace, replays in the window not capped in practice, and no absolute
// session lifetime.
func rot(ttl, grace time.Duration) Rotation {
	return Rotation{TTL: ttl, Grace: grace, MaxReplays: 100}
}

// sameSession compares what a session stands for, not when its family was
// created (which RotateRefresh reports and the tests cannot know).
func sameSession(a, b Session) bool {
	a.Created, b.Created = 0, 0
	return a == b
}
