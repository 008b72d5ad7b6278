package apitoken

import (
	"strings"
	"testing"
	"time"
)

func TestIDForm(t *testing.T) {
	a, b := NewID(), NewID()
	if a == b {
		t.Fatal("two ids are equal")
	}
	for _, id := range []string{a, b} {
		if !ValidID(id) || len(id) != len(idPrefix)+26 {
			t.Fatalf("bad id %q", id)
		}
	}
}

// TestTypeIDVector checks the encoding against the TypeID specification's
// examples (spec/valid.yml).
func TestTypeIDVector(t *testing.T) {
	for want, u := range map[string][16]byte{
		"0123456789abcdefghjkmnpqrs": {0x01, 0x10, 0xc8, 0x53, 0x1d, 0x09, 0x52, 0xd8, 0xd7, 0x3e, 0x11, 0x94, 0xe9, 0x5b, 0x5f, 0x19},
		"01h455vb4pex5vsknk084sn02q": {0x01, 0x89, 0x0a, 0x5d, 0xac, 0x96, 0x77, 0x4b, 0xbc, 0xce, 0xb3, 0x02, 0x09, 0x9a, 0x80, 0x57},
	} {
		if got := encodeSuffix(u); got != want {
			t.Errorf("encodeSuffix(% x) = %q, want %q", u, got, want)
		}
	}
	var zero, max [16]byte
	for i := range max {
		max[i] = 0xff
	}
	if encodeSuffix(zero) != strings.Repeat("0", 26) || encodeSuffix(max) != "7zzzzzzzzzzzzzzzzzzzzzzzzz" {
		t.Fatal("edge encodings wrong")
	}
}

func TestUUIDv7(t *testing.T) {
	u := newUUIDv7(time.UnixMilli(0x0123456789ab))
	if u[6]>>4 != 7 || u[8]>>6 != 2 {
		t.Fatalf("version/variant bits wrong: % x", u)
	}
	if u[0] != 0x01 || u[5] != 0xab {
		t.Fatalf("timestamp not in the first 48 bits: % x", u)
	}
}

func TestSecretRoundTrip(t *testing.T) {
	id := NewID()
	s, err := NewSecret(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != secretLen || !strings.HasPrefix(s, secretPrefix) {
		t.Fatalf("secret %q", s)
	}
	got, err := ParseSecret(s)
	if err != nil || got != id {
		t.Fatalf("ParseSecret = %q, %v; want %q", got, err, id)
	}
	s2, _ := NewSecret(id)
	if s2 == s {
		t.Fatal("two secrets for one id are equal")
	}
}

func TestParseSecretRefuses(t *testing.T) {
	id := NewID()
	s, _ := NewSecret(id)
	flip := func(i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	cases := map[string]string{
		"empty":             "",
		"truncated":         s[:len(s)-1],
		"extended":          s + "a",
		"other prefix":      "ghp_" + s[4:],
		"upper case":        strings.ToUpper(s),
		"typo in random":    flip(len(secretPrefix) + suffixLen + 3),
		"typo in id":        flip(len(secretPrefix) + 5),
		"typo in checksum":  flip(len(s) - 1),
		"invalid character": s[:20] + "u" + s[21:],
		"id only":           id,
	}
	for name, in := range cases {
		if _, err := ParseSecret(in); err == nil {
			t.Errorf("%s: %q accepted", name, in)
		}
	}
	if _, err := NewSecret("api_token_short"); err == nil {
		t.Error("NewSecret accepted a malformed id")
	}
}

func FuzzParseSecret(f *testing.F) {
	s, _ := NewSecret(NewID())
	f.Add(s)
	f.Add("")
	f.Add(secretPrefix)
	f.Add(strings.Repeat("z", secretLen))
	f.Fuzz(func(t *testing.T, in string) {
		id, err := ParseSecret(in)
		if err != nil {
			return
		}
		if !ValidID(id) || !strings.HasPrefix(in, secretPrefix) || len(in) != secretLen {
			t.Fatalf("accepted %q as id %q", in, id)
		}
	})
}

func BenchmarkParseSecret(b *testing.B) {
	s, _ := NewSecret(NewID())
	for b.Loop() {
		if _, err := ParseSecret(s); err != nil {
			b.Fatal(err)
		}
	}
}
