package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	ErrNotFound    = errors.New("redisstore: not found")
	ErrReused      = errors.New("redisstore: refresh token reused")
	ErrRevoked     = errors.New("redisstore: revoked")
	ErrLimit       = errors.New("redisstore: limit reached")
	ErrUnavailable = errors.New("redisstore: redis unavailable")
)

// Options tune a Store.
type Options struct {
	// Prefix starts every key; default "tokend".
	Prefix string
}

// Store is tokend's state in Redis. Its methods are safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	keys   keys
	owned  bool                 // Close closes rdb
	embed  *miniredis.Miniredis // embedded server, when Open started one
	closed bool
	// stopClock stops the goroutine that moves the embedded server's TTLs
	// forward with real time.
	stopClock func()
}

// Open returns a Store over url:
//
//   - "" — an embedded in-memory Redis (miniredis), stopped by Close;
//   - "redis://[user:pass@]host:port[/db]", "rediss://…" (TLS), "unix:///path";
//   - "redis+cluster://[user:pass@]host1:port1,host2:port2[/]" or
//     "rediss+cluster://…" — Redis Cluster.
//
// Timeouts are short so that calls fail fast while Redis is away; go-redis
// reconnects by itself when it returns. Open does not fail when Redis is
// down (tokend starts and reports not ready), only when url is malformed.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	if rawURL == "" {
		m := miniredis.NewMiniRedis()
		if err := m.Start(); err != nil {
			return nil, fmt.Errorf("start embedded redis: %w", err)
		}
		s := New(redis.NewClient(&redis.Options{Addr: m.Addr()}), opts)
		s.owned, s.embed = true, m
		s.stopClock = runClock(m)
		return s, nil
	}
	rdb, err := newClient(rawURL)
	if err != nil {
		return nil, err
	}
	s := New(rdb, opts)
	s.owned = true
	return s, nil
}

// runClock makes the embedded server's keys expire in real time: miniredis
// only moves TTLs when told to, so tell it every 100 ms.
func runClock(m *miniredis.Miniredis) (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		last := time.Now()
		m.SetTime(last)
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				m.SetTime(now)
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return func() { close(done) }
}

func newClient(rawURL string) (redis.UniversalClient, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, errors.New("not a URL (want redis://, rediss://, redis+cluster:// or unix://)")
	}
	switch scheme {
	case "redis", "rediss", "unix":
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("invalid Redis URL: %w", redactURLError(err))
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = 2*time.Second, time.Second, time.Second, time.Second
		o.MaxRetries = 1
		return redis.NewClient(o), nil
	case "redis+cluster", "rediss+cluster":
		o, err := parseClusterURL(strings.TrimSuffix(scheme, "+cluster"), rest)
		if err != nil {
			return nil, err
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = 2*time.Second, time.Second, time.Second, time.Second
		o.MaxRetries = 1
		return redis.NewClusterClient(o), nil
	default:
		return nil, fmt.Errorf("unsupported scheme %q (want redis, rediss, redis+cluster, rediss+cluster or unix)", scheme)
	}
}

// parseClusterURL turns "user:pass@h1:p1,h2:p2/?opts" into go-redis's
// cluster URL form ("redis://user:pass@h1:p1?addr=h2:p2&opts").
func parseClusterURL(scheme, rest string) (*redis.ClusterOptions, error) {
	authority, tail, _ := strings.Cut(rest, "/")
	userinfo, hosts, hasUser := strings.Cut(authority, "@")
	if !hasUser {
		userinfo, hosts = "", authority
	}
	addrs := strings.Split(hosts, ",")
	if len(addrs) == 0 || addrs[0] == "" {
		return nil, errors.New("cluster URL names no hosts")
	}
	q := url.Values{}
	if _, query, ok := strings.Cut(tail, "?"); ok {
		var err error
		if q, err = url.ParseQuery(query); err != nil {
			return nil, fmt.Errorf("invalid cluster URL query: %w", err)
		}
	}
	for _, a := range addrs[1:] {
		if a == "" {
			return nil, errors.New("cluster URL has an empty host")
		}
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

// redactURLError drops the URL (which may hold a password) from url errors.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// New returns a Store over rdb. The caller keeps ownership of rdb.
func New(rdb redis.UniversalClient, opts Options) *Store {
	prefix := opts.Prefix
	if prefix == "" {
		prefix = "tokend"
	}
	return &Store{rdb: rdb, keys: keys{prefix: prefix}}
}

// Close releases what Open created: the client and the embedded server.
func (s *Store) Close() error {
	if s.closed || !s.owned {
		return nil
	}
	s.closed = true
	err := s.rdb.Close()
	if s.embed != nil {
		s.stopClock()
		s.embed.Close()
	}
	return err
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	return wrap("ping", s.rdb.Ping(ctx).Err())
}

// Embedded reports whether the store runs on the in-process miniredis.
func (s *Store) Embedded() bool { return s.embed != nil }

// Client is the underlying client.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// wrap gives err context and classifies it: redis.Nil becomes ErrNotFound,
// connection-level failures wrap ErrUnavailable.
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		return ErrNotFound
	case isUnavailable(err):
		return fmt.Errorf("%s: %w (%w)", op, ErrUnavailable, err)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

func isUnavailable(err error) bool {
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
	for _, prefix := range []string{"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY"} {
		if redis.HasErrorPrefix(err, prefix) {
			return true
		}
	}
	return false
}
