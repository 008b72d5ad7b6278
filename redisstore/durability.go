package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Durability says how many replicas must confirm a write that revokes or
// rotates (a refresh-token rotation or revocation, a family revocation, an
// authorization code's consumption, an M2M blacklisting, an API token's
// deletion) before the store reports it done. Redis replicates
// asynchronously: a master that crashes before its replicas have a write
// loses it when a replica takes over, and a revoked token would come back.
//
// The store sends WAIT numreplicas timeout at the end of the pipeline that
// carries such writes, on the same connection of the node that took them (on
// a Cluster, once per node of the pipeline): one WAIT covers every write
// before it. When fewer replicas confirm within Timeout the call fails with
// ErrUnavailable — the write may or may not survive a failover, so it is
// not acknowledged. Writes that create records do not wait: a record lost
// in a failover is refused, which is safe.
type Durability struct {
	// Replicas is how many replicas must confirm. ReplicasAuto (the zero
	// value) waits for one replica on every master that has been seen with
	// a connected replica since the store started (checked at Open and every
	// 5 seconds), and for none on a master that never had one (a single
	// development server). ReplicasNone never waits. N > 0 waits for N
	// replicas on every master, with or without replicas attached.
	Replicas int
	// Timeout bounds each WAIT; default DefaultDurabilityTimeout.
	Timeout time.Duration
}

// Durability.Replicas values besides a count.
const (
	ReplicasAuto = 0
	ReplicasNone = -1
)

// DefaultDurabilityTimeout bounds a WAIT when Durability.Timeout is zero.
const DefaultDurabilityTimeout = 200 * time.Millisecond

// maxDurabilityTimeout keeps a WAIT well inside the client's read timeout.
const maxDurabilityTimeout = 5 * time.Second

// replicaCheckEvery is how often ReplicasAuto looks for replicas.
const replicaCheckEvery = 5 * time.Second

// ParseReplicas reads a Durability.Replicas setting: "auto", "none" (or
// "0"), or a count of replicas.
func ParseReplicas(s string) (int, error) {
	switch s {
	case "", "auto":
		return ReplicasAuto, nil
	case "none", "0":
		return ReplicasNone, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 100 {
		return 0, fmt.Errorf("want auto, none or a number of replicas (1-100), have %q", s)
	}
	return n, nil
}

func (d Durability) validate() error {
	if d.Replicas < ReplicasNone || d.Replicas > 100 {
		return fmt.Errorf("redisstore: durability replicas %d out of range", d.Replicas)
	}
	if d.Timeout < 0 || d.Timeout > maxDurabilityTimeout {
		return fmt.Errorf("redisstore: durability timeout %v: want 1ms to %v", d.Timeout, maxDurabilityTimeout)
	}
	return nil
}

func (d Durability) timeout() time.Duration {
	if d.Timeout <= 0 {
		return DefaultDurabilityTimeout
	}
	return max(d.Timeout, time.Millisecond)
}

// errNotDurable marks a write that fewer replicas than required confirmed.
var errNotDurable = fmt.Errorf("%w: replicas did not confirm the write in time", ErrUnavailable)

// durableScripts are the scripts whose writes revoke or rotate: a pipeline
// that carries one ends with a WAIT on the node that ran it. The record of
// the configured users and clients is one of them: lost, a removed id
// configured again would revive what it held.
var durableScripts = map[*redis.Script]bool{
	rotateRefreshScript:  true,
	revokeRefreshScript:  true,
	revokeFamilyScript:   true,
	exchangeCodeScript:   true,
	m2mDeleteScript:      true,
	apiTokenDeleteScript: true,
	principalsSyncScript: true,
	signingSwapScript:    true,
}

// durableSet is the commands of one pipeline that need replicas' WAIT,
// filled before the pipeline is sent and only read after.
type durableSet map[redis.Cmder]struct{}

type durableKey struct{}

// replicas tracks, for ReplicasAuto, the masters seen with replicas: node
// address on a Cluster, "" for a single server or a Sentinel's master.
type replicas struct {
	mu    sync.Mutex
	seen  map[string]bool
	nodes map[string]*redis.Client // a Cluster's node clients by address
}

// want is how many replicas a pipeline on the master at addr waits for.
func (s *Store) want(addr string) int {
	switch r := s.durability.Replicas; {
	case r == ReplicasNone:
		return 0
	case r > 0:
		return r
	}
	s.replicas.mu.Lock()
	defer s.replicas.mu.Unlock()
	if s.replicas.seen[addr] {
		return 1
	}
	return 0
}

// waitHook adds the WAIT to pipelines that carry durable writes. It sits on
// the client that owns the connection — a single server's client, or each
// Cluster node's — so that the WAIT follows the writes on their connection
// wherever go-redis routed (or re-routed, after MOVED) them.
type waitHook struct {
	s    *Store
	addr string // key of Store.want
}

func (waitHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (waitHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h waitHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		set, _ := ctx.Value(durableKey{}).(durableSet)
		if set == nil {
			return next(ctx, cmds)
		}
		// A Cluster retry re-sends a failed node's commands, WAIT included,
		// to wherever they now belong: the new attempt gets its own WAIT.
		cmds = withoutWait(cmds)
		if len(cmds) == 0 { // nothing but a stale WAIT
			return nil
		}
		want := h.s.want(h.addr)
		durable := 0
		for _, c := range cmds {
			if _, ok := set[c]; ok {
				durable++
			}
		}
		if want == 0 || durable == 0 {
			return next(ctx, cmds)
		}
		wait := redis.NewIntCmd(ctx, "wait", want, h.s.durability.timeout().Milliseconds())
		err := next(ctx, append(cmds[:len(cmds):len(cmds)], wait))
		if n, werr := wait.Result(); werr != nil || n < int64(want) {
			for _, c := range cmds {
				if _, ok := set[c]; ok && c.Err() == nil {
					c.SetErr(errNotDurable)
				}
			}
		}
		return err
	}
}

func withoutWait(cmds []redis.Cmder) []redis.Cmder {
	for i, c := range cmds {
		if c.Name() == "wait" {
			out := append(cmds[:i:i], cmds[i+1:]...)
			return withoutWait(out)
		}
	}
	return cmds
}

// watchReplicas records, for ReplicasAuto, which masters have replicas: now
// and every replicaCheckEvery until the store closes.
func (s *Store) watchReplicas() {
	t := time.NewTicker(replicaCheckEvery)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), openPingWait)
		s.checkReplicas(ctx)
		cancel()
		select {
		case <-t.C:
		case <-s.batch.stop:
			return
		}
	}
}

// checkReplicas asks each master (INFO replication) whether replicas are
// connected. It reads the nodes the client already knows rather than
// ForEachMaster, which would reload a Cluster's slot map each time.
func (s *Store) checkReplicas(ctx context.Context) {
	check := func(addr string, c *redis.Client) {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return
		}
		if n, master := connectedReplicas(info); master && n > 0 {
			s.replicas.mu.Lock()
			s.replicas.seen[addr] = true
			s.replicas.mu.Unlock()
		}
	}
	switch c := s.rdb.(type) {
	case *redis.Client:
		check("", c)
	case *redis.ClusterClient:
		s.replicas.mu.Lock()
		nodes := make(map[string]*redis.Client, len(s.replicas.nodes))
		for a, n := range s.replicas.nodes {
			nodes[a] = n
		}
		s.replicas.mu.Unlock()
		var wg sync.WaitGroup
		for a, n := range nodes {
			wg.Go(func() { check(a, n) })
		}
		wg.Wait()
	}
}

// connectedReplicas reads role and connected_slaves from INFO replication.
func connectedReplicas(info string) (n int, master bool) {
	for line := range strings.Lines(info) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "role":
			master = v == "master"
		case "connected_slaves":
			n, _ = strconv.Atoi(v)
		}
	}
	return n, master
}

// Recovery from a Cluster failover. go-redis reloads the slot map on MOVED
// and every few seconds; but after a master dies its clients see only
// refused connections, never MOVED, and would keep calling the dead address
// until the periodic reload. reloadHook reloads the map (at most once per
// reloadEvery) whenever a call fails to reach a node or the cluster reports
// itself down, so tokend follows a promoted replica within a fraction of a
// second of the promotion.
const reloadEvery = 500 * time.Millisecond

type reloadHook struct {
	c    *redis.ClusterClient
	last *atomic.Int64 // unix ns of the last reload
}

func (reloadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil && stale(err) {
			h.reload()
		}
		return err
	}
}

func (h reloadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err != nil {
			for _, c := range cmds {
				if e := c.Err(); e != nil && stale(e) {
					h.reload()
					break
				}
			}
		}
		return err
	}
}

func (h reloadHook) reload() {
	now := time.Now().UnixNano()
	last := h.last.Load()
	if now-last < int64(reloadEvery) || !h.last.CompareAndSwap(last, now) {
		return
	}
	h.c.ReloadState(context.Background()) // asynchronous
}

// stale reports whether err suggests the slot map no longer matches the
// cluster: a node unreachable, or the cluster down or without a master for a
// slot. A replica's refusal to confirm a write (errNotDurable) does not.
func stale(err error) bool {
	if errors.Is(err, errNotDurable) {
		return false
	}
	return unavailable(err)
}
