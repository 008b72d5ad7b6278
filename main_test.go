package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokend/tokend/passhash"
	"github.com/tokend/tokend/tokens"
)

func TestHashCommand(t *testing.T) {
	for _, args := range [][]string{{"hash"}, {"hash", "--bcrypt"}} {
		var out bytes.Buffer
		if err := run(args, strings.NewReader("s3cret\n"), &out, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		h := strings.TrimSpace(out.String())
		if err := passhash.Verify(h, "s3cret"); err != nil {
			t.Fatalf("%v printed %q, which does not verify the input: %v", args, h, err)
		}
		if strings.Contains(h, "s3cret") {
			t.Fatal("the hash contains the secret")
		}
	}
	if err := run([]string{"hash"}, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("empty input accepted")
	}
}

func TestKeygenCommand(t *testing.T) {
	for _, alg := range []string{"EdDSA", "ES256", "RS256"} {
		var out bytes.Buffer
		if err := run([]string{"keygen", "--alg", alg}, nil, &out, &out); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "k.pem")
		if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := tokens.LoadKeyFile(path)
		if err != nil {
			t.Fatalf("%s: printed key does not load: %v", alg, err)
		}
		if k.Alg() != alg {
			t.Fatalf("keygen --alg %s made a %s key", alg, k.Alg())
		}
	}
	if err := run([]string{"keygen", "--alg", "HS256"}, nil, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("keygen accepted HS256")
	}
}

func TestCommandErrors(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"serve"}, {"serve", "--config", "/nonexistent/tokend.yaml"}} {
		if err := run(args, nil, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokend.yaml")
	if err := os.WriteFile(path, []byte("addr: 127.0.0.1:0\nbogus_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run([]string{"serve", "--config", path}, nil, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "bogus_key") {
		t.Fatalf("error %v does not name the unknown key", err)
	}
}
