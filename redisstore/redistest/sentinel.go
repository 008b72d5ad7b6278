package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartReplica starts a redis-server replicating master and waits until its
// link is up (at most 10s). args are passed as with Start.
func StartReplica(t testing.TB, master *Server, args ...string) *Server {
	t.Helper()
	host, port, _ := strings.Cut(master.Addr, ":")
	// A first sync starts at once, not after the default 5 s wait for more
	// replicas (on both: a replica may be promoted and serve the others).
	mc := redis.NewClient(&redis.Options{Addr: master.Addr})
	defer mc.Close()
	if err := mc.ConfigSet(context.Background(), "repl-diskless-sync-delay", "0").Err(); err != nil {
		t.Fatalf("redistest: CONFIG SET on %s: %v", master.Addr, err)
	}
	r := Start(t, append([]string{"--replicaof", host, port, "--repl-diskless-sync-delay", "0"}, args...)...)
	WaitReplicaLink(t, r, 10*time.Second)
	return r
}

// Sentinels is a set of Redis Sentinels started for one test, watching one
// master under the name MasterName.
type Sentinels struct {
	MasterName string
	Nodes      []*Server
	Addrs      []string // host:port of every Sentinel
	URL        string   // redis+sentinel://host1:port1,.../MasterName
}

// StartSentinels starts n Sentinels (quorum n/2+1) watching master, which
// they consider down after downAfter without an answer, and waits until
// each knows the master's replicas (at most 10s).
func StartSentinels(t testing.TB, n int, master *Server, replicas int, downAfter time.Duration) *Sentinels {
	t.Helper()
	const name = "tokendtest"
	host, port, _ := strings.Cut(master.Addr, ":")
	ss := &Sentinels{MasterName: name}
	for range n {
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("sentinel monitor %s %s %s %d\n"+
			"sentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s 5000\n"+
			"sentinel parallel-syncs %s 1\n",
			name, host, port, n/2+1, name, downAfter.Milliseconds(), name, name)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		s := start(t, []string{conf}, "--sentinel")
		ss.Nodes = append(ss.Nodes, s)
		ss.Addrs = append(ss.Addrs, s.Addr)
	}
	ss.URL = "redis+sentinel://" + strings.Join(ss.Addrs, ",") + "/" + name
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range ss.Nodes {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
		for {
			m, err := sc.Master(context.Background(), name).Result()
			if err == nil && m["num-slaves"] == strconv.Itoa(replicas) && m["num-other-sentinels"] == strconv.Itoa(n-1) {
				break
			}
			if time.Now().After(deadline) {
				sc.Close()
				t.Fatalf("redistest: sentinel %s does not see %d replicas and %d other sentinels within 10s: %v %v",
					s.Addr, replicas, n-1, m, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		sc.Close()
	}
	return ss
}

// Master asks the first Sentinel that answers for the master's address.
func (ss *Sentinels) Master(t testing.TB) string {
	t.Helper()
	for _, s := range ss.Nodes {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
		addr, err := sc.GetMasterAddrByName(context.Background(), ss.MasterName).Result()
		sc.Close()
		if err == nil && len(addr) == 2 {
			return addr[0] + ":" + addr[1]
		}
	}
	t.Fatal("redistest: no sentinel answers")
	return ""
}
