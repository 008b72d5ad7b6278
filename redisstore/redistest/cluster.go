package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of redis-server processes started for one test:
// masters only, the 16384 slots split evenly between them.
type Cluster struct {
	Nodes []*Server
	Addrs []string // host:port of every node
	URL   string   // redis+cluster://host1:port1,host2:port2,...
}

// StartCluster starts a cluster of n masters (n ≥ 1; even one node checks
// hash tags, since Cluster refuses scripts whose keys span slots) and waits
// until every node reports cluster_state:ok (at most 10s). args are passed
// to every node, as with Start.
func StartCluster(t testing.TB, n int, args ...string) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("redistest: cluster of %d nodes", n)
	}
	if v := majorVersion(t, Binary(t)); v < 7 {
		// CLUSTER ADDSLOTSRANGE and cluster-port arrived in Redis 7.
		t.Skipf("redistest: a test cluster needs redis-server 7 or later, have %d", v)
	}
	c := &Cluster{}
	var busPorts []int
	for range n {
		busHold, busPort := reservePort(t)
		busHold.release() // redis-server binds it right away
		node := Start(t, append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(busPort), "--cluster-node-timeout", "2000"}, args...)...)
		busPorts = append(busPorts, busPort)
		c.Nodes = append(c.Nodes, node)
		c.Addrs = append(c.Addrs, node.Addr)
	}
	c.URL = "redis+cluster://" + strings.Join(c.Addrs, ",")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clients := make([]*redis.Client, n)
	for i, node := range c.Nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: node.Addr})
		defer clients[i].Close()
	}
	const slots = 16384
	for i, rc := range clients {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if err := rc.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER ADDSLOTSRANGE %d %d on %s: %v", lo, hi, c.Addrs[i], err)
		}
		if i > 0 {
			host, port, _ := strings.Cut(c.Addrs[0], ":")
			// The bus port is not port+10000: name it.
			if err := rc.Do(ctx, "CLUSTER", "MEET", host, port, busPorts[0]).Err(); err != nil {
				t.Fatalf("redistest: CLUSTER MEET: %v", err)
			}
		}
	}
	for _, rc := range clients {
		for {
			info, err := rc.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d\r", n)) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("redistest: cluster on %v not ok within 10s: %v\n%s", c.Addrs, err, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
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
