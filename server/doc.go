// Package server assembles the tokend process: configuration, signing keys,
// the Redis store, handlers, bearer-token middleware, one http.ServeMux
// serving Connect, gRPC and gRPC-Web (HTTP/1.1, h2c, or TLS), CORS, health,
// reflection, the well-known documents, Prometheus metrics, structured logs
// and graceful shutdown.
package server
