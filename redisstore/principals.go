package redisstore

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed principals_sync.lua
	principalsSyncSrc    string
	principalsSyncScript = redis.NewScript(principalsSyncSrc)
)

// Kinds of configured principal that SyncConfigured records.
const (
	ConfiguredUsers   = "users"
	ConfiguredClients = "clients"
)

// SyncConfigured records that the configuration now holds exactly ids of
// kind (ConfiguredUsers or ConfiguredClients), and returns, for every id
// that was removed from the configuration before and has come back, when it
// was removed (the last time): whatever was issued to it until then belongs
// to the removed principal and must stay refused. Ids configured all along
// are not in the map. Times are whole seconds of Redis' clock. Atomic (one
// script); every replica may run it at start.
func (s *Store) SyncConfigured(ctx context.Context, kind string, ids []string) (map[string]time.Time, error) {
	if kind != ConfiguredUsers && kind != ConfiguredClients {
		return nil, fmt.Errorf("redisstore: unknown kind of configured principal %q", kind)
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	res, err := s.run(ctx, principalsSyncScript, []string{s.keys.configured(kind)}, args...).StringSlice()
	if err != nil {
		return nil, wrap("record configured "+kind, err)
	}
	since := make(map[string]time.Time, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		sec, err := strconv.ParseInt(res[i+1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redisstore: configured %s: bad time %q", kind, res[i+1])
		}
		since[res[i]] = time.Unix(sec, 0)
	}
	return since, nil
}
