// Command attack runs hostile callers against a tokend on loopback for a
// bounded time, for bench/run's "under attack" row: connections that
// announce a request body and stall (reopened as tokend closes them), a
// stream of gzip decompression bombs, and a client-secret guessing loop
// (from another loopback address, so only the guesser is throttled). At
// the end it prints what it did.
//
//	go run ./bench/attack -url http://127.0.0.1:18080 -duration 15s
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	target := flag.String("url", "http://127.0.0.1:18080", "tokend's base URL (loopback only)")
	duration := flag.Duration("duration", 15*time.Second, "how long to attack")
	stalled := flag.Int("stalled", 100, "connections kept stalled mid-body")
	bombers := flag.Int("bombers", 1, "concurrent senders of decompression bombs")
	guessers := flag.Int("guessers", 1, "concurrent client-secret guessers")
	guessFrom := flag.String("guess-from", "127.0.0.2", "loopback source address of the guessers")
	client := flag.String("client", "bench-m2m", "client id whose secret is guessed")
	flag.Parse()

	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" {
		log.Fatalf("attack: -url %q: want http://loopback:port", *target)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		log.Fatalf("attack: %s is not a loopback address: refusing to send traffic anywhere else", u.Hostname())
	}
	if ip := net.ParseIP(*guessFrom); ip == nil || !ip.IsLoopback() {
		log.Fatalf("attack: -guess-from %s is not a loopback address", *guessFrom)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()

	var st stats
	var wg sync.WaitGroup
	for range *stalled {
		wg.Go(func() { stall(ctx, u.Host, &st) })
	}
	bomb := gzipOfZeros(15 << 20) // ~15 KiB on the wire: inside the login's body limit
	for range *bombers {
		wg.Go(func() { bombs(ctx, *target, bomb, &st) })
	}
	for range *guessers {
		wg.Go(func() { guess(ctx, *target, *guessFrom, *client, &st) })
	}
	wg.Wait()
	fmt.Fprintf(os.Stdout, "attack over %s: %d stalled connections opened (%d closed by tokend), %d bombs (%d refused), %d guesses (%d throttled, %d refused), %d errors\n",
		*duration, st.stallsOpened.Load(), st.stallsClosed.Load(), st.bombs.Load(), st.bombsRefused.Load(),
		st.guesses.Load(), st.throttled.Load(), st.refused.Load(), st.errors.Load())
}

type stats struct {
	stallsOpened, stallsClosed atomic.Int64
	bombs, bombsRefused        atomic.Int64
	guesses, throttled         atomic.Int64
	refused, errors            atomic.Int64
}

// stall keeps one connection stalled: it announces a 1 MB login body,
// sends 15 KiB of it and waits; when tokend answers and closes, it opens
// another.
func stall(ctx context.Context, host string, st *stats) {
	part := strings.Repeat("a", 15<<10)
	var d net.Dialer
	for ctx.Err() == nil {
		conn, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			st.errors.Add(1)
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		st.stallsOpened.Add(1)
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		fmt.Fprintf(conn, "POST /auth.v1.AuthService/Token HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n%s", host, part)
		if _, err := io.Copy(io.Discard, conn); err == nil && ctx.Err() == nil {
			st.stallsClosed.Add(1) // tokend answered and closed
		}
		stop()
		conn.Close()
	}
}

// bombs sends gzip bombs to the login procedure, one after another.
func bombs(ctx context.Context, target string, bomb []byte, st *stats) {
	c := &http.Client{Transport: &http.Transport{}}
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target+"/auth.v1.AuthService/Token", bytes.NewReader(bomb))
		req.Header.Set("Content-Type", "application/proto")
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := c.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				st.errors.Add(1)
			}
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		st.bombs.Add(1)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestEntityTooLarge {
			st.bombsRefused.Add(1)
		}
	}
}

// guess sends M2M CreateToken calls with wrong secrets from the address
// from.
func guess(ctx context.Context, target, from, client string, st *stats) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	for i := 0; ctx.Err() == nil; i++ {
		body := fmt.Sprintf(`{"grant_type":"client_credentials","client_id":%q,"client_secret":"guess-%d","audience":["api"]}`, client, i)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target+"/m2moauthserver.pb.M2MOAuthService/CreateToken", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				st.errors.Add(1)
			}
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		st.guesses.Add(1)
		switch resp.StatusCode {
		case http.StatusTooManyRequests:
			st.throttled.Add(1)
		case http.StatusUnauthorized:
			st.refused.Add(1)
		}
	}
}

func gzipOfZeros(n int) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, len(zeros))
		_, _ = zw.Write(zeros[:k])
		n -= k
	}
	_ = zw.Close()
	return b.Bytes()
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
