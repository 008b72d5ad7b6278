package handlers

import (
	"strconv"

	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/passhash"
)

// Users is the directory of configured users.
type Users struct {
	byName map[string]config.User
	byID   map[string]bool
	// dummy is verified instead of a real hash when the username is unknown,
	// so that unknown users cost the same time as wrong passwords.
	dummy string
}

// NewUsers indexes the configured users by username.
func NewUsers(users []config.User) *Users {
	u := &Users{
		byName: make(map[string]config.User, len(users)),
		byID:   make(map[string]bool, len(users)),
	}
	sample := ""
	for _, usr := range users {
		u.byName[usr.Username] = usr
		u.byID[strconv.FormatUint(uint64(usr.ID), 10)] = true
		if sample == "" {
			sample = usr.PasswordHash
		}
	}
	u.dummy = passhash.DummyFor(sample)
	return u
}

// Authenticate returns the user id (decimal) when username and password match
// a configured user. Every failure takes about as long as a success.
func (u *Users) Authenticate(username, password string) (string, bool) {
	usr, known := u.byName[username]
	hash := u.dummy
	if known {
		hash = usr.PasswordHash
	}
	if err := passhash.Verify(hash, password); err != nil || !known {
		return "", false
	}
	return strconv.FormatUint(uint64(usr.ID), 10), true
}

// Exists reports whether a user with the decimal id exists.
func (u *Users) Exists(id string) bool { return u.byID[id] }
