//go:build !unix

package redistest

import "testing"

// Pause needs Unix signals: elsewhere it skips the test.
func (s *Server) Pause(t testing.TB) { t.Skip("redistest: Pause needs SIGSTOP") }

// Resume needs Unix signals: elsewhere it skips the test.
func (s *Server) Resume(t testing.TB) { t.Skip("redistest: Resume needs SIGCONT") }
