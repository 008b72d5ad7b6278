package redisstore

import (
	"context"
	_ "embed"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// APIToken is an API token's record. The secret itself is never stored:
// SecretHash is its SHA-256.
type APIToken struct {
	ID         string
	Owner      string
	Name       string
	SecretHash []byte
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never
	LastUsedAt time.Time // zero: never
}

var (
	//go:embed apitoken_create.lua
	apiTokenCreateSrc    string
	apiTokenCreateScript = redis.NewScript(apiTokenCreateSrc)

	//go:embed apitoken_index.lua
	apiTokenIndexSrc    string
	apiTokenIndexScript = redis.NewScript(apiTokenIndexSrc)

	//go:embed apitoken_delete.lua
	apiTokenDeleteSrc    string
	apiTokenDeleteScript = redis.NewScript(apiTokenDeleteSrc)

	//go:embed apitoken_touch.lua
	apiTokenTouchSrc    string
	apiTokenTouchScript = redis.NewScript(apiTokenTouchSrc)
)

// CreateAPIToken stores rec and indexes it under its owner. It refuses with
// ErrLimit when the owner already has max live tokens. The index entry is
// added atomically with the count check; the record follows (another slot).
func (s *Store) CreateAPIToken(ctx context.Context, rec APIToken, max int) error {
	if !validID(rec.ID) {
		return fmt.Errorf("redisstore: malformed API token id %q", rec.ID)
	}
	idx := s.keys.apiTokenOwner(rec.Owner)
	added, err := s.run(ctx, apiTokenIndexScript, []string{idx}, rec.ID, rec.CreatedAt.Unix(), max).Int()
	if err == nil && added == 0 {
		// Full: drop index entries whose records expired, and try once more.
		if _, err = s.liveAPITokens(ctx, rec.Owner); err == nil {
			added, err = s.run(ctx, apiTokenIndexScript, []string{idx}, rec.ID, rec.CreatedAt.Unix(), max).Int()
		}
	}
	if err != nil {
		return wrap("index API token", err)
	}
	if added == 0 {
		return ErrLimit
	}
	var expires int64
	if !rec.ExpiresAt.IsZero() {
		expires = rec.ExpiresAt.Unix()
	}
	n, err := s.run(ctx, apiTokenCreateScript, []string{s.keys.apiToken(rec.ID)},
		rec.Owner, rec.Name, hex.EncodeToString(rec.SecretHash), rec.CreatedAt.Unix(), expires).Int()
	if err == nil && n != 1 {
		return fmt.Errorf("redisstore: create API token: id %q already in use", rec.ID)
	}
	if err != nil {
		_, _ = doWrite(ctx, s, func(p redis.Pipeliner) *redis.IntCmd { return p.ZRem(ctx, idx, rec.ID) }) // best effort; listing prunes it otherwise
		return wrap("create API token", err)
	}
	return nil
}

// GetAPIToken returns the record of id in one round trip. Unknown, deleted
// or expired ids are ErrNotFound.
func (s *Store) GetAPIToken(ctx context.Context, id string) (APIToken, error) {
	if !validID(id) {
		return APIToken{}, ErrNotFound
	}
	key := s.keys.apiToken(id)
	c, err := do(ctx, s, func(p redis.Pipeliner) *redis.MapStringStringCmd { return p.HGetAll(ctx, key) })
	if err != nil {
		return APIToken{}, wrap("get API token", err)
	}
	rec, ok := apiTokenFromHash(id, c.Val())
	if !ok || (!rec.ExpiresAt.IsZero() && !time.Now().Before(rec.ExpiresAt)) {
		return APIToken{}, ErrNotFound
	}
	return rec, nil
}

// ListAPITokens returns owner's live tokens (pruning index entries whose
// records are gone).
func (s *Store) ListAPITokens(ctx context.Context, owner string) ([]APIToken, error) {
	recs, err := s.liveAPITokens(ctx, owner)
	return recs, wrap("list API tokens", err)
}

func (s *Store) liveAPITokens(ctx context.Context, owner string) ([]APIToken, error) {
	idx := s.keys.apiTokenOwner(owner)
	index, err := do(ctx, s, func(p redis.Pipeliner) *redis.StringSliceCmd { return p.ZRange(ctx, idx, 0, -1) })
	if err != nil || len(index.Val()) == 0 {
		return nil, err
	}
	ids := index.Val()
	reads := make([]scriptCall, len(ids))
	for i, id := range ids {
		reads[i] = command(func(p redis.Pipeliner) redis.Cmder { return p.HGetAll(ctx, s.keys.apiToken(id)) })
	}
	cmds, err := s.batch.run(ctx, reads...)
	if err != nil {
		return nil, err
	}
	var recs []APIToken
	var gone []any
	now := time.Now()
	for i, c := range cmds {
		rec, ok := apiTokenFromHash(ids[i], c.(*redis.MapStringStringCmd).Val())
		if !ok || rec.Owner != owner || (!rec.ExpiresAt.IsZero() && !now.Before(rec.ExpiresAt)) {
			gone = append(gone, ids[i])
			continue
		}
		recs = append(recs, rec)
	}
	if len(gone) > 0 {
		if _, err := doWrite(ctx, s, func(p redis.Pipeliner) *redis.IntCmd { return p.ZRem(ctx, idx, gone...) }); err != nil {
			return nil, err
		}
	}
	return recs, nil
}

// DeleteAPIToken deletes owner's token id. A token of another owner, or none,
// is ErrNotFound. The ownership check and the delete are one script.
func (s *Store) DeleteAPIToken(ctx context.Context, owner, id string) error {
	if !validID(id) {
		return ErrNotFound
	}
	n, err := s.revoke(ctx, apiTokenDeleteScript, []string{s.keys.apiToken(id)}, owner).Int()
	if err != nil {
		return wrap("delete API token", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	_, err = doWrite(ctx, s, func(p redis.Pipeliner) *redis.IntCmd { return p.ZRem(ctx, s.keys.apiTokenOwner(owner), id) })
	return wrap("unindex API token", err)
}

// TouchAPITokens records last-use times: one script per record (each
// atomic), pipelined. Records that no longer exist are not recreated, and a
// recorded time never moves backwards.
func (s *Store) TouchAPITokens(ctx context.Context, used map[string]time.Time) error {
	calls := make([]scriptCall, 0, len(used))
	for id, t := range used {
		if validID(id) {
			calls = append(calls, scriptCall{script: apiTokenTouchScript, keys: []string{s.keys.apiToken(id)}, args: []any{t.Unix()}})
		}
	}
	if len(calls) == 0 {
		return nil
	}
	_, err := s.batch.run(ctx, calls...)
	return wrap("touch API tokens", err)
}

// validID reports whether id can name a key: ids are made by tokend
// (apitoken.NewID), so anything else is simply not found.
func validID(id string) bool { return len(id) > 0 && len(id) <= 64 && base64url(id) }

func apiTokenFromHash(id string, m map[string]string) (APIToken, bool) {
	if len(m) == 0 || m["owner"] == "" {
		return APIToken{}, false
	}
	hash, err := hex.DecodeString(m["secret_hash"])
	if err != nil {
		return APIToken{}, false
	}
	unix := func(f string) time.Time {
		n, _ := strconv.ParseInt(m[f], 10, 64)
		if n == 0 {
			return time.Time{}
		}
		return time.Unix(n, 0)
	}
	return APIToken{
		ID: id, Owner: m["owner"], Name: m["name"], SecretHash: hash,
		CreatedAt: unix("created"), ExpiresAt: unix("expires"), LastUsedAt: unix("last_used"),
	}, true
}
