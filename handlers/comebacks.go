package handlers

import (
	"errors"
	"sync/atomic"
	"time"
)

// errGone: a user or client is not configured, or what was issued to it
// belongs to an earlier holder of its id (removed from the configuration
// since).
var errGone = errors.New("no longer configured")

// errNotSynced: tokend has not yet recorded its configuration in Redis
// (SyncConfigured), so it cannot tell whether an id came back after a
// removal. Answered as unavailable: it passes once Redis answers.
var errNotSynced = errors.New("configuration not yet recorded in Redis")

// comebacks remembers, for the ids of one kind that were removed from the
// configuration and came back, when they were removed (what Redis recorded
// at start: redisstore.SyncConfigured). It is empty until recorded.
type comebacks struct {
	since atomic.Pointer[map[string]time.Time]
}

func (c *comebacks) set(since map[string]time.Time) { c.since.Store(&since) }

// ready is errNotSynced until set, then nil.
func (c *comebacks) ready() error {
	if c.since.Load() == nil {
		return errNotSynced
	}
	return nil
}

// check says whether something issued to id at issued belongs to its
// current holder: errGone when id came back after a removal and issued is
// not after that removal (whole seconds: something issued in the second of
// the removal is refused too), or unknown; errNotSynced before set.
func (c *comebacks) check(id string, issued time.Time) error {
	m := c.since.Load()
	if m == nil {
		return errNotSynced
	}
	if removed, ok := (*m)[id]; ok && (issued.IsZero() || issued.Unix() <= removed.Unix()) {
		return errGone
	}
	return nil
}

// gone is the refusal of something whose user or client is gone (errGone):
// refusal; errNotSynced is returned as is (unavailable: retry).
func gone(err error, refusal error) error {
	if errors.Is(err, errNotSynced) {
		return err
	}
	return refusal
}

// IsNotSynced reports whether err means tokend has not yet recorded its
// configuration in Redis (answer unavailable, and try again).
func IsNotSynced(err error) bool { return errors.Is(err, errNotSynced) }
