// Package redistest starts real redis-server processes for tests, each on a
// free loopback port in its own temporary directory, never touching a Redis
// the machine already runs (such as one on port 6379).
package redistest

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a redis-server process started for one test on a free loopback
// port, in t.TempDir(), killed in t.Cleanup.
type Server struct {
	Addr string // 127.0.0.1:port
	URL  string // redis://127.0.0.1:port/0

	t    testing.TB
	bin  string
	dir  string
	port int
	args []string

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	hold *portHold     // keeps the port while the server is stopped
}

// Binary returns the path of redis-server from PATH. If there is none, it
// skips the test — and fails it when CI=true, where a skip would hide
// missing coverage.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not found (CI=true requires it): %v", err)
		}
		t.Skipf("redis-server not found: %v; install Redis to run this test", err)
	}
	return bin
}

// Start starts redis-server with extra args (for example "--appendonly",
// "yes") and waits until it answers PING (at most 5s). Unless args say
// otherwise nothing is persisted (--save "" --appendonly no). It always
// listens on 127.0.0.1 and a free port; t.Cleanup kills it.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return start(t, nil, args...)
}

// start is Start with pre before the usual arguments (a configuration
// file, which redis-server wants first).
func start(t testing.TB, pre []string, args ...string) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	s := &Server{t: t, bin: bin, dir: dir}
	t.Cleanup(func() {
		s.Stop()
		s.hold.release()
	})
	for attempt := 0; ; attempt++ {
		s.hold, s.port = reservePort(t)
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		s.URL = fmt.Sprintf("redis://127.0.0.1:%d/0", s.port)
		base := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", dir,
			"--logfile", "redis.log", "--loglevel", "notice", "--protected-mode", "yes"}
		base = append(slices.Clip(pre), base...)
		if !slices.Contains(args, "--save") && !slices.Contains(args, "--sentinel") {
			base = append(base, "--save", "")
		}
		if !slices.Contains(args, "--appendonly") && !slices.Contains(args, "--sentinel") {
			base = append(base, "--appendonly", "no")
		}
		s.args = append(base, args...)
		err := s.start()
		if err == nil {
			return s
		}
		// Someone took the port between reservation and bind: another one.
		if attempt < 3 && strings.Contains(s.log(), "Address already in use") {
			_ = os.Remove(filepath.Join(dir, "redis.log"))
			continue
		}
		t.Fatal(err)
	}
}

// start runs the server on s.port and waits for PING.
func (s *Server) start() error {
	s.hold.release() // hand the port to redis-server
	s.hold = nil
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(5 * time.Second)
	for !ping(s.Addr) {
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("redis-server on %s exited at start:\n%s", s.Addr, s.log())
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("redis-server on %s did not answer PING within 5s:\n%s", s.Addr, s.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// Stop kills the process with SIGKILL, as a crash would, and waits for it to
// exit. The port stays reserved to this Server (bound, not listening, so
// clients are refused at once) until Restart or the end of the test.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
	if s.hold == nil {
		s.hold = holdPort(s.port) // best effort: nil if it cannot be bound
	}
}

// Restart starts the server again on the same port and directory (so an
// append-only file, if enabled, is replayed) and waits for PING. A running
// server is stopped first.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Server) log() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		return "(no redis.log: " + err.Error() + ")"
	}
	return string(b)
}

// ping sends an inline PING and waits for +PONG (false while Redis is
// still loading its data).
func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// reservePort picks a free loopback port and holds it (bound, not
// listening) until the server starts. Where it can, it picks below the
// kernel's ephemeral range, so that the port is not taken by the local end
// of some client connection in the moment between release and bind.
func reservePort(t testing.TB) (*portHold, int) {
	t.Helper()
	if canHold {
		for range 200 {
			port := 20000 + rand.IntN(12000) // below Linux's default 32768-60999
			if h := bind(port, false); h != nil {
				return h, port
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return nil, l.Addr().(*net.TCPAddr).Port
}
