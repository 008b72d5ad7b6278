package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Sentinel errors. Callers test them with errors.Is; redis.Nil never leaves
// the package (it becomes ErrNotFound).
var (
	// ErrNotFound: no such record, or it expired, or the token is malformed.
	ErrNotFound = errors.New("redisstore: not found")
	// ErrReused: a refresh token was presented again after its grace
	// window; its family has been revoked because of it.
	ErrReused = errors.New("redisstore: refresh token reused")
	// ErrRevoked: the record exists but was revoked.
	ErrRevoked = errors.New("redisstore: revoked")
	// ErrLimit: an owner already has as many records as allowed.
	ErrLimit = errors.New("redisstore: limit reached")
	// ErrUnavailable is wrapped into every connection-level failure (dial
	// refused, i/o timeout, pool timeout, closed connection, LOADING,
	// CLUSTERDOWN, a context deadline while talking to Redis): the caller
	// may retry later. Other errors are wrapped with context only.
	ErrUnavailable = errors.New("redisstore: redis unavailable")
	// ErrConflict: a compare-and-set lost to a concurrent writer; read again.
	ErrConflict = errors.New("redisstore: changed concurrently")
)

// IsUnavailable reports whether err means Redis could not be reached
// (errors.Is(err, ErrUnavailable)).
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// Options tune a Store.
type Options struct {
	// Prefix starts every key; default "tokend". It must not contain
	// braces, which would change the keys' Cluster hash tags.
	Prefix string
	// MaxM2MPerOwner is the most live M2M tokens one owner may hold
	// (CreateM2MToken); 0: no limit.
	MaxM2MPerOwner int
	// Durability: how many replicas confirm a revocation before it is
	// acknowledged. The zero value is ReplicasAuto.
	Durability Durability
}

// Fail-fast client settings: while Redis is away calls fail within about a
// second instead of piling up; go-redis reconnects by itself when it returns.
const (
	dialTimeout  = 2 * time.Second
	ioTimeout    = time.Second
	poolTimeout  = time.Second
	maxRetries   = 1
	openPingWait = 2 * time.Second

	// On a Cluster, a call follows at most clusterRedirects MOVED/ASK
	// answers or connection failures, with a short backoff between tries:
	// a slot whose master is down fails in tens of milliseconds, and the
	// slot map reload (reloadHook) finds the promoted replica.
	clusterRedirects  = 2
	clusterMaxBackoff = 64 * time.Millisecond
)

// Store is tokend's state in Redis. Its methods are safe for concurrent use.
type Store struct {
	rdb   redis.UniversalClient
	keys  keys
	owned bool                 // Close closes rdb
	embed *miniredis.Miniredis // embedded server, when Open started one

	batch *batcher // pipelines concurrent requests' scripts together

	maxM2M int // Options.MaxM2MPerOwner

	durability Durability
	replicas   replicas     // masters seen with replicas (ReplicasAuto)
	reloaded   atomic.Int64 // unix ns of the last Cluster slot map reload

	closeOnce sync.Once
	closeErr  error
}

// Open returns a Store over rawURL:
//
//   - "" — an embedded in-memory Redis (miniredis) started in-process, with
//     TTLs that follow the wall clock; Close stops it. Nothing is kept.
//   - "redis://[user:pass@]host:port[/db]", "rediss://…" (TLS), "unix:///path"
//     — one Redis server (redis.ParseURL; its query options apply).
//   - "redis+cluster://[user:pass@]host1:port1,host2:port2[,…]" and
//     "rediss+cluster://…" — Redis Cluster, seeded with those nodes.
//   - "redis+sentinel://[user:pass@]host1:port1,host2:port2[,…]/master[/db]"
//     and "rediss+sentinel://…" — the master that those Sentinels name,
//     followed through failovers (user:pass are the master's; the query's
//     sentinel_username and sentinel_password the Sentinels').
//
// Timeouts are short (dial 2s, read/write 1s, pool 1s, one retry) unless the
// URL sets them. Open pings once but does not fail when Redis is down
// (tokend starts and reports not ready); it fails only for a malformed URL.
// Close releases what Open created.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if rawURL == "" {
		m := miniredis.NewMiniRedis()
		if err := m.Start(); err != nil {
			return nil, fmt.Errorf("redisstore: start embedded redis: %w", err)
		}
		m.ClockTTL(true) // keys expire in real time, as in Redis
		o := &redis.Options{Addr: m.Addr()}
		failFast(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries, &o.DialerRetries, 0)
		opts.Durability.Replicas = ReplicasNone // in-process, no replicas
		s := New(redis.NewClient(o), opts)
		s.owned, s.embed = true, m
		return s, nil
	}
	rdb, err := newClient(rawURL, opts.Durability.timeout())
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	s := New(rdb, opts)
	s.owned = true
	pctx, cancel := context.WithTimeout(ctx, openPingWait)
	defer cancel()
	_ = s.Ping(pctx) // a Redis that is down now is reported by Ping later
	if s.durability.Replicas == ReplicasAuto {
		s.checkReplicas(pctx) // before the first request, now that nodes are known
	}
	return s, nil
}

// New returns a Store over rdb. The caller keeps ownership of rdb: Close
// does not close it. New adds hooks to rdb (the replicas' WAIT and, on a
// Cluster, the slot map reload after failures), so rdb must be fresh: on a
// ClusterClient that has already run commands, the nodes it knows would
// miss the WAIT. New panics if opts is invalid (a brace in Prefix, a
// Durability out of range).
func New(rdb redis.UniversalClient, opts Options) *Store {
	if err := opts.validate(); err != nil {
		panic(err)
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = "tokend"
	}
	s := &Store{rdb: rdb, keys: keys{prefix: prefix}, durability: opts.Durability, maxM2M: opts.MaxM2MPerOwner}
	s.replicas.seen = map[string]bool{}
	s.replicas.nodes = map[string]*redis.Client{}
	s.batch = &batcher{store: s, stop: make(chan struct{})}
	switch c := rdb.(type) {
	case *redis.Client:
		c.AddHook(waitHook{s: s})
	case *redis.ClusterClient:
		c.OnNewNode(func(n *redis.Client) {
			addr := n.Options().Addr
			n.AddHook(waitHook{s: s, addr: addr})
			s.replicas.mu.Lock()
			s.replicas.nodes[addr] = n
			s.replicas.mu.Unlock()
		})
		c.AddHook(reloadHook{c: c, last: &s.reloaded})
	}
	if s.durability.Replicas == ReplicasAuto {
		go s.watchReplicas()
	}
	return s
}

func (o Options) validate() error {
	if o.MaxM2MPerOwner < 0 {
		return fmt.Errorf("redisstore: MaxM2MPerOwner %d must be ≥ 0", o.MaxM2MPerOwner)
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return fmt.Errorf("redisstore: key prefix %q must not contain braces", o.Prefix)
	}
	return o.Durability.validate()
}

// Close releases what Open created: the client and the embedded server.
// For a Store made by New it does nothing. Calling it again is harmless.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.batch.stop)
		if !s.owned {
			return
		}
		s.closeErr = s.rdb.Close()
		if s.embed != nil {
			s.embed.Close()
		}
	})
	return s.closeErr
}

// Ping checks that Redis answers (on Cluster: every known node).
func (s *Store) Ping(ctx context.Context) error {
	if c, ok := s.rdb.(*redis.ClusterClient); ok {
		err := c.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error {
			return n.Ping(ctx).Err()
		})
		return wrap("ping", err)
	}
	return wrap("ping", s.rdb.Ping(ctx).Err())
}

// Embedded reports whether the store runs on the in-process miniredis that
// Open started for an empty URL.
func (s *Store) Embedded() bool { return s.embed != nil }

// Client is the underlying client, for health checks and tests. Whoever
// created the Store owns it.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// newClient builds the client for a non-empty URL without connecting.
// wait is the longest WAIT a pipeline may carry: the read timeout leaves room
// for it.
func newClient(rawURL string, wait time.Duration) (redis.UniversalClient, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, errors.New("invalid Redis URL: want redis://, rediss://, redis+cluster://, rediss+cluster://, redis+sentinel://, rediss+sentinel:// or unix://")
	}
	switch scheme {
	case "redis", "rediss", "unix":
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("invalid Redis URL: %w", redactURLError(err))
		}
		failFast(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries, &o.DialerRetries, wait)
		return redis.NewClient(o), nil
	case "redis+cluster", "rediss+cluster":
		o, err := parseClusterURL(strings.TrimSuffix(scheme, "+cluster"), rest)
		if err != nil {
			return nil, err
		}
		failFast(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries, &o.DialerRetries, wait)
		if o.MaxRedirects == 0 {
			o.MaxRedirects = clusterRedirects
		}
		if o.MaxRetryBackoff == 0 {
			o.MaxRetryBackoff = clusterMaxBackoff
		}
		return redis.NewClusterClient(o), nil
	case "redis+sentinel", "rediss+sentinel":
		o, err := parseSentinelURL(strings.TrimSuffix(scheme, "+sentinel"), rest)
		if err != nil {
			return nil, err
		}
		failFast(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries, &o.DialerRetries, wait)
		return redis.NewFailoverClient(o), nil
	default:
		return nil, fmt.Errorf("invalid Redis URL: unsupported scheme %q (want redis, rediss, redis+cluster, rediss+cluster, redis+sentinel, rediss+sentinel or unix)", scheme)
	}
}

// failFast fills the timeouts a URL left unset with the fail-fast values,
// and makes the read timeout outlast a WAIT of wait.
func failFast(dial, read, write, pool *time.Duration, retries, dialRetries *int, wait time.Duration) {
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{dial, dialTimeout}, {read, ioTimeout}, {write, ioTimeout}, {pool, poolTimeout}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	if *retries == 0 {
		*retries = maxRetries
	}
	if *dialRetries == 0 {
		*dialRetries = 1 // go-redis' default of 5 dials per attempt is slow when refused
	}
	if *read > 0 && *read < wait+ioTimeout/2 {
		*read = wait + ioTimeout/2
	}
}

// parseClusterURL turns "user:pass@h1:p1,h2:p2[/][?opts]" into go-redis'
// cluster URL form ("redis://user:pass@h1:p1?addr=h2:p2&opts").
func parseClusterURL(scheme, rest string) (*redis.ClusterOptions, error) {
	rest, query, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	if path != "" {
		return nil, errors.New("invalid cluster URL: Redis Cluster has no databases; drop the /path")
	}
	userinfo, addrs, hasUser, err := splitHosts("cluster", authority)
	if err != nil {
		return nil, err
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("invalid cluster URL query: %w", err)
	}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	u := scheme + "://"
	if hasUser {
		u += userinfo + "@"
	}
	u += addrs[0]
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	o, err := redis.ParseClusterURL(u)
	if err != nil {
		return nil, fmt.Errorf("invalid cluster URL: %w", redactURLError(err))
	}
	return o, nil
}

// parseSentinelURL turns "user:pass@h1:p1,h2:p2/master[/db][?opts]" (the
// hosts are Sentinels; user:pass authenticate to the master, the query's
// sentinel_username and sentinel_password to the Sentinels) into go-redis'
// failover options.
func parseSentinelURL(scheme, rest string) (*redis.FailoverOptions, error) {
	rest, query, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	master, db, _ := strings.Cut(path, "/")
	if master == "" {
		return nil, errors.New("invalid sentinel URL: no master name: want redis+sentinel://host:port[,host:port]/master-name[/db]")
	}
	if strings.Contains(db, "/") {
		return nil, errors.New("invalid sentinel URL: want /master-name[/db]")
	}
	userinfo, addrs, hasUser, err := splitHosts("sentinel", authority)
	if err != nil {
		return nil, err
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("invalid sentinel URL query: %w", err)
	}
	sentinelUser, sentinelPass := q.Get("sentinel_username"), q.Get("sentinel_password")
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	master, err = url.PathUnescape(master)
	if err != nil {
		return nil, errors.New("invalid sentinel URL: bad master name")
	}
	q.Set("master_name", master)
	if hasUser {
		user, pass, _ := strings.Cut(userinfo, ":")
		if user, err = url.PathUnescape(user); err != nil {
			return nil, errors.New("invalid sentinel URL: bad user name")
		}
		if pass, err = url.PathUnescape(pass); err != nil {
			return nil, errors.New("invalid sentinel URL: bad password")
		}
		q.Set("username", user)
		q.Set("password", pass)
	}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	u := scheme + "://" + addrs[0]
	if db != "" {
		u += "/" + db
	}
	o, err := redis.ParseFailoverURL(u + "?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("invalid sentinel URL: %w", redactURLError(err))
	}
	o.SentinelUsername, o.SentinelPassword = sentinelUser, sentinelPass
	return o, nil
}

// splitHosts splits the authority of a kind ("cluster", "sentinel") of URL
// with several hosts, "[userinfo@]h1:p1,h2:p2", checking each host:port.
func splitHosts(kind, authority string) (userinfo string, addrs []string, hasUser bool, err error) {
	userinfo, hosts, hasUser := strings.Cut(authority, "@")
	if !hasUser {
		userinfo, hosts = "", authority
	}
	if hosts == "" {
		return "", nil, false, fmt.Errorf("invalid %s URL: no hosts", kind)
	}
	addrs = strings.Split(hosts, ",")
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return "", nil, false, fmt.Errorf("invalid %s URL: host %q: want host:port", kind, a)
		}
	}
	return userinfo, addrs, hasUser, nil
}

// redactURLError drops the URL (which may hold a password) from url errors.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// wrap gives err context and classifies it at the store's edge: redis.Nil
// becomes ErrNotFound, connection-level failures wrap ErrUnavailable.
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		return ErrNotFound
	case unavailable(err):
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

// unavailable reports whether err is a failure to reach Redis rather than
// an answer from it.
func unavailable(err error) bool {
	var netErr net.Error
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, redis.ErrClosed),
		errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	for _, prefix := range []string{"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "BUSY"} {
		if redis.HasErrorPrefix(err, prefix) {
			return true
		}
	}
	return false
}

// scriptCall is one script run of a pipeline, or, when script is nil, one
// plain command that cmd queues on the pipeline.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    func(p redis.Pipeliner) redis.Cmder
	write  bool // cmd writes (scripts are always taken to)
}

// command is a scriptCall for a plain read-only command (HGET, SISMEMBER,
// HGETALL...): the batcher lets prechecks ride along with it (see Precheck),
// which a command that writes must not allow.
func command(queue func(p redis.Pipeliner) redis.Cmder) scriptCall { return scriptCall{cmd: queue} }

// writeCommand is a scriptCall for a plain command that writes (one atomic
// command needs no script): it is sent only after every precheck passed.
func writeCommand(queue func(p redis.Pipeliner) redis.Cmder) scriptCall {
	return scriptCall{cmd: queue, write: true}
}

// runPipelined runs calls in one pipeline (on Cluster, one per node), for
// scripts whose keys live in different slots. Like Script.Run, it sends
// EVALSHA and falls back to EVAL for the calls that got NOSCRIPT. The
// result i belongs to calls[i]: a *redis.Cmd for a script, the command's
// own type for a plain command.
func (s *Store) runPipelined(ctx context.Context, calls []scriptCall) ([]redis.Cmder, error) {
	out := make([]redis.Cmder, len(calls))
	// Pipelined's error is the first command's; each command's is read below.
	send := func(idx []int, eval bool) {
		// The scripts that revoke or rotate are marked for waitHook, which
		// ends each node's share of the pipeline with a WAIT for replicas.
		durable := durableSet{}
		pctx := context.WithValue(ctx, durableKey{}, durable)
		_, _ = s.rdb.Pipelined(pctx, func(p redis.Pipeliner) error {
			for _, i := range idx {
				c := calls[i]
				switch {
				case c.script == nil:
					out[i] = c.cmd(p)
				case eval:
					out[i] = c.script.Eval(ctx, p, c.keys, c.args...)
				default:
					out[i] = c.script.EvalSha(ctx, p, c.keys, c.args...)
				}
				if c.script != nil && durableScripts[c.script] {
					durable[out[i]] = struct{}{}
				}
			}
			return nil
		})
	}
	all := make([]int, len(calls))
	for i := range all {
		all[i] = i
	}
	send(all, false)
	var noscript []int
	for i, c := range out {
		if calls[i].script != nil && redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			noscript = append(noscript, i)
		}
	}
	if len(noscript) > 0 {
		send(noscript, true)
	}
	for _, c := range out {
		if err := c.Err(); err != nil {
			return out, err
		}
	}
	return out, nil
}

// do runs one plain read-only command through the batcher, sharing a
// pipeline with other requests' calls, and returns it with its own type:
// the drop-in for s.rdb.HGet(ctx, ...) and the like. The error is the
// command's, or why it got no answer (then the command is the zero C).
func do[C redis.Cmder](ctx context.Context, s *Store, queue func(p redis.Pipeliner) C) (C, error) {
	return one[C](ctx, s, command(func(p redis.Pipeliner) redis.Cmder { return queue(p) }))
}

// doWrite is do for one plain command that writes (SET NX, ZREM...).
func doWrite[C redis.Cmder](ctx context.Context, s *Store, queue func(p redis.Pipeliner) C) (C, error) {
	return one[C](ctx, s, writeCommand(func(p redis.Pipeliner) redis.Cmder { return queue(p) }))
}

func one[C redis.Cmder](ctx context.Context, s *Store, call scriptCall) (C, error) {
	out, err := s.batch.run(ctx, call)
	if len(out) != 1 {
		var none C
		return none, err
	}
	return out[0].(C), err
}

// revoke runs a script that revokes through the batcher, so that it ends
// with the replicas' WAIT (see Durability), without the request's prechecks:
// a revocation is carried out whatever the caller's own token's state.
func (s *Store) revoke(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	out, err := s.batch.send(ctx, []scriptCall{{script: script, keys: keys, args: args}})
	if len(out) == 1 {
		return out[0].(*redis.Cmd)
	}
	c := redis.NewCmd(ctx)
	c.SetErr(err)
	return c
}

// run runs one script through the batcher, sharing a pipeline with other
// requests' calls: the drop-in for script.Run(ctx, s.rdb, keys, args...).
func (s *Store) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	out, err := s.batch.run(ctx, scriptCall{script: script, keys: keys, args: args})
	if len(out) == 1 {
		return out[0].(*redis.Cmd)
	}
	c := redis.NewCmd(ctx)
	c.SetErr(err)
	return c
}
