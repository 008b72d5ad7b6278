package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokend/tokend/handlers"
	"github.com/tokend/tokend/tracing"
)

// Option configures a Server beyond its configuration file.
type Option func(*Server)

// WithTracerProvider turns tracing on: a span per HTTP request (tracing.Middleware), one per RPC
// (otelconnect) under it, and Redis calls (redisotel), password and secret hashing and signing
// under those. Without it tracing is off and costs nothing.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(s *Server) { s.tracer = tp }
}

// instrumentRedis adds go-redis's own tracing to the store's client: a span
// per command or pipeline, named by the command, without its arguments
// (they hold token hashes and ids).
func (s *Server) instrumentRedis() error {
	if s.tracer == nil {
		return nil
	}
	if err := redisotel.InstrumentTracing(s.store.Client(), redisotel.WithTracerProvider(s.tracer),
		redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false)); err != nil {
		return fmt.Errorf("tracing: redis: %w", err)
	}
	return nil
}

// interceptors are the Connect interceptors of every service: metrics,
// with tracing on a span per RPC, and innermost the handlers' error table. tracing.Middleware has already taken the
// caller's traceparent, so otelconnect trusts the context it is given and
// extracts nothing itself.
func (s *Server) interceptors() []connect.Interceptor {
	out := []connect.Interceptor{s.metrics.interceptor()}
	if s.tracer != nil {
		otel, err := otelconnect.NewInterceptor(otelconnect.WithTracerProvider(s.tracer), otelconnect.WithoutMetrics(),
			otelconnect.WithTrustRemote(), otelconnect.WithPropagator(propagation.NewCompositeTextMapPropagator()))
		if err != nil {
			s.log.Warn("tracing: no RPC spans", "err", err)
		} else {
			out = append(out, otel)
		}
	}
	return append(out, handlers.ErrorInterceptor(s.log))
}

// traced wraps h in a server span per request when tracing is on.
func (s *Server) traced(h http.Handler) http.Handler {
	if s.tracer == nil {
		return h
	}
	return tracing.Middleware(s.tracer, h)
}

// tracerFromEnv sets up tracing from the OTEL_* environment variables: the
// options to pass to New, and a shutdown that flushes what is left.
func tracerFromEnv(ctx context.Context, getenv func(string) string) ([]Option, func(), error) {
	tp, err := tracing.Setup(ctx, getenv)
	if err != nil || tp == nil {
		return nil, func() {}, err
	}
	return []Option{WithTracerProvider(tp)}, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(sctx)
	}, nil
}
