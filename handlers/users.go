package handlers

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/passhash"
)

// Users is the directory of configured users. Replace swaps the whole
// directory at once (a configuration reload).
type Users struct {
	dir  atomic.Pointer[userDir]
	back comebacks
}

// userDir is one immutable list of users.
type userDir struct {
	byName map[string]config.User
	byID   map[string]bool
	// dummy is verified instead of a real hash when the username is unknown,
	// so that unknown users cost the same time as wrong passwords.
	dummy string
}

// NewUsers indexes the configured users by username.
func NewUsers(users []config.User) *Users {
	u := new(Users)
	u.Replace(users)
	return u
}

// Replace makes users the directory: a user no longer listed is refused
// from now on, and so is everything issued to it (Current).
func (u *Users) Replace(users []config.User) {
	d := &userDir{
		byName: make(map[string]config.User, len(users)),
		byID:   make(map[string]bool, len(users)),
	}
	sample := ""
	for _, usr := range users {
		d.byName[usr.Username] = usr
		d.byID[strconv.FormatUint(uint64(usr.ID), 10)] = true
		if sample == "" {
			sample = usr.PasswordHash
		}
	}
	d.dummy = passhash.DummyFor(sample)
	u.dir.Store(d)
}

// Authenticate returns the user id (decimal) when username and password match
// a configured user. Every failure takes about as long as a success.
func (u *Users) Authenticate(username, password string) (string, bool) {
	d := u.dir.Load()
	usr, known := d.byName[username]
	hash := d.dummy
	if known {
		hash = usr.PasswordHash
	}
	if err := passhash.Verify(hash, password); err != nil || !known {
		return "", false
	}
	return strconv.FormatUint(uint64(usr.ID), 10), true
}

// Exists reports whether a user with the decimal id exists.
func (u *Users) Exists(id string) bool { return u.dir.Load().byID[id] }

// IDs lists the configured user ids (decimal).
func (u *Users) IDs() []string {
	d := u.dir.Load()
	ids := make([]string, 0, len(d.byID))
	for id := range d.byID {
		ids = append(ids, id)
	}
	return ids
}

// SetComebacks records which user ids came back after a removal, and when
// they were removed (redisstore.SyncConfigured).
func (u *Users) SetComebacks(since map[string]time.Time) { u.back.set(since) }

// Ready is errNotSynced until SetComebacks: callers that consume something
// (a code, a refresh token) ask before, so that they never consume it and
// then fail for want of the record.
func (u *Users) Ready() error { return u.back.ready() }

// Current reports whether what was issued to user id at issued (a session,
// an API token, an access token) still belongs to a configured user: nil;
// errGone when the user is not configured, or was removed (after issued)
// and configured again (a removal is permanent for what the id held before);
// errNotSynced until SetComebacks.
func (u *Users) Current(id string, issued time.Time) error {
	if !u.dir.Load().byID[id] {
		return errGone
	}
	return u.back.check(id, issued)
}
