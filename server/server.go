package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	connectcors "connectrpc.com/cors"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/cors"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokend/tokend/authn"
	"github.com/tokend/tokend/authz"
	"github.com/tokend/tokend/clientaddr"
	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/dpop"
	"github.com/tokend/tokend/gen/auth/authpbconnect"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
	"github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1/tokenservicev1alpha1connect"
	"github.com/tokend/tokend/handlers"
	"github.com/tokend/tokend/jsoncodec"
	"github.com/tokend/tokend/passhash"
	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/tokens"
)

// Server is one tokend process: every service on one handler.
type Server struct {
	cfg     *config.Config
	log     *slog.Logger
	store   *redisstore.Store
	keys    *tokens.KeySet
	metrics *metrics
	users   *handlers.Users
	clients *handlers.Clients
	addrs   *clientaddr.Resolver // client addresses, behind trusted proxies or not
	handler http.Handler
	inner   http.Handler                    // the mux behind bearer checks, before CORS
	corsed  atomic.Pointer[http.Handler]    // inner behind the current CORS origins (setCORS)
	cert    atomic.Pointer[tls.Certificate] // the current TLS certificate (Reload)
	tracer  trace.TracerProvider            // nil: tracing off
	// background tasks that run while the server serves
	background []func(ctx context.Context)
}

// New opens the store and signing keys named by cfg and builds the handler.
// Close releases the store.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) (*Server, error) {
	for _, w := range cfg.Warnings() {
		log.Warn("doubtful configuration: " + w)
	}
	replicas, err := redisstore.ParseReplicas(cfg.Redis.Durability.Replicas)
	if err != nil {
		return nil, fmt.Errorf("redis.durability.replicas: %w", err)
	}
	store, err := redisstore.Open(ctx, cfg.Redis.URL, redisstore.Options{Durability: redisstore.Durability{
		Replicas: replicas, Timeout: cfg.Redis.Durability.Timeout.D()}, MaxM2MPerOwner: cfg.Tokens.MaxM2MTokensPerOwner})
	if err != nil {
		return nil, fmt.Errorf("redis.url: %w", err)
	}
	if store.Embedded() {
		log.Warn("no redis.url configured: using an embedded in-memory Redis; nothing is kept across restarts")
	}
	s := &Server{cfg: cfg, log: log, store: store, metrics: newMetrics()}
	for _, o := range opts {
		o(s)
	}
	if err := s.instrumentRedis(); err != nil {
		store.Close()
		return nil, err
	}
	if err := s.openKeys(ctx); err != nil {
		store.Close()
		return nil, err
	}
	s.addrs = clientaddr.New(cfg.TrustedPrefixes())
	s.handler = s.traced(noStore(s.addrs.Wrap(
		bounded(s.routes(), cfg.Limits.MaxRequestBytes, cfg.Limits.BodyTimeout.D()))))
	rctx, cancel := context.WithTimeout(ctx, openRecordWait)
	defer cancel()
	if err := s.recordConfiguration(rctx); err != nil {
		log.Warn("could not record the configured users and clients in Redis; calls that need it answer unavailable until it is done", "err", err)
		s.background = append(s.background, s.retryRecordConfiguration)
	}
	return s, nil
}

// openRecordWait bounds New's first try to record the configuration.
const openRecordWait = 2 * time.Second

// recordConfiguration records in Redis which users and clients the
// configuration holds (redisstore.SyncConfigured), so that a removal is
// permanent: an id configured again after a removal starts afresh, and the
// sessions, API tokens and tokens issued to it before stay refused. Until it
// has succeeded, what depends on it answers unavailable.
func (s *Server) recordConfiguration(ctx context.Context) error {
	users, err := s.store.SyncConfigured(ctx, redisstore.ConfiguredUsers, s.users.IDs())
	if err != nil {
		return err
	}
	clients, err := s.store.SyncConfigured(ctx, redisstore.ConfiguredClients, s.clients.IDs())
	if err != nil {
		return err
	}
	s.users.SetComebacks(users)
	s.clients.SetComebacks(clients)
	for kind, back := range map[string]map[string]time.Time{"user": users, "client": clients} {
		for id, since := range back {
			s.log.Info(kind+" configured again after a removal: what it held before stays revoked", "id", id, "since", since)
		}
	}
	return nil
}

// retryRecordConfiguration tries recordConfiguration every second until it
// succeeds (Redis was away at start).
func (s *Server) retryRecordConfiguration(ctx context.Context) {
	every(ctx, time.Second, func() bool {
		rctx, cancel := context.WithTimeout(ctx, openRecordWait)
		defer cancel()
		if err := s.recordConfiguration(rctx); err != nil {
			return true
		}
		s.log.Info("recorded the configured users and clients in Redis")
		return false
	})
}

// every calls f every d until ctx is done or f returns false.
func every(ctx context.Context, d time.Duration, f func() bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !f() {
				return
			}
		}
	}
}

// Store is the server's Redis store.
func (s *Server) Store() *redisstore.Store { return s.store }

// Close releases the store.
func (s *Server) Close() error { return s.store.Close() }

// redisLogger routes go-redis' own reports (dial failures) into the log,
// at debug: every failing call already reports unavailable.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

func loadKeys(cfg *config.Config, log *slog.Logger) (*tokens.KeySet, error) {
	var keys []*tokens.Key
	for i, path := range cfg.Signing.KeyFiles {
		k, err := tokens.LoadKeyFile(path)
		if err != nil {
			return nil, fmt.Errorf("signing.key_files[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		k, err := tokens.GenerateKey("EdDSA")
		if err != nil {
			return nil, fmt.Errorf("generate signing key: %w", err)
		}
		log.Warn("no signing.key_files configured: generated an Ed25519 key; tokens will not verify after a restart", "kid", k.ID())
		keys = append(keys, k)
	}
	ks, err := tokens.NewKeySet(keys...)
	if err != nil {
		return nil, fmt.Errorf("signing.key_files: %w", err)
	}
	return ks, nil
}

// routes builds the mux: every RPC service, health, reflection, the
// well-known documents and metrics, wrapped in bearer checks, CORS and the
// request size limit.
func (s *Server) routes() http.Handler {
	cfg := s.cfg
	minter := tokens.NewMinter(s.keys, cfg.Issuer)
	users := handlers.NewUsers(cfg.Users)
	// One verified-secret cache for every client authentication: only the
	// first call with a secret pays the slow hash.
	clients := handlers.NewClients(cfg.Clients, passhash.NewSecretCache(secretCacheSize, secretCacheTTL))
	clients.Limit(s.clientLimit())
	s.users, s.clients = users, clients
	sessions := handlers.NewSessions(s.store, minter, handlers.SessionPolicy{
		AccessTTL:   cfg.Tokens.AccessTTL.D(),
		RefreshTTL:  cfg.Tokens.RefreshTTL.D(),
		ReuseGrace:  cfg.Tokens.RefreshReuseGrace.D(),
		MaxLifetime: cfg.Tokens.SessionMaxLifetime.D(),
	})
	authV1 := handlers.NewAuthV1(sessions, s.store, handlers.LoginPolicy{
		MaxFailures:        cfg.LoginThrottle.MaxFailures,
		MaxFailuresPerUser: cfg.LoginThrottle.MaxFailuresPerUser,
		Window:             cfg.LoginThrottle.Window.D(),
	}, users, clients, s.log)
	oauth := handlers.NewOAuth(cfg.Limits.MaxRequestBytes, s.log)
	oauth.Handle("password", authV1.PasswordGrant(clients))
	oauth.Handle("refresh_token", authV1.RefreshGrant())
	codes := handlers.NewAuth(s.store, sessions, clients, users, cfg.Tokens.CodeTTL.D(), s.log)
	oauth.Handle("authorization_code", codes.AuthorizationCodeGrant())
	apiTokens := handlers.NewTokenService(s.store, users, minter, handlers.APITokenPolicy{
		AccessTTL:   cfg.Tokens.AccessTTL.D(),
		MaxPerOwner: cfg.Tokens.MaxAPITokensPerOwner,
	}, s.log)
	s.background = append(s.background, func(ctx context.Context) { apiTokens.RecordUsage(ctx, usageFlushEvery) })
	verifier := tokens.NewVerifier(s.keys, cfg.Issuer)
	assertions := handlers.NewAssertions(verifier, cfg.Issuer, s.revoked, s.store, nil)
	m2m := handlers.NewM2M(s.store, clients, assertions, minter, s.log)
	oauth.Handle("client_credentials", m2m.ClientCredentialsGrant())
	s.background = append(s.background, s.sweepM2M)
	endpoints := handlers.NewTokenEndpoints(clients, verifier, s.revoked, s.store, cfg.Limits.MaxRequestBytes, s.log)

	opts := []connect.HandlerOption{
		// Metrics see the code the caller gets: the handlers' errors become
		// that code in handlers.ErrorInterceptor, the innermost, panics
		// included.
		connect.WithInterceptors(s.interceptors()...),
		connect.WithRecover(s.recoverPanic),
		// Compress only what gzip pays for: a token response is a few hundred
		// bytes of base64 that gzip barely shrinks, at a large share of the
		// call's CPU (clients that accept gzip: grpc-go, ghz, browsers).
		connect.WithCompressMinBytes(compressMinBytes),
	}
	opts = append(opts, jsoncodec.HandlerOptions()...)
	small := append(slices.Clip(opts), s.limitOptions(defaultBodyLimit)...)

	mux := http.NewServeMux()
	services := []string{authv1connect.AuthServiceName, tokenservicev1alpha1connect.TokenServiceName}
	mux.Handle(authv1connect.NewAuthServiceHandler(authV1, small...))
	services = append(services, authpbconnect.AuthServiceName)
	mux.Handle(authpbconnect.NewAuthServiceHandler(codes, small...))
	mux.Handle(tokenservicev1alpha1connect.NewTokenServiceHandler(apiTokens, small...))
	services = append(services, m2mpbconnect.M2MOAuthServiceName)
	m2mPath, m2mHandler := m2mpbconnect.NewM2MOAuthServiceHandler(m2m, small...)
	mux.Handle(m2mPath, m2mHandler)
	// The procedures with larger messages (bodyLimits) get a handler of
	// their own, with limits to match; the mux prefers their exact paths.
	for procedure, limit := range bodyLimits {
		_, h := m2mpbconnect.NewM2MOAuthServiceHandler(m2m, append(slices.Clip(opts), s.limitOptions(limit)...)...)
		mux.Handle(procedure, coalesceFlushes(m2mpbconnect.M2MOAuthServiceGetTokensProcedure, h))
	}

	// The procedures of the authorization table need a caller the table
	// allows, whose token nothing has revoked.
	bearer := authn.NewMiddleware(verifier, cfg.Issuer, s.revocation, s.log)
	// GetTokens only reads: its revocation check rides along with its read
	// of the records (one round trip for both).
	bearer.Defer(authz.GetM2MTokens)
	bearer.OnRefused = s.metrics.refused
	proofs := s.dpopChecker()
	bearer.UseDPoP(proofs, s.store.DPoPProofCheck)

	reflector := grpcreflect.NewStaticReflector(services...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector, s.limitOptions(defaultBodyLimit)...))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, s.limitOptions(defaultBodyLimit)...))
	// Health answers are a few bytes: never gzipped (probes poll often).
	mux.Handle(grpchealth.NewHandler(redisChecker{s.store, services}, append(s.limitOptions(defaultBodyLimit), connect.WithCompressMinBytes(compressMinBytes))...))

	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))

	mux.Handle("/oauth/token", s.countHTTP("/oauth/token", oauth))
	mux.Handle("/oauth/introspect", s.countHTTP("/oauth/introspect", http.HandlerFunc(endpoints.Introspect)))
	mux.Handle("/oauth/revoke", s.countHTTP("/oauth/revoke", http.HandlerFunc(endpoints.Revoke)))

	issuer := strings.TrimSuffix(cfg.Issuer, "/")
	mux.Handle("/.well-known/jwks.json", s.jwks())
	doc := discoveryJSON(discovery{
		Issuer:                            issuer,
		JWKSURI:                           issuer + "/.well-known/jwks.json",
		TokenEndpoint:                     issuer + "/oauth/token",
		IntrospectionEndpoint:             issuer + "/oauth/introspect",
		RevocationEndpoint:                issuer + "/oauth/revoke",
		GrantTypesSupported:               oauth.GrantTypes(),
		ResponseTypesSupported:            []string{}, // no authorization endpoint: codes come from auth.AuthService
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		TokenEndpointAuthSigningAlgs:      []string{tokens.AlgEdDSA, tokens.AlgES256, tokens.AlgRS256},
		IntrospectionAuthMethods:          []string{"client_secret_basic", "client_secret_post"},
		RevocationAuthMethods:             []string{"client_secret_basic", "client_secret_post"},
		CodeChallengeMethodsSupported:     []string{"S256"},
		AccessTokenSigningAlgs:            signingAlgs(s.keys),
		DPoPSigningAlgs:                   dpop.Algs,
	})
	mux.Handle("/.well-known/openid-configuration", staticJSON(doc, "300"))
	mux.Handle("/.well-known/oauth-authorization-server", staticJSON(doc, "300"))

	s.inner = proofs.Wrap(bearer.Wrap(mux))
	s.setCORS(cfg.CORS.AllowedOrigins)
	return http.HandlerFunc(s.serveCORS)
}

// revocation returns the revocation checks of c's token, one per source it
// depends on (authz.Sources, the one list of what revokes what): a
// configured user or client answers at once (refused when no longer
// configured); a session, an API token or an M2M token's record is a
// precheck in Redis, all of them settled in one round trip. A malformed
// token is refused.
func (s *Server) revocation(c *tokens.Claims) (redisstore.Gate, bool, error) {
	var gate redisstore.Gate
	var issued time.Time
	if c.IssuedAt != nil {
		issued = c.IssuedAt.Time
	}
	for _, src := range authz.Sources(c) {
		var err error
		switch src.Kind {
		case authz.Session:
			gate = append(gate, s.store.SessionCheck(src.ID))
		case authz.APITokenRecord:
			gate = append(gate, s.store.APITokenCheck(src.ID))
		case authz.M2MRecord:
			gate = append(gate, s.store.M2MCheck(src.Owner, src.ID))
		case authz.User:
			err = s.users.Current(src.ID, issued)
		case authz.Client:
			_, err = s.clients.Current(src.ID, issued)
		case authz.AssertionTrust:
			if !s.clients.Trusts(src.Owner, src.ID) {
				return nil, true, nil
			}
		default:
			return nil, true, nil
		}
		if err != nil {
			if handlers.IsNotSynced(err) {
				return nil, false, err
			}
			return nil, true, nil
		}
	}
	return gate, false, nil
}

// revoked runs every revocation check of c's token: what the bearer check
// refuses, introspection calls inactive and client assertions may not use.
func (s *Server) revoked(ctx context.Context, c *tokens.Claims) (bool, error) {
	gate, refused, err := s.revocation(c)
	if err != nil || refused {
		return refused, err
	}
	return redisstore.Settle(ctx, gate...)
}

// sweepM2M removes expired M2M index and blacklist entries every
// m2mSweepEvery. Every replica runs it; the sweep is idempotent.
func (s *Server) sweepM2M(ctx context.Context) {
	every(ctx, m2mSweepEvery, func() bool {
		if n, err := s.store.SweepM2M(ctx); err != nil {
			s.log.WarnContext(ctx, "M2M sweep", "err", err)
		} else if n > 0 {
			s.log.DebugContext(ctx, "M2M sweep", "removed", n)
		}
		return true
	})
}

func signingAlgs(ks *tokens.KeySet) []string {
	var algs []string
	seen := map[string]bool{}
	for _, k := range ks.Keys() {
		if !seen[k.Alg()] {
			seen[k.Alg()] = true
			algs = append(algs, k.Alg())
		}
	}
	return algs
}

// recoverPanic turns a handler's panic into an error, which
// handlers.ErrorInterceptor logs and answers as internal.
func (s *Server) recoverPanic(_ context.Context, _ connect.Spec, _ http.Header, p any) error {
	return fmt.Errorf("panic in handler: %v", p)
}

// cors allows the configured browser origins to call every RPC, exposing the
// headers Connect, gRPC and gRPC-Web responses carry.
func (s *Server) cors(h http.Handler, origins []string) http.Handler {
	if len(origins) == 0 {
		return h
	}
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: connectcors.AllowedMethods(),
		AllowedHeaders: append(connectcors.AllowedHeaders(), "Authorization", dpop.ProofHeader),
		ExposedHeaders: append(connectcors.ExposedHeaders(), "WWW-Authenticate", dpop.NonceHeader),
		MaxAge:         7200,
	}).Handler(h)
}

// countHTTP counts a plain HTTP endpoint's responses by status.
func (s *Server) countHTTP(path string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		s.metrics.http.WithLabelValues(path, strconv.Itoa(sw.status)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.store.Ping(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("redis unreachable\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// redisChecker answers grpc.health.v1: serving while Redis answers.
type redisChecker struct {
	store    *redisstore.Store
	services []string
}

func (c redisChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	known := req.Service == ""
	for _, svc := range c.services {
		known = known || svc == req.Service
	}
	if !known {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %q", req.Service))
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := c.store.Ping(ctx); err != nil {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}

// Serve serves on ln until ctx is done, then shuts down gracefully: it stops
// accepting, lets in-flight calls finish (up to limits.shutdown_timeout) and
// returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ConnContext:       s.addrs.ConnContext,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		Protocols:         new(http.Protocols),
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: s.cfg.Limits.MaxConcurrentStreams},
	}
	srv.Protocols.SetHTTP1(true)
	tlsOn := s.cfg.TLS.CertFile != ""
	if tlsOn {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLS.CertFile, s.cfg.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		s.cert.Store(&cert)
		// each handshake takes the certificate of the moment: Reload replaces it
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil }}
		srv.Protocols.SetHTTP2(true)
	} else {
		srv.Protocols.SetUnencryptedHTTP2(true)
	}

	bg, stopBackground := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, task := range s.background {
		wg.Go(func() { task(bg) })
	}
	defer func() { stopBackground(); wg.Wait() }()

	errc := make(chan error, 1)
	go func() {
		if tlsOn {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	s.log.Info("serving", "addr", ln.Addr().String(), "tls", tlsOn, "issuer", s.cfg.Issuer)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing in-flight calls", "timeout", s.cfg.Limits.ShutdownTimeout.D().String())
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Limits.ShutdownTimeout.D())
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s.log.Info("stopped")
	return nil
}

// coalesceFlushes holds back the flush Connect does after every message of
// the streaming procedure's responses and hands the real one to the handler
// (handlers.WithStreamFlush), which flushes once per batch. The end of the
// call flushes the rest. Other paths pass through untouched.
func coalesceFlushes(procedure string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if r.URL.Path != procedure || !ok {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(heldFlushWriter{w}, r.WithContext(handlers.WithStreamFlush(r.Context(), f.Flush)))
	})
}

// heldFlushWriter is a ResponseWriter whose Flush does nothing.
type heldFlushWriter struct{ http.ResponseWriter }

func (heldFlushWriter) Flush() {}

// Unwrap lets http.ResponseController reach the real writer.
func (w heldFlushWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
