package server

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	"github.com/tokend/tokend/gen/m2moauthserver/pb/m2mpbconnect"
)

func TestBodyLimitTable(t *testing.T) {
	cases := []struct {
		path    string
		ceiling int64
		want    int64
	}{
		{authv1connect.AuthServiceTokenProcedure, 1 << 20, defaultBodyLimit + envelopeBytes},
		{m2mpbconnect.M2MOAuthServiceDeleteTokensProcedure, 1 << 20, idListBodyLimit + envelopeBytes},
		{m2mpbconnect.M2MOAuthServiceGetTokensProcedure, 1 << 20, idListBodyLimit + envelopeBytes},
		{"/oauth/token", 1 << 20, defaultBodyLimit + envelopeBytes},
		{m2mpbconnect.M2MOAuthServiceDeleteTokensProcedure, 1000, 1000}, // limits.max_request_bytes caps all
	}
	for _, c := range cases {
		if got := bodyLimit(c.path, c.ceiling); got != c.want {
			t.Errorf("bodyLimit(%s, %d) = %d, want %d", c.path, c.ceiling, got, c.want)
		}
	}
	// 1000 ids (DeleteTokens' and GetTokens' maximum) of the longest id
	// tokend issues, each with its 2-byte field header, fit.
	if ids := 1000 * (2 + 36); ids > idListBodyLimit {
		t.Errorf("1000 ids need %d bytes, above the %d limit", ids, idListBodyLimit)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestCappedGzipStopsAtTheLimit reads a bomb (64 MiB of zeros) the way
// Connect does when a message is too large: up to the limit, then on to
// the end to learn the size. The decompressor must stop with an error and
// leave most of the compressed input unread.
func TestCappedGzipStopsAtTheLimit(t *testing.T) {
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 64 {
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()

	src := &countingReader{r: bytes.NewReader(bomb.Bytes())}
	g := &cappedGzip{max: idListBodyLimit}
	if err := g.Reset(src); err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(g, idListBodyLimit+1))
	if err != nil || n != idListBodyLimit+1 {
		t.Fatalf("read %d bytes (%v), want %d", n, err, idListBodyLimit+1)
	}
	if rest, err := io.Copy(io.Discard, g); !errors.Is(err, errInflated) || rest != 0 {
		t.Fatalf("after the limit: %d more bytes, err %v; want 0 and errInflated", rest, err)
	}
	if src.n > int64(bomb.Len())/8 {
		t.Fatalf("read %d of the bomb's %d compressed bytes", src.n, bomb.Len())
	}

	// Reused from Connect's pool, it inflates an honest message in full.
	var small bytes.Buffer
	zw = gzip.NewWriter(&small)
	_, _ = zw.Write([]byte("hello"))
	_ = zw.Close()
	if err := g.Reset(&small); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(g); err != nil || string(b) != "hello" {
		t.Fatalf("got %q, %v", b, err)
	}
}

// TestBodyDeadlineLiftedAfterTheBody: a handler that has read its whole
// body may answer long after the body deadline (a server stream), over
// HTTP/1.1 (where the deadline is the connection's) and HTTP/2.
func TestBodyDeadlineLiftedAfterTheBody(t *testing.T) {
	const timeout = 100 * time.Millisecond
	h := bounded(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-time.After(4 * timeout):
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write([]byte("late answer"))
	}), 1<<20, timeout)
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	for _, h2 := range []bool{false, true} {
		tr := srv.Client().Transport.(*http.Transport).Clone()
		tr.ForceAttemptHTTP2 = h2
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
		resp, err := (&http.Client{Transport: tr}).Post(srv.URL, "text/plain", strings.NewReader("body"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
			t.Fatalf("spoke %s", resp.Proto)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "late answer" {
			t.Fatalf("HTTP/2 %v: got %q, %v; want the late answer", h2, b, err)
		}
	}
}
