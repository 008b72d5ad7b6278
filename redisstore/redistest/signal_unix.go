//go:build unix

package redistest

import (
	"syscall"
	"testing"
)

// Pause stops the process (SIGSTOP): it keeps its connections but answers
// nothing, like a server stuck or cut off. Resume continues it.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	if s.cmd == nil || s.cmd.Process.Signal(syscall.SIGSTOP) != nil {
		t.Fatalf("redistest: cannot pause %s", s.Addr)
	}
	t.Cleanup(func() {
		if s.cmd != nil {
			_ = s.cmd.Process.Signal(syscall.SIGCONT) // so that Stop's kill is not held up
		}
	})
}

// Resume continues a paused process (SIGCONT).
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if s.cmd == nil || s.cmd.Process.Signal(syscall.SIGCONT) != nil {
		t.Fatalf("redistest: cannot resume %s", s.Addr)
	}
}
