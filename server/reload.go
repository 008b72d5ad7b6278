package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/redisstore"
)

// RunFile serves cfg until ctx is done (SIGTERM/SIGINT in main), then shuts
// down gracefully. With path set (cfg was read from it) it re-reads path on
// SIGHUP (Reload), from the start: a SIGHUP while tokend starts is not the
// signal's default, the end of the process. When cfg names a pid_file it
// writes its process id there (for tokend reload) and removes it on the way
// out.
func RunFile(ctx context.Context, path string, cfg *config.Config, log *slog.Logger) error {
	var hup chan os.Signal
	if path != "" {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	// go-redis logs through one process-wide logger: set here, where the
	// process is run, not in New, which tests call many times.
	goredis.SetLogger(redisLogger{log})
	opts, shutdown, err := tracerFromEnv(ctx, os.Getenv)
	if err != nil {
		return err
	}
	defer shutdown()
	s, err := New(ctx, cfg, log, opts...)
	if err != nil {
		return err
	}
	defer s.Close()
	if cfg.PIDFile != "" {
		if err := os.WriteFile(cfg.PIDFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return fmt.Errorf("pid_file: %w", err)
		}
		defer os.Remove(cfg.PIDFile)
	}
	if hup != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
					_ = s.Reload(ctx, path)
				}
			}
		}()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	return s.Serve(ctx, ln)
}

// reloadWait bounds how long a reload may wait for Redis to record the new
// lists of users and clients.
const reloadWait = 5 * time.Second

// Reload re-reads the configuration file at path and applies what can
// change while tokend runs: users, clients (with their secrets), CORS
// origins, and the TLS certificate and key (new handshakes use them). It
// changes nothing when the file fails validation (every problem is
// logged), when the TLS files do not load, or when Redis cannot record the
// new lists (a removal must be permanent before it is applied: redisstore.SyncConfigured).
// Settings that need a restart are logged as ignored. A user or client no
// longer listed is refused at once, and so is everything issued to it.
func (s *Server) Reload(ctx context.Context, path string) error {
	next, err := config.Load(path, os.Getenv)
	if err == nil && next.TLS.Enabled() != s.cfg.TLS.Enabled() {
		err = errors.New("tls: turning TLS on or off needs a restart")
	}
	var cert *tls.Certificate
	if err == nil && next.TLS.Enabled() {
		c, lerr := tls.LoadX509KeyPair(next.TLS.CertFile, next.TLS.KeyFile)
		if lerr != nil {
			err = fmt.Errorf("tls.cert_file, tls.key_file: %w", lerr)
		}
		cert = &c
	}
	var users, clients map[string]time.Time
	if err == nil {
		rctx, cancel := context.WithTimeout(ctx, reloadWait)
		users, clients, err = s.syncConfigured(rctx, next)
		cancel()
	}
	if err != nil {
		s.log.Error("configuration reload refused: nothing changed", "event", "config.reload_refused", "file", path,
			"problems", strings.Split(err.Error(), "\n"))
		return err
	}

	s.users.Replace(next.Users)
	s.clients.Replace(next.Clients)
	s.users.SetComebacks(users)
	s.clients.SetComebacks(clients)
	s.setCORS(next.CORS.AllowedOrigins)
	if cert != nil {
		s.cert.Store(cert)
	}
	ignored := ignoredChanges(s.cfg, next)
	for _, key := range ignored {
		s.log.Warn("configuration reload: "+key+" changed; it takes effect at the next restart", "key", key)
	}
	s.log.Info("configuration reloaded", "event", "config.reloaded", "file", path, "users", len(next.Users),
		"clients", len(next.Clients), "cors_origins", len(next.CORS.AllowedOrigins), "tls", cert != nil, "ignored_until_restart", ignored)
	return nil
}

// syncConfigured records next's users and clients in Redis (see
// recordConfiguration) and returns who came back after a removal.
func (s *Server) syncConfigured(ctx context.Context, next *config.Config) (users, clients map[string]time.Time, err error) {
	var userIDs, clientIDs []string
	for _, u := range next.Users {
		userIDs = append(userIDs, strconv.FormatUint(uint64(u.ID), 10))
	}
	for _, c := range next.Clients {
		clientIDs = append(clientIDs, c.ID)
	}
	if users, err = s.store.SyncConfigured(ctx, redisstore.ConfiguredUsers, userIDs); err != nil {
		return nil, nil, fmt.Errorf("redis: record the configured users: %w", err)
	}
	if clients, err = s.store.SyncConfigured(ctx, redisstore.ConfiguredClients, clientIDs); err != nil {
		return nil, nil, fmt.Errorf("redis: record the configured clients: %w", err)
	}
	return users, clients, nil
}

// ignoredChanges lists the top-level keys whose change a reload does not
// apply (everything but users, clients, cors and tls).
func ignoredChanges(old, next *config.Config) []string {
	var out []string
	ov, nv := reflect.ValueOf(*old), reflect.ValueOf(*next)
	for i := range ov.NumField() {
		f := ov.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "users", "clients", "cors", "tls", "-", "":
			continue
		}
		if !reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			out = append(out, name)
		}
	}
	return out
}

// setCORS makes origins the browser origins allowed from now on.
func (s *Server) setCORS(origins []string) {
	h := s.cors(s.inner, origins)
	s.corsed.Store(&h)
}

// serveCORS serves through the current CORS wrapper (setCORS).
func (s *Server) serveCORS(w http.ResponseWriter, r *http.Request) {
	(*s.corsed.Load()).ServeHTTP(w, r)
}
