// Package tracing sets up OpenTelemetry tracing from the standard OTEL_*
// environment variables, and starts child spans that cost nothing when
// tracing is off.
//
// Tracing is off unless OTEL_TRACES_EXPORTER is "otlp", or it is unset and
// an OTLP endpoint is (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); OTEL_SDK_DISABLED=true turns it off.
// The exporter is OTLP over HTTP/protobuf and reads its own OTEL_EXPORTER_OTLP_*
// variables; the SDK reads OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_TRACES_SAMPLER(_ARG) and OTEL_BSP_*. The W3C traceparent of a
// request is honoured.
package tracing
