package server

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics counts RPCs by procedure and code and times them.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	http     *prometheus.CounterVec
	// clientAuthRefused counts refused client authentications by reason
	clientAuthRefused *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tokend",
			Name:      "rpc_requests_total",
			Help:      "RPCs handled, by procedure and connect code (\"ok\" for success).",
		}, []string{"procedure", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "tokend",
			Name:      "rpc_duration_seconds",
			Help:      "Time to handle an RPC, by procedure.",
			Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"procedure"}),
		http: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tokend",
			Name:      "http_requests_total",
			Help:      "Plain HTTP endpoints (OAuth, well-known documents), by path and status.",
		}, []string{"path", "status"}),
		clientAuthRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tokend",
			Name:      "client_auth_refused_total",
			Help:      "Refused client authentications (a wrong or unknown client secret, or throttled), by reason.",
		}, []string{"reason"}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.http, m.clientAuthRefused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(procedure string, start time.Time, err error) {
	m.requests.WithLabelValues(procedure, codeLabel(err)).Inc()
	m.latency.WithLabelValues(procedure).Observe(time.Since(start).Seconds())
}

// refused counts a request the bearer middleware turned away before any
// handler ran.
func (m *metrics) refused(procedure string, code connect.Code) {
	m.requests.WithLabelValues(procedure, code.String()).Inc()
}

func codeLabel(err error) string {
	if err == nil {
		return "ok"
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code().String()
	}
	return connect.CodeOf(err).String()
}

// interceptor records every unary and server-streaming call.
func (m *metrics) interceptor() connect.Interceptor { return metricsInterceptor{m} }

type metricsInterceptor struct{ m *metrics }

func (i metricsInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		resp, err := next(ctx, req)
		i.m.observe(req.Spec().Procedure, start, err)
		return resp, err
	}
}

func (i metricsInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i metricsInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		i.m.observe(conn.Spec().Procedure, start, err)
		return err
	}
}
