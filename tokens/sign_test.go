package tokens

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestSignHeaderAndPayload(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			k := testKey(t, alg, 0)
			c := testClaims(now())
			tok := mustSign(t, mustKeySet(t, k), c)
			parts := strings.Split(tok, ".")
			if len(parts) != 3 {
				t.Fatalf("token has %d parts", len(parts))
			}
			hdr := must(base64.RawURLEncoding.DecodeString(parts[0]))
			want := `{"alg":"` + alg + `","typ":"at+jwt","kid":"` + k.ID() + `"}`
			if string(hdr) != want {
				t.Errorf("header = %s, want %s", hdr, want)
			}
			payload := string(must(base64.RawURLEncoding.DecodeString(parts[1])))
			if !strings.Contains(payload, `"aud":["api"]`) {
				t.Errorf("a single audience is not an array: %s", payload)
			}
			if !strings.Contains(payload, `"exp":1772367300,`) {
				t.Errorf("exp is not integer seconds: %s", payload)
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	ks := mustKeySet(t, testKey(t, AlgEdDSA, 0))
	with := func(f func(*Claims)) *Claims { c := testClaims(now()); f(c); return c }
	tests := []struct {
		name    string
		c       *Claims
		wantErr string
	}{
		{"nil claims", nil, "nil claims"},
		{"kind missing", with(func(c *Claims) { c.Kind = "" }), "kind missing"},
		{"unknown kind", with(func(c *Claims) { c.Kind = "admin" }), "unknown kind"},
		{"user with name as sub", with(func(c *Claims) { c.Subject = "alice" }), "decimal user id"},
		{"user with padded id", with(func(c *Claims) { c.Subject = "042" }), "decimal user id"},
		{"user without sub", with(func(c *Claims) { c.Subject = "" }), "decimal user id"},
		{"api token with owner name", with(func(c *Claims) { c.Kind, c.Subject = KindAPIToken, "svc-owner" }), "decimal user id"},
		{"client without sub", with(func(c *Claims) { c.Kind, c.Subject = KindClient, "" }), "sub missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := ks.Sign(tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Sign = %q, %v; want error containing %q", tok, err, tt.wantErr)
			}
		})
	}
	for _, c := range []*Claims{
		with(func(c *Claims) { c.Kind, c.Subject = KindClient, "svc-owner" }),
		with(func(c *Claims) { c.Kind, c.Subject = KindAPIToken, "0" }),
		with(func(c *Claims) { c.Subject = "18446744073709551615" }),
	} {
		if _, err := ks.Sign(c); err != nil {
			t.Errorf("Sign(kind %s sub %s): %v", c.Kind, c.Subject, err)
		}
	}
}

// TestSignEveryField fills every field of Claims (found by reflection, so a field added later is
// covered) and expects Verify to give all of them back.
func TestSignEveryField(t *testing.T) {
	c := testClaims(now())
	c.NotBefore = jwt.NewNumericDate(now().Add(-time.Second))
	keep := map[string]bool{"Issuer": true, "Subject": true, "Kind": true} // must stay valid
	var fill func(v reflect.Value, path string)
	fill = func(v reflect.Value, path string) {
		for i := range v.NumField() {
			f, name := v.Field(i), path+v.Type().Field(i).Name
			switch {
			case f.Kind() == reflect.String && !keep[v.Type().Field(i).Name]:
				f.SetString("v-" + name + ` "<&>"` + "\u2028\x01é")
			case f.Kind() == reflect.Struct:
				fill(f, name+".")
			case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct && f.IsNil():
				f.Set(reflect.New(f.Type().Elem()))
				fill(f.Elem(), name+".")
			}
		}
	}
	fill(reflect.ValueOf(c).Elem(), "")
	c.Audience = jwt.ClaimStrings{"api", "other"}

	tok := mustSign(t, mustKeySet(t, testKey(t, AlgEdDSA, 0)), c)
	got, err := NewVerifier(mustKeySet(t, testKey(t, AlgEdDSA, 0)), testIssuer, WithClock(now)).Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	// Times come back in time.Local: compare the JSON forms (held to the fields by reflection above).
	if g, w := must(json.Marshal(got)), must(json.Marshal(c)); !bytes.Equal(g, w) {
		t.Errorf("claims changed on the way:\n got %s\nwant %s", g, w)
	}
	if !got.ExpiresAt.Equal(c.ExpiresAt.Time) || !got.NotBefore.Equal(c.NotBefore.Time) || !got.IssuedAt.Equal(c.IssuedAt.Time) {
		t.Errorf("times changed: got %+v", got.RegisteredClaims)
	}
}

// appendClaims must write exactly what encoding/json writes.
func TestAppendClaimsMatchesEncodingJSON(t *testing.T) {
	full := testClaims(now())
	full.NotBefore = jwt.NewNumericDate(now())
	full.Audience = jwt.ClaimStrings{"a", "b"}
	full.Owner, full.Name, full.APITokenID = "o", "n", "t"
	tests := []struct {
		name string
		c    *Claims
	}{
		{"full", full},
		{"kind only", &Claims{Kind: KindClient}},
		{"empty audience", &Claims{Kind: KindUser, RegisteredClaims: jwt.RegisteredClaims{Audience: jwt.ClaimStrings{}}}},
		{"before 1970", &Claims{Kind: KindUser, RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Unix(-5, 0))}}},
		{"escapes", &Claims{Kind: "\"\\\b\f\n\r\t\x00\x1f\x7f<>&", Scope: "\u2028\u2029\ufffd é 😀", Name: "bad \xff\xfe utf8 \xe2\x80"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertSameJSON(t, tt.c)
		})
	}
}

func FuzzAppendClaims(f *testing.F) {
	f.Add("42", "api", "profile read", "user", "x\u2028<y>", int64(1772367300))
	f.Add("", "", "", "", "\xff", int64(-1))
	f.Fuzz(func(t *testing.T, sub, aud, scope, kind, name string, exp int64) {
		c := &Claims{Scope: scope, Kind: kind, Name: name}
		c.Subject, c.Audience, c.ExpiresAt = sub, jwt.ClaimStrings{aud}, jwt.NewNumericDate(time.Unix(exp, 0))
		assertSameJSON(t, c)
	})
}

func assertSameJSON(t *testing.T, c *Claims) {
	t.Helper()
	want, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendClaims(nil, c); !bytes.Equal(got, want) {
		t.Errorf("appendClaims:\n got %s\nwant %s", got, want)
	}
}

func TestDERToRaw(t *testing.T) {
	r32 := bytes.Repeat([]byte{0x11}, 32)
	hiR := append([]byte{0}, bytes.Repeat([]byte{0x91}, 32)...) // high bit set: DER adds a 0x00
	short := []byte{0x22}                                       // a small s
	seq := func(ints ...[]byte) []byte {
		var body []byte
		for _, i := range ints {
			body = append(append(body, 0x02, byte(len(i))), i...)
		}
		return append([]byte{0x30, byte(len(body))}, body...)
	}
	tests := []struct {
		name string
		der  []byte
		want []byte // nil: error
	}{
		{"full", seq(r32, r32), append(append([]byte{}, r32...), r32...)},
		{"leading zero and short", seq(hiR, short), append(append(bytes.Repeat([]byte{0x91}, 32), make([]byte, 31)...), 0x22)},
		{"too long", seq(append([]byte{1}, r32...), r32), nil},
		{"one integer", seq(r32), nil},
		{"trailing bytes", append(seq(r32, r32)[:2:2], append(seq(r32, r32)[2:], 0)...), nil},
		{"not a sequence", append([]byte{0x31}, seq(r32, r32)[1:]...), nil},
		{"empty", nil, nil},
		{"zero-length integer", seq([]byte{}, r32), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := make([]byte, 64)
			err := derToRaw(tt.der, out)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("no error, out %x", out)
				}
				return
			}
			if err != nil || !bytes.Equal(out, tt.want) {
				t.Fatalf("derToRaw = %x, %v; want %x", out, err, tt.want)
			}
		})
	}
}
