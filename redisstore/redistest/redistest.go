// Package redistest starts real redis-server processes for tests, each on a
// free loopback port in its own temporary directory, never touching a Redis
// the machine already runs.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a redis-server process started for one test.
type Server struct {
	Addr string // 127.0.0.1:port
	URL  string // redis://127.0.0.1:port/0

	t    testing.TB
	bin  string
	args []string
	cmd  *exec.Cmd
}

// Binary returns the path of redis-server, or skips the test when there is
// none — and fails it when CI=true, where a skip would hide missing coverage.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not found in PATH (CI=true requires it): %v", err)
		}
		t.Skipf("redis-server not found in PATH; install Redis to run this test: %v", err)
	}
	return bin
}

// Start starts redis-server with extra args (for example "--appendonly",
// "yes") and stops it when the test ends. By default nothing is persisted.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := Binary(t)
	port := freePort(t)
	dir := t.TempDir()
	base := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "yes", "--logfile", "",
		"--loglevel", "warning",
	}
	s := &Server{
		Addr: fmt.Sprintf("127.0.0.1:%d", port),
		URL:  fmt.Sprintf("redis://127.0.0.1:%d/0", port),
		t:    t, bin: bin, args: append(base, args...),
	}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, s.args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ping(s.Addr) {
			return
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.t.Fatalf("redis-server on %s did not answer PING within 5s", s.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the process (as a crash would) and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port and directory (so an
// append-only file, if enabled, is replayed).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// ping sends an inline PING and waits for +PONG (also false while Redis
// is loading its data).
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

// freePort asks the kernel for a free loopback port.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
