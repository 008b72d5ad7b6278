package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokend/tokend/redisstore/redistest"
)

// testOpenURL checks how Open reads URLs. Hosts are closed loopback ports:
// Open must not fail because Redis is down.
func testOpenURL(t *testing.T) {
	a, b := closedAddr(t), closedAddr(t)
	tests := []struct {
		url     string
		cluster bool
		tls     bool
		addrs   []string
		user    string
		db      int
		wantErr string
	}{
		{url: "redis://" + a + "/3", addrs: []string{a}, db: 3},
		{url: "redis://u:p@" + a, addrs: []string{a}, user: "u"},
		{url: "rediss://" + a + "/0", tls: true, addrs: []string{a}},
		{url: "redis+cluster://" + a + "," + b, cluster: true, addrs: []string{a, b}},
		{url: "rediss+cluster://u:p@" + a + "," + b + "/", cluster: true, tls: true, addrs: []string{a, b}, user: "u"},
		{url: "redis+cluster://" + a + "?read_timeout=3s", cluster: true, addrs: []string{a}},
		{url: "http://" + a, wantErr: "unsupported scheme"},
		{url: a, wantErr: "invalid Redis URL"},
		{url: "redis://" + a + "/x", wantErr: "invalid Redis URL"},
		{url: "redis+cluster://", wantErr: "no hosts"},
		{url: "redis+cluster://" + a + ",", wantErr: "want host:port"},
		{url: "redis+cluster://" + a + "/1", wantErr: "no databases"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			s, err := Open(t.Context(), tt.url, Options{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Open(%q) error = %v, want one containing %q", tt.url, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.url, err)
			}
			defer s.Close()
			if s.Embedded() {
				t.Error("Embedded() for a URL")
			}
			switch c := s.Client().(type) {
			case *redis.ClusterClient:
				o := c.Options()
				if !tt.cluster || strings.Join(o.Addrs, ",") != strings.Join(tt.addrs, ",") ||
					(o.TLSConfig != nil) != tt.tls || o.Username != tt.user {
					t.Errorf("cluster client %v tls=%v user=%q", o.Addrs, o.TLSConfig != nil, o.Username)
				}
				if o.DialTimeout != dialTimeout || o.PoolTimeout != poolTimeout || o.MaxRetries != maxRetries {
					t.Errorf("timeouts not fail-fast: %+v", o)
				}
				if o.MaxRedirects != clusterRedirects || o.MaxRetryBackoff != clusterMaxBackoff {
					t.Errorf("redirects not fail-fast: %d, backoff up to %v", o.MaxRedirects, o.MaxRetryBackoff)
				}
				if strings.Contains(tt.url, "read_timeout=3s") && o.ReadTimeout != 3*time.Second {
					t.Errorf("ReadTimeout = %v, the URL said 3s", o.ReadTimeout)
				}
			case *redis.Client:
				o := c.Options()
				if tt.cluster || o.Addr != tt.addrs[0] || (o.TLSConfig != nil) != tt.tls || o.Username != tt.user || o.DB != tt.db {
					t.Errorf("client %s tls=%v user=%q db=%d", o.Addr, o.TLSConfig != nil, o.Username, o.DB)
				}
				if o.DialTimeout != dialTimeout || o.ReadTimeout != ioTimeout || o.WriteTimeout != ioTimeout ||
					o.PoolTimeout != poolTimeout || o.MaxRetries != maxRetries {
					t.Errorf("timeouts not fail-fast: dial %v read %v write %v pool %v retries %d",
						o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout, o.MaxRetries)
				}
			default:
				t.Fatalf("client type %T", c)
			}
			if err := s.Ping(t.Context()); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Ping to a closed port: %v, want ErrUnavailable", err)
			}
		})
	}
	if _, err := Open(t.Context(), "", Options{Prefix: "a{b}"}); err == nil {
		t.Error("a prefix with braces must be refused")
	}
}

func TestOpenEmbedded(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Embedded() {
		t.Error("Embedded() = false for an empty URL")
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// TTLs run in real time on the embedded server.
	rt, err := s.CreateRefresh(ctx, Session{UserID: "1"}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(120 * time.Millisecond)
	if _, _, err := s.RotateRefresh(ctx, rt.Token, rot(time.Hour, 0)); !errors.Is(err, ErrNotFound) {
		t.Errorf("rotate an expired token on the embedded server: %v, want ErrNotFound", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping after Close: %v, want ErrUnavailable", err)
	}
}

// TestRecoverAfterRestart: while Redis is down calls fail fast with
// ErrUnavailable; when it is back the same Store works again.
func TestRecoverAfterRestart(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	ctx := t.Context()
	s, err := Open(ctx, srv.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rt, err := s.CreateRefresh(ctx, Session{UserID: "7"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	for name, f := range map[string]func() error{
		"Ping": func() error { return s.Ping(ctx) },
		"RotateRefresh": func() error {
			_, _, err := s.RotateRefresh(ctx, rt.Token, rot(time.Hour, 0))
			return err
		},
		"LimitTake": func() error {
			_, err := s.LimitTake(ctx, time.Minute, LimitGroup{Tag: "addr:b", Limits: []Limit{{"user:a", 3}, {"addr", 3}}})
			return err
		},
	} {
		start := time.Now()
		err := f()
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s while Redis is down: %v, want ErrUnavailable", name, err)
		}
		// Generous bound: the point is "not hanging", not a benchmark.
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s took %v while Redis is down", name, d)
		}
	}

	srv.Restart()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	// The append-only file kept the token; the same Store rotates it.
	next, _, err := s.RotateRefresh(ctx, rt.Token, rot(time.Hour, 0))
	if err != nil {
		t.Fatalf("rotate after restart: %v", err)
	}
	if ok, err := s.FamilyActive(ctx, next.FamilyID); !ok || err != nil {
		t.Errorf("FamilyActive after restart = %v, %v", ok, err)
	}
}

func TestNewKeepsClient(t *testing.T) {
	c := newMiniredisClient(t)
	s := New(c, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Errorf("Close of a Store from New closed the caller's client: %v", err)
	}
}

// stringList reads every list as encoding/json does, the plain form and
// the escaped or spaced ones alike.
func TestStringList(t *testing.T) {
	lists := [][]string{nil, {}, {""}, {"api"}, {"read", "write"}, {"", "", ""}, {`q"uote`, "a,b", `","`},
		{"<html>&", `back\slash`, "é 中文"}, {"a\nb", "\u2028"}}
	for _, l := range lists {
		enc, _ := json.Marshal(l)
		for _, s := range []string{string(enc), strings.ReplaceAll(string(enc), ",", ", ")} {
			var want []string
			_ = json.Unmarshal([]byte(s), &want)
			if got := stringList(s); !slices.Equal(got, want) {
				t.Errorf("stringList(%s) = %q, want %q", s, got, want)
			}
		}
	}
	if got := stringList(`["broken`); got != nil {
		t.Errorf("broken list read as %q", got)
	}
}

// TestSentinelURL checks how redis+sentinel:// URLs become go-redis'
// failover options, and that Open takes one without a Sentinel running.
func TestSentinelURL(t *testing.T) {
	tests := []struct {
		url     string
		want    redis.FailoverOptions
		tls     bool
		wantErr string
	}{
		{url: "redis+sentinel://a:26379,b:26380/mymaster",
			want: redis.FailoverOptions{MasterName: "mymaster", SentinelAddrs: []string{"a:26379", "b:26380"}}},
		{url: "rediss+sentinel://u:p%40ss@a:26379/mymaster/3?sentinel_password=sp", tls: true,
			want: redis.FailoverOptions{MasterName: "mymaster", SentinelAddrs: []string{"a:26379"}, Username: "u",
				Password: "p@ss", DB: 3, SentinelPassword: "sp"}},
		{url: "redis+sentinel://a:26379/m?dial_timeout=5s",
			want: redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"a:26379"}, DialTimeout: 5 * time.Second}},
		{url: "redis+sentinel://a:26379", wantErr: "no master name"},
		{url: "redis+sentinel://a:26379/", wantErr: "no master name"},
		{url: "redis+sentinel:///m", wantErr: "no hosts"},
		{url: "redis+sentinel://a/m", wantErr: "want host:port"},
		{url: "redis+sentinel://a:1/m/x", wantErr: "invalid database"},
		{url: "redis+sentinel://a:1/m/1/2", wantErr: "want /master-name[/db]"},
		{url: "redis+sentinel://a:1/m?bogus=1", wantErr: "unexpected option"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			scheme, rest, _ := strings.Cut(tt.url, "://")
			o, err := parseSentinelURL(strings.TrimSuffix(scheme, "+sentinel"), rest)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "p@ss") || strings.Contains(err.Error(), "p%40ss") {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w := tt.want
			if o.MasterName != w.MasterName || !slices.Equal(o.SentinelAddrs, w.SentinelAddrs) || o.Username != w.Username ||
				o.Password != w.Password || o.DB != w.DB || o.SentinelPassword != w.SentinelPassword ||
				o.DialTimeout != w.DialTimeout || (o.TLSConfig != nil) != tt.tls {
				t.Errorf("options %+v, want %+v (tls %v)", o, w, tt.tls)
			}
		})
	}
	a := closedAddr(t)
	s, err := Open(t.Context(), "redis+sentinel://"+a+"/mymaster", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(t.Context()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping with no Sentinel up: %v, want ErrUnavailable", err)
	}
}
