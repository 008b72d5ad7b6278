package redisstore

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// M2MToken is the record of a machine-to-machine access token.
type M2MToken struct {
	ID            string // the token's jti
	Name          string
	Owner         string
	ClientID      string
	Subject       string
	Audience      []string
	Scope         []string
	IssuedAt      time.Time
	ExpiresAt     time.Time // zero: never
	Claims        []byte    // the client assertion's claims as JSON; nil when none
	Version       uint64
	BlacklistedAt time.Time // zero: not blacklisted
}

// Blacklisted reports whether the token was blacklisted.
func (t M2MToken) Blacklisted() bool { return !t.BlacklistedAt.IsZero() }

var (
	//go:embed m2m_create.lua
	m2mCreateSrc    string
	m2mCreateScript = redis.NewScript(m2mCreateSrc)

	//go:embed m2m_delete.lua
	m2mDeleteSrc    string
	m2mDeleteScript = redis.NewScript(m2mDeleteSrc)

	//go:embed m2m_owner.lua
	m2mOwnerSrc    string
	m2mOwnerScript = redis.NewScript(m2mOwnerSrc)

	//go:embed m2m_due.lua
	m2mDueSrc    string
	m2mDueScript = redis.NewScript(m2mDueSrc)
)

// m2mBatch is how many tokens one list step handles (and owners one sweep
// round takes): the memory
// and Redis time of a step are bounded whatever the owner holds.
const m2mBatch = 500

// m2mDeleteBatch is how many tokens one m2m_delete.lua run handles: about
// five commands each, so that one run stays near a millisecond and other
// owners' calls wait little behind a delete-all of a big owner.
const m2mDeleteBatch = 100

// m2mSweepBatch is how many entries one sweep command removes from an
// owner's index, and m2mDueBatch how many owners one m2m_due.lua run
// reschedules (two commands each, on a key with one member per owner), so
// that each stays well under a millisecond.
const (
	m2mSweepBatch = 200
	m2mDueBatch   = 100
)

// CreateM2MToken stores rec, indexed under its owner, until it expires: one
// script and the owner's entry in the sweep's set, in one round trip shared
// with concurrent requests (see batcher). It fails with ErrLimit, writing
// nothing, when the owner already holds Options.MaxM2MPerOwner live tokens
// (checked in the same script, so concurrent creations cannot overshoot).
func (s *Store) CreateM2MToken(ctx context.Context, rec M2MToken) error {
	if !validID(rec.ID) || rec.Owner == "" {
		return fmt.Errorf("redisstore: malformed M2M token id %q or empty owner", rec.ID)
	}
	aud, _ := json.Marshal(rec.Audience)
	scope, _ := json.Marshal(rec.Scope)
	expMS, score, exp := "0", "+inf", "0"
	if !rec.ExpiresAt.IsZero() {
		expMS = strconv.FormatInt(rec.ExpiresAt.UnixMilli(), 10)
		exp = strconv.FormatInt(rec.ExpiresAt.Unix(), 10)
		score = exp
	}
	args := []any{expMS, score, rec.ID, s.maxM2M,
		"name", rec.Name, "owner", rec.Owner, "client", rec.ClientID, "sub", rec.Subject,
		"aud", aud, "scope", scope, "iat", rec.IssuedAt.Unix(), "exp", exp,
		"claims", rec.Claims, "ver", 1, "bl", 0}
	d := digest(rec.Owner)
	cmds, err := s.batch.run(ctx,
		scriptCall{script: m2mCreateScript, keys: []string{s.keys.m2mTokenOf(d, rec.ID), s.keys.m2mIndexOf(d)}, args: args},
		scriptCall{script: m2mOwnerScript, keys: []string{s.keys.m2mDue()}, args: []any{d, score}})
	if err != nil {
		return wrap("create M2M token", err)
	}
	if n, err := cmds[0].(*redis.Cmd).Int64(); err != nil {
		return wrap("create M2M token", err)
	} else if n == 0 {
		return ErrLimit
	}
	return nil
}

// GetM2MTokens returns the owner's tokens among ids (in that order; ids
// that are unknown, expired, malformed or another owner's are left out),
// behind gate: ErrRefused when one of its prechecks refuses.
func (s *Store) GetM2MTokens(ctx context.Context, gate Gate, owner string, ids []string) ([]M2MToken, error) {
	var valid []string
	for _, id := range ids {
		if validID(id) {
			valid = append(valid, id)
		}
	}
	var out []M2MToken
	for len(valid) > 0 {
		n := min(len(valid), m2mBatch)
		batch, err := s.m2mRecords(ctx, gate, owner, valid[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, batch...)
		valid = valid[n:]
	}
	return out, nil
}

// ListM2MTokens calls f with the owner's live tokens, a batch of at most
// 500 at a time (ZSCAN over the owner's index), so an owner with a million
// tokens is listed in bounded memory. Like SCAN, a token created or deleted
// during the listing may or may not appear; every token present throughout
// appears once or, rarely, twice. The reads go behind gate (see
// GetM2MTokens).
func (s *Store) ListM2MTokens(ctx context.Context, gate Gate, owner string, f func([]M2MToken) error) error {
	return s.walkSortedSet(ctx, "list M2M tokens", s.keys.m2mIndex(owner), m2mBatch, func(ids []string) error {
		for len(ids) > 0 { // COUNT is a hint: a step may return a few more
			n := min(len(ids), m2mBatch)
			batch, err := s.m2mRecords(ctx, gate, owner, ids[:n])
			if err != nil {
				return err
			}
			if len(batch) > 0 {
				if err := f(batch); err != nil {
					return err
				}
			}
			ids = ids[n:]
		}
		return nil
	})
}

// m2mRecords reads the records of ids in one pipeline behind gate, leaving
// out those that are gone (expired).
func (s *Store) m2mRecords(ctx context.Context, gate Gate, owner string, ids []string) ([]M2MToken, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	calls := make([]scriptCall, len(ids))
	d := digest(owner)
	for i, id := range ids {
		key := s.keys.m2mTokenOf(d, id)
		calls[i] = command(func(p redis.Pipeliner) redis.Cmder { return p.HGetAll(ctx, key) })
	}
	cmds, err := s.batch.gated(ctx, gate, calls...)
	if err != nil {
		return nil, wrap("read M2M tokens", err)
	}
	now := time.Now()
	out := make([]M2MToken, 0, len(ids))
	for i, c := range cmds {
		if t, ok := m2mFromHash(ids[i], c.(*redis.MapStringStringCmd).Val()); ok && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt)) {
			out = append(out, t)
		}
	}
	return out, nil
}

func m2mFromHash(id string, m map[string]string) (M2MToken, bool) {
	if len(m) == 0 {
		return M2MToken{}, false
	}
	unix := func(k string) time.Time {
		n, _ := strconv.ParseInt(m[k], 10, 64)
		if n == 0 {
			return time.Time{}
		}
		return time.Unix(n, 0)
	}
	t := M2MToken{ID: id, Name: m["name"], Owner: m["owner"], ClientID: m["client"], Subject: m["sub"],
		IssuedAt: unix("iat"), ExpiresAt: unix("exp"), BlacklistedAt: unix("bl")}
	t.Audience = stringList(m["aud"])
	t.Scope = stringList(m["scope"])
	if c := m["claims"]; c != "" {
		t.Claims = []byte(c)
	}
	t.Version, _ = strconv.ParseUint(m["ver"], 10, 64)
	return t, true
}

// DeleteM2MTokens blacklists the owner's live tokens among ids, or all of
// the owner's tokens when ids is empty, and deletes the expired ones. It
// returns how many it blacklisted (tokens blacklisted before are not
// counted again) and deleted. It works through the owner's tokens in
// batches: each batch is atomic, the whole is not (a token created during
// a delete-all may be left alone).
func (s *Store) DeleteM2MTokens(ctx context.Context, owner string, ids []string) (blacklisted, deleted int64, err error) {
	d := digest(owner)
	run := func(batch []string) error {
		if len(batch) == 0 {
			return nil
		}
		keys := make([]string, 0, len(batch)+2)
		keys = append(keys, s.keys.m2mIndexOf(d), s.keys.m2mBlacklistOf(d))
		args := make([]any, 0, len(batch))
		for _, id := range batch {
			keys = append(keys, s.keys.m2mTokenOf(d, id))
			args = append(args, id)
		}
		res, err := s.revoke(ctx, m2mDeleteScript, keys, args...).Int64Slice()
		if err != nil {
			return wrap("delete M2M tokens", err)
		}
		blacklisted += res[0]
		deleted += res[1]
		return nil
	}
	runAll := func(ids []string) error {
		for len(ids) > 0 {
			n := min(len(ids), m2mDeleteBatch)
			if err := run(ids[:n]); err != nil {
				return err
			}
			ids = ids[n:]
		}
		return nil
	}
	if len(ids) > 0 {
		var valid []string
		for _, id := range ids {
			if validID(id) {
				valid = append(valid, id)
			}
		}
		return blacklisted, deleted, runAll(valid)
	}
	err = s.walkSortedSet(ctx, "delete M2M tokens", s.keys.m2mIndexOf(d), m2mBatch, runAll)
	return blacklisted, deleted, err
}

// SweepM2M removes the index and blacklist entries of expired M2M tokens
// and forgets owners left with none. It visits only the owners whose
// earliest expiry has passed (the schedule m2mDue), up to m2mBatch of them
// per round and m2mSweepBatch entries per owner per round, so one run
// costs Redis time in proportion to the tokens that expired since the last
// one, whatever the number of owners or live tokens. It is idempotent:
// every replica may run it at the same time. It returns how many entries it
// removed.
func (s *Store) SweepM2M(ctx context.Context) (int64, error) {
	if err := s.migrateM2MOwners(ctx); err != nil {
		return 0, err
	}
	due := s.keys.m2mDue()
	var removed int64
	t, err := do(ctx, s, func(p redis.Pipeliner) *redis.TimeCmd { return p.Time(ctx) }) // Redis' clock, as the scripts read it
	if err != nil {
		return 0, wrap("sweep M2M tokens", err)
	}
	now := strconv.FormatInt(t.Val().Unix(), 10)
	for {
		round, err := do(ctx, s, func(p redis.Pipeliner) *redis.ZSliceCmd {
			return p.ZRangeByScoreWithScores(ctx, due, &redis.ZRangeBy{Min: "-inf", Max: now, Count: m2mBatch})
		})
		if err != nil {
			return removed, wrap("sweep M2M tokens", err)
		}
		owners := round.Val()
		if len(owners) == 0 {
			return removed, nil
		}
		// Plain commands, two round trips for the whole round: the ids due
		// in each owner's index, then their removal from the index and
		// the blacklist with the earliest expiry left. No script is
		// needed: an index entry past its expiry is only ever removed
		// (ZREM and SREM are idempotent), and a new one always expires
		// later.
		reads := make([]scriptCall, len(owners))
		for i, o := range owners {
			idx := s.keys.m2mIndexOf(o.Member.(string))
			reads[i] = command(func(p redis.Pipeliner) redis.Cmder {
				return p.ZRangeByScore(ctx, idx, &redis.ZRangeBy{Min: "-inf", Max: now, Count: m2mSweepBatch})
			})
		}
		found, err := s.batch.run(ctx, reads...)
		if err != nil {
			return removed, wrap("sweep M2M tokens", err)
		}
		var writes []scriptCall
		firstAt := make([]int, len(owners)) // owner i's ZRANGE in writes
		for i, o := range owners {
			d := o.Member.(string)
			idx, bl := s.keys.m2mIndexOf(d), s.keys.m2mBlacklistOf(d)
			if ids := found[i].(*redis.StringSliceCmd).Val(); len(ids) > 0 {
				members := make([]any, len(ids))
				for j, id := range ids {
					members[j] = id
				}
				writes = append(writes,
					writeCommand(func(p redis.Pipeliner) redis.Cmder { return p.ZRem(ctx, idx, members...) }),
					writeCommand(func(p redis.Pipeliner) redis.Cmder { return p.SRem(ctx, bl, members...) }))
				removed += int64(len(ids))
			}
			firstAt[i] = len(writes)
			writes = append(writes, command(func(p redis.Pipeliner) redis.Cmder { return p.ZRangeWithScores(ctx, idx, 0, 0) }))
		}
		res, err := s.batch.run(ctx, writes...)
		if err != nil {
			return removed, wrap("sweep M2M tokens", err)
		}
		args := make([]any, 0, 3*len(owners))
		for i, o := range owners {
			next := ""
			if z := res[firstAt[i]].(*redis.ZSliceCmd).Val(); len(z) > 0 {
				next = strconv.FormatFloat(z[0].Score, 'f', -1, 64)
			}
			args = append(args, o.Member, strconv.FormatFloat(o.Score, 'f', -1, 64), next)
		}
		var gone []string
		for len(args) > 0 {
			n := min(len(args), 3*m2mDueBatch)
			g, err := s.run(ctx, m2mDueScript, []string{due}, args[:n]...).StringSlice()
			if err != nil {
				return removed, wrap("sweep M2M tokens", err)
			}
			gone, args = append(gone, g...), args[n:]
		}
		if len(gone) > 0 {
			// A token created between the round's reads and m2m_due.lua
			// may have been indexed after its owner left the schedule:
			// put such owners back.
			reads := make([]scriptCall, len(gone))
			for i, d := range gone {
				idx := s.keys.m2mIndexOf(d)
				reads[i] = command(func(p redis.Pipeliner) redis.Cmder { return p.ZRangeWithScores(ctx, idx, 0, 0) })
			}
			firsts, err := s.batch.run(ctx, reads...)
			if err != nil {
				return removed, wrap("sweep M2M tokens", err)
			}
			for i, c := range firsts {
				if z := c.(*redis.ZSliceCmd).Val(); len(z) > 0 {
					score := strconv.FormatFloat(z[0].Score, 'f', -1, 64)
					if err := s.run(ctx, m2mOwnerScript, []string{due}, gone[i], score).Err(); err != nil {
						return removed, wrap("sweep M2M tokens", err)
					}
				}
			}
		}
	}
}

// migrateM2MOwners moves the owners of the SET an older tokend kept for the
// sweep (m2mOwners) into the schedule, due at once, and deletes the SET.
func (s *Store) migrateM2MOwners(ctx context.Context) error {
	const op = "sweep M2M tokens"
	old, due := s.keys.m2mOwners(), s.keys.m2mDue()
	if n, err := do(ctx, s, func(p redis.Pipeliner) *redis.IntCmd { return p.Exists(ctx, old) }); err != nil {
		return wrap(op, err)
	} else if n.Val() == 0 {
		return nil
	}
	if err := s.walkSet(ctx, op, old, m2mBatch, func(digests []string) error {
		for _, d := range digests {
			if err := s.run(ctx, m2mOwnerScript, []string{due}, d, "0").Err(); err != nil {
				return wrap(op, err)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if _, err := doWrite(ctx, s, func(p redis.Pipeliner) *redis.IntCmd { return p.Del(ctx, old) }); err != nil {
		return wrap(op, err)
	}
	return nil
}

// stringList reads a JSON array of strings as CreateM2MToken stores it
// (json.Marshal of a []string). The common form, strings without escapes, is
// split directly; anything else goes through encoding/json.
func stringList(s string) []string {
	if out, ok := plainStringList(s); ok {
		return out
	}
	var out []string
	_ = json.Unmarshal([]byte(s), &out)
	return out
}

// plainStringList splits ["a","b"] when no string holds a quote or an
// escape, so that "," can only be a separator.
func plainStringList(s string) ([]string, bool) {
	if s == "[]" || s == "" || s == "null" {
		return nil, true
	}
	if len(s) < 4 || s[:2] != `["` || s[len(s)-2:] != `"]` || strings.IndexByte(s, '\\') >= 0 {
		return nil, false
	}
	inner := s[2 : len(s)-2] // a","b
	seps := strings.Count(inner, `","`)
	if strings.Count(inner, `"`) != 2*seps { // spaces between elements, say
		return nil, false
	}
	out := make([]string, 0, seps+1)
	for range seps {
		i := strings.Index(inner, `","`)
		out = append(out, inner[:i])
		inner = inner[i+3:]
	}
	return append(out, inner), true
}
