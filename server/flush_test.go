package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokend/tokend/handlers"
)

// flushCounter counts the flushes that reach the real writer.
type flushCounter struct {
	*httptest.ResponseRecorder
	n int
}

func (f *flushCounter) Flush() { f.n++; f.ResponseRecorder.Flush() }

// On the streaming procedure, the per-message flushes of Connect are held
// back and only the handler's own (per batch) flush goes through; other
// paths flush as they always did.
func TestCoalesceFlushes(t *testing.T) {
	const proc = "/pkg.Service/Stream"
	h := coalesceFlushes(proc, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 3 { // three messages, each flushed by Connect
			_, _ = w.Write([]byte("msg"))
			w.(http.Flusher).Flush()
		}
		handlersFlush(r) // the end of a batch
	}))
	for _, tt := range []struct {
		path string
		want int
	}{{proc, 1}, {"/pkg.Service/Other", 3}} {
		w := &flushCounter{ResponseRecorder: httptest.NewRecorder()}
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, tt.path, nil))
		if w.n != tt.want || w.Body.String() != "msgmsgmsg" {
			t.Errorf("%s: %d flushes, body %q; want %d flushes and every message", tt.path, w.n, w.Body, tt.want)
		}
	}
}

// handlersFlush does what handlers' streams do after a batch.
func handlersFlush(r *http.Request) { handlers.FlushStream(r.Context()) }
