package handlers

import "context"

// Connect flushes a streaming response after every message. A server that
// coalesces those flushes (server wraps the response writer of GetTokens)
// hands the real flush down in the context, and a handler that sends
// messages in batches calls FlushStream after each batch: one write system
// call per batch instead of one per message, and the client still gets each
// batch as soon as it is read.

type flushKey struct{}

// WithStreamFlush returns ctx carrying flush, the real flush of a response
// whose per-message flushes are held back.
func WithStreamFlush(ctx context.Context, flush func()) context.Context {
	return context.WithValue(ctx, flushKey{}, flush)
}

// FlushStream sends what the stream has buffered, if ctx carries a flush.
func FlushStream(ctx context.Context) {
	if f, ok := ctx.Value(flushKey{}).(func()); ok {
		f()
	}
}
