package tracing

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestEnabled(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, false},
		{map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false},
	} {
		if got := Enabled(func(k string) string { return tt.env[k] }); got != tt.want {
			t.Errorf("Enabled(%v) = %v, want %v", tt.env, got, tt.want)
		}
	}
}

// Start makes a child only under a recording span, and then one.
func TestStart(t *testing.T) {
	ctx, end := Start(context.Background(), "x")
	end()
	if ctx != context.Background() {
		t.Error("Start without a span changed the context")
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, parent := tp.Tracer("t").Start(context.Background(), "parent")
	_, end = Start(ctx, "child")
	end()
	parent.End()
	if n := len(rec.Ended()); n != 2 {
		t.Fatalf("%d spans ended, want 2", n)
	}
	if rec.Ended()[0].Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Error("the child is not under the parent")
	}
}

// benchKey puts a value in the benchmark's context (a context with values,
// as a request's is).
type benchKey struct{}

// BenchmarkStart is the cost of a hashing or signing span: off (no span in
// the context) and on.
func BenchmarkStart(b *testing.B) {
	b.Run("off", func(b *testing.B) {
		ctx := context.WithValue(context.Background(), benchKey{}, 1)
		b.ReportAllocs()
		for b.Loop() {
			_, end := Start(ctx, "tokens.sign")
			end()
		}
	})
	b.Run("on", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider() // recording, exported nowhere: the cost of the span alone
		ctx, span := tp.Tracer("b").Start(context.Background(), "request")
		defer span.End()
		b.ReportAllocs()
		for b.Loop() {
			_, end := Start(ctx, "tokens.sign")
			end()
		}
	})
}
