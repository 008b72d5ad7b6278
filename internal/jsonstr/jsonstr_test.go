package jsonstr

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// Append writes what encoding/json writes, for every kind of character that
// needs care and for random strings of bytes.
func TestAppendMatchesEncodingJSON(t *testing.T) {
	cases := []string{"", "plain", `quote " and \ backslash`, "<a href='x'>&amp;</a>", "tab\tnew\nline\rcr\b\f",
		"\x00\x01\x1f\x7f", "é ü 中文 🙂", "line\u2028para\u2029", "bad \xff utf-8 \xc3", "\xed\xa0\x80 surrogate"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, r.IntN(24))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := Append([]byte("x"), s); string(got[1:]) != string(want) || got[0] != 'x' {
			t.Fatalf("Append(%q) = %s, want %s", s, got[1:], want)
		}
	}
}
