package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// tokend reload must not trust the pid file's number: a stale file (tokend killed with
// SIGKILL leaves it; the pid is reused) or one another local user can write
// (pid_file in a shared directory, written 0644 through symlinks) makes the
// operator's `tokend reload` send SIGHUP, whose default action is to end the
// process, to any process. It refuses a pid that is
// not the tokend serving that configuration.
func TestReloadSignalsOnlyTokend(t *testing.T) {
	victim := exec.Command("sleep", "30")
	if err := victim.Start(); err != nil {
		t.Skip("no sleep:", err)
	}
	t.Cleanup(func() { _ = victim.Process.Kill(); _, _ = victim.Process.Wait() })
	pidFile := filepath.Join(t.TempDir(), "tokend.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(victim.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := reload([]string{"--pid-file", pidFile})
	if err == nil {
		st, _ := victim.Process.Wait()
		t.Fatalf("reload signalled pid %d, a sleep process, not tokend (it ended: %v)", victim.Process.Pid, st)
	}
	t.Logf("refused: %v", err)
}
