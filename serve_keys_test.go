package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serve without key files and without a key-encryption key refuses to
// start, naming both ways to give it keys.
func TestServeNeedsSigningKeys(t *testing.T) {
	t.Setenv("TOKEND_SIGNING_KEK", "")
	path := filepath.Join(t.TempDir(), "tokend.yaml")
	if err := os.WriteFile(path, []byte("addr: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run([]string{"serve", "--config", path}, nil, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil {
		t.Fatal("serve started without signing keys")
	}
	for _, want := range []string{"signing.key_files", "signing.kek_file", "TOKEND_SIGNING_KEK"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
