package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of redis-server processes started for one test,
// the 16384 slots split evenly between its masters.
type Cluster struct {
	Nodes    []*Server // the masters, as started
	Replicas []*Server // Replicas[i] replicates Nodes[i/r] (r replicas per master)
	Addrs    []string  // host:port of every master
	URL      string    // redis+cluster://host1:port1,host2:port2,... (the masters)
}

// StartCluster starts a cluster of n masters (n ≥ 1; even one node checks
// hash tags, since Cluster refuses scripts whose keys span slots) and waits
// until every node reports cluster_state:ok (at most 10s). args are passed
// to every node, as with Start.
func StartCluster(t testing.TB, n int, args ...string) *Cluster {
	t.Helper()
	return StartClusterReplicas(t, n, 0, args...)
}

// StartClusterReplicas starts a cluster of n masters, each with r replicas,
// and waits until every node reports cluster_state:ok and every replica's
// link to its master is up (at most 20s). Nodes fail over after
// --cluster-node-timeout (2000 ms unless args say otherwise).
func StartClusterReplicas(t testing.TB, n, r int, args ...string) *Cluster {
	t.Helper()
	if n < 1 || r < 0 {
		t.Fatalf("redistest: cluster of %d masters with %d replicas each", n, r)
	}
	if v := majorVersion(t, Binary(t)); v < 7 {
		// CLUSTER ADDSLOTSRANGE and cluster-port arrived in Redis 7.
		t.Skipf("redistest: a test cluster needs redis-server 7 or later, have %d", v)
	}
	c := &Cluster{}
	var busPorts []int
	var all []*Server
	for i := range n * (1 + r) {
		busHold, busPort := reservePort(t)
		busHold.release() // redis-server binds it right away
		node := Start(t, append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(busPort), "--cluster-node-timeout", "2000",
			"--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1"}, args...)...)
		busPorts = append(busPorts, busPort)
		all = append(all, node)
		if i < n {
			c.Nodes = append(c.Nodes, node)
			c.Addrs = append(c.Addrs, node.Addr)
		} else {
			c.Replicas = append(c.Replicas, node)
		}
	}
	c.URL = "redis+cluster://" + strings.Join(c.Addrs, ",")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clients := make([]*redis.Client, len(all))
	for i, node := range all {
		clients[i] = redis.NewClient(&redis.Options{Addr: node.Addr})
		defer clients[i].Close()
	}
	const slots = 16384
	for i, rc := range clients {
		if i < n {
			lo, hi := i*slots/n, (i+1)*slots/n-1
			if err := rc.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
				t.Fatalf("redistest: CLUSTER ADDSLOTSRANGE %d %d on %s: %v", lo, hi, all[i].Addr, err)
			}
		}
		if i > 0 {
			host, port, _ := strings.Cut(all[0].Addr, ":")
			// The bus port is not port+10000: name it.
			if err := rc.Do(ctx, "CLUSTER", "MEET", host, port, busPorts[0]).Err(); err != nil {
				t.Fatalf("redistest: CLUSTER MEET: %v", err)
			}
		}
	}
	known := fmt.Sprintf("cluster_known_nodes:%d\r", len(all))
	for _, rc := range clients {
		waitFor(ctx, t, rc, "every node known", func(info string) bool { return strings.Contains(info, known) })
	}
	for i := range c.Replicas {
		master := clients[i/r]
		id, err := master.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatalf("redistest: CLUSTER MYID: %v", err)
		}
		rc := clients[n+i]
		for {
			// The replica may not have heard of the master's id through
			// gossip yet ("Unknown node").
			err := rc.Do(ctx, "CLUSTER", "REPLICATE", id).Err()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("redistest: CLUSTER REPLICATE on %s: %v", c.Replicas[i].Addr, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, rc := range clients {
		waitFor(ctx, t, rc, "cluster_state:ok", func(info string) bool { return strings.Contains(info, "cluster_state:ok") })
	}
	for i := range c.Replicas {
		WaitReplicaLink(t, c.Replicas[i], 20*time.Second)
	}
	// Every node lists every master's replicas: once gossip has told it
	// each replica's offset, which a master's first PING to its replicas
	// (every second here, not 10) makes non-zero.
	for _, rc := range clients {
		for {
			//lint:ignore SA1019 CLUSTER SLOTS answers on every Redis tokend supports (≥ 5); CLUSTER SHARDS needs 7
			slots, err := rc.ClusterSlots(ctx).Result()
			if err == nil && len(slots) == n && !slices.ContainsFunc(slots, func(s redis.ClusterSlot) bool { return len(s.Nodes) != 1+r }) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("redistest: cluster node %s does not list every replica in time: %v %v", rc.Options().Addr, slots, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}

func waitFor(ctx context.Context, t testing.TB, rc *redis.Client, what string, ok func(info string) bool) {
	t.Helper()
	for {
		info, err := rc.ClusterInfo(ctx).Result()
		if err == nil && ok(info) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("redistest: cluster node %s: not %s in time: %v\n%s", rc.Options().Addr, what, err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitReplicaLink waits until the replica s reports its link to its master
// up (INFO replication: master_link_status:up), failing the test after d.
func WaitReplicaLink(t testing.TB, s *Server, d time.Duration) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer rc.Close()
	deadline := time.Now().Add(d)
	for {
		info, err := rc.Info(context.Background(), "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: replica %s: link to its master not up within %v: %v\n%s", s.Addr, d, err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Role is the node's role from ROLE ("master", "slave", "sentinel"), or ""
// when it does not answer.
func (s *Server) Role() string {
	rc := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rc.Close()
	v, err := rc.Do(context.Background(), "ROLE").Slice()
	if err != nil || len(v) == 0 {
		return ""
	}
	role, _ := v[0].(string)
	return role
}

// MasterFor returns the master that holds key's slot, asking the first node
// that answers, and the replica of that master among c.Replicas (nil when
// it has none).
func (c *Cluster) MasterFor(t testing.TB, key string) (master, replica *Server) {
	t.Helper()
	all := append(append([]*Server{}, c.Nodes...), c.Replicas...)
	for _, n := range all {
		if n.cmd == nil {
			continue
		}
		rc := redis.NewClient(&redis.Options{Addr: n.Addr})
		slot, err := rc.ClusterKeySlot(context.Background(), key).Result()
		var slots []redis.ClusterSlot
		if err == nil {
			//lint:ignore SA1019 CLUSTER SLOTS answers on every Redis tokend supports (≥ 5); CLUSTER SHARDS needs 7
			slots, err = rc.ClusterSlots(context.Background()).Result()
		}
		rc.Close()
		if err != nil {
			continue
		}
		for _, r := range slots {
			if int64(r.Start) > slot || int64(r.End) < slot {
				continue
			}
			for _, s := range all {
				if s.Addr == r.Nodes[0].Addr {
					master = s
				}
			}
			for _, rn := range r.Nodes[1:] {
				for _, s := range all {
					if s.Addr == rn.Addr {
						replica = s
					}
				}
			}
			if master == nil {
				t.Fatalf("redistest: slot %d's master %s is none of this cluster's nodes", slot, r.Nodes[0].Addr)
			}
			return master, replica
		}
	}
	t.Fatalf("redistest: no node of the cluster answers CLUSTER SLOTS for %q", key)
	return nil, nil
}

// majorVersion runs "redis-server --version" ("Redis server v=7.0.15 ...").
func majorVersion(t testing.TB, bin string) int {
	t.Helper()
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("redistest: %s --version: %v", bin, err)
	}
	_, v, _ := strings.Cut(string(out), "v=")
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		t.Fatalf("redistest: cannot read the version in %q", out)
	}
	return n
}
