package server

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
	"github.com/tokend/tokend/handlers"
)

// Request size limits, sized to the largest legitimate message of each
// procedure (docs/security.md, "Hostile callers"). Every limit is also
// capped by limits.max_request_bytes.
const (
	// defaultBodyLimit bounds every request but the two below: the largest
	// legitimate ones (a client assertion JWT with its form fields, a login,
	// a token request with its audiences and scopes) are a few KiB.
	defaultBodyLimit = 16 << 10
	// idListBodyLimit bounds GetTokens and DeleteTokens, whose id_filter
	// names up to 1000 token ids.
	idListBodyLimit = 128 << 10
	// envelopeBytes is the prefix gRPC and gRPC-Web put before a message.
	envelopeBytes = 5
)

// bodyLimits lists the procedures whose limit is not defaultBodyLimit.
var bodyLimits = map[string]int64{
	m2mpbconnect.M2MOAuthServiceGetTokensProcedure:    idListBodyLimit,
	m2mpbconnect.M2MOAuthServiceDeleteTokensProcedure: idListBodyLimit,
}

// bodyLimit is the largest body accepted on path: its message plus one
// gRPC envelope, capped by ceiling (limits.max_request_bytes).
func bodyLimit(path string, ceiling int64) int64 {
	n, ok := bodyLimits[path]
	if !ok {
		n = defaultBodyLimit
	}
	return min(n+envelopeBytes, ceiling)
}

// bounded gives every request body a size limit (bodyLimit) and a deadline
// (limits.body_timeout from the moment the handler starts): a caller that
// announces a body and stalls, or sends more than its procedure needs, is
// answered and its memory released. The deadline is the connection's read
// deadline on HTTP/1.1 and the stream's on HTTP/2; it is lifted once the
// body has been read to its end, so a server stream's responses can take
// as long as they need. Requests without a body pass untouched.
func bounded(h http.Handler, ceiling int64, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		// Not every ResponseWriter has a connection (httptest's recorder):
		// then only the size limit applies.
		timed := rc.SetReadDeadline(time.Now().Add(timeout)) == nil
		limit := bodyLimit(r.URL.Path, ceiling)
		b := &boundedBody{body: r.Body, rc: rc, timed: timed, left: limit, limit: limit, timeout: timeout}
		if r.ProtoMajor == 1 {
			b.header = w.Header()
		}
		r.Body = b
		h.ServeHTTP(w, r)
	})
}

// boundedBody is a request body with a size limit and a read deadline.
// Its errors are connect errors, which Connect passes to the caller as they
// are: resource_exhausted for too much, deadline_exceeded for too slow.
// Both wrap what the form endpoints test for (http.MaxBytesError,
// os.ErrDeadlineExceeded).
type boundedBody struct {
	body    io.ReadCloser
	rc      *http.ResponseController
	timed   bool
	left    int64 // bytes still allowed
	limit   int64 // bytes allowed in all
	timeout time.Duration
	header  http.Header // HTTP/1.x only: the response's, to close the connection after a failed body
	err     error       // sticky
}

// fail records err and, on HTTP/1.x, closes the connection after the
// answer: the rest of its body will not be read.
func (b *boundedBody) fail(err error) error {
	b.err = err
	if b.header != nil {
		b.header.Set("Connection", "close")
	}
	return err
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1] // one byte more than allowed tells "too large" from "exactly the limit"
	}
	n, err := b.body.Read(p)
	if int64(n) > b.left {
		n = int(b.left)
		return n, b.fail(connect.NewError(connect.CodeResourceExhausted, &bodyError{
			msg:   fmt.Sprintf("request body larger than the %d bytes this procedure accepts", b.limit),
			cause: &http.MaxBytesError{Limit: b.limit},
		}))
	}
	b.left -= int64(n)
	switch {
	case err == io.EOF:
		if b.timed {
			_ = b.rc.SetReadDeadline(time.Time{}) // read in full: a response may stream as long as it needs
			b.timed = false
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return n, b.fail(connect.NewError(connect.CodeDeadlineExceeded, &bodyError{
			msg:   fmt.Sprintf("request body not received within %s", b.timeout),
			cause: err,
		}))
	}
	return n, err
}

func (b *boundedBody) Close() error { return b.body.Close() }

// bodyError is a message for the caller with the underlying cause kept for
// errors.Is / errors.As.
type bodyError struct {
	msg   string
	cause error
}

func (e *bodyError) Error() string { return e.msg }
func (e *bodyError) Unwrap() error { return e.cause }

// cappedGzip is the gzip decompressor Connect uses for requests: it stops
// with an error after max+1 bytes (the procedure's message limit) instead
// of inflating a compressed "bomb" in full (Connect itself reads on to the
// end to report the size).
type cappedGzip struct {
	zr   gzip.Reader
	max  int64
	left int64
}

var errInflated = errors.New("decompressed message is too large")

func (g *cappedGzip) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, errInflated
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, err := g.zr.Read(p)
	g.left -= int64(n)
	return n, err
}

func (g *cappedGzip) Reset(r io.Reader) error {
	g.left = g.max + 1
	return g.zr.Reset(r)
}

func (g *cappedGzip) Close() error { return g.zr.Close() }

// withCappedGzip replaces Connect's gzip with one whose decompression stops
// after max bytes (responses are compressed as before).
func withCappedGzip(max int64) connect.HandlerOption {
	return connect.WithCompression("gzip",
		func() connect.Decompressor { return &cappedGzip{max: max} },
		func() connect.Compressor { return gzip.NewWriter(io.Discard) })
}

// limitOptions are the Connect options of a handler whose largest message
// is limit bytes (defaultBodyLimit or one of bodyLimits, capped by
// limits.max_request_bytes): no decoded message larger, and gzip that stops
// there, so that a compressed bomb costs the inflation of one legitimate
// message at most.
func (s *Server) limitOptions(limit int64) []connect.HandlerOption {
	limit = min(limit, s.cfg.Limits.MaxRequestBytes)
	return []connect.HandlerOption{connect.WithReadMaxBytes(int(limit)), withCappedGzip(limit)}
}

// clientLimit is how client authentications are throttled: every replica
// shares the counters in Redis.
func (s *Server) clientLimit() handlers.ClientLimit {
	return handlers.ClientLimit{
		Limiter:     s.store,
		MaxFailures: s.cfg.ClientAuthThrottle.MaxFailures,
		Window:      s.cfg.ClientAuthThrottle.Window.D(),
		Log:         s.log,
		Refused:     func(reason string) { s.metrics.clientAuthRefused.WithLabelValues(reason).Inc() },
	}
}
