package redisstore

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// codeTests are the suite's authorization-code tests (conformance).
var codeTests = []namedTest{
	{"CodeCreateExchange", testCodeCreateExchange},
	{"CodeChecksDoNotBurn", testCodeChecksDoNotBurn},
	{"CodeReplayRevokesFamily", testCodeReplayRevokesFamily},
	{"CodeExpiry", testCodeExpiry},
	{"CodeConcurrentExchange", testCodeConcurrentExchange},
	{"CodeOnlyHashStored", testCodeOnlyHashStored},
	{"CodeUnavailable", testCodeUnavailable},
}

// codeChallenge is the PKCE codeChallenge of the test codes: opaque to the store.
const codeChallenge = "np3-VEAOrr6BWtzp2_r_Aiv7G97YWyWJPFZ2d2BG3Yw"

// newCode is a code of user 7 for client 1001 in family fam.
func newCode(fam string) AuthCode {
	return AuthCode{UserID: "7", ClientID: "1001", RedirectURI: "https://app.example/cb", Scope: "read",
		Challenge: codeChallenge, ChallengeMethod: "S256", FamilyID: fam}
}

// goodCheck is the check every test code passes.
var goodCheck = CodeCheck{ClientID: "1001", RedirectURI: "https://app.example/cb", Challenge: codeChallenge}

// codeKey is the key of code in s.
func codeKey(t *testing.T, s *Store, code string) string {
	t.Helper()
	fam, hash, ok := parseCode(code)
	if !ok {
		t.Fatalf("code %q does not parse", code)
	}
	return s.keys.code(fam, hash)
}

func testCodeCreateExchange(t *testing.T, newStore newStoreFunc) {
	s, c := newStore(t)
	ctx := t.Context()
	fam := NewFamilyID()
	before := time.Now().Add(-time.Second)
	code, err := s.CreateCode(ctx, newCode(fam), hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(code) != familyLen+1+secretLen || !strings.HasPrefix(code, fam+".") || !base64url(code[familyLen+1:]) {
		t.Fatalf("code %q: want %q followed by 43 base64url characters (256 bits)", code, fam+".")
	}
	if d := c.PTTL(ctx, codeKey(t, s, code)).Val(); d <= hour-time.Minute || d > hour {
		t.Errorf("code PTTL %v, want about 1h", d)
	}
	if n := c.Exists(ctx, s.keys.family(fam)).Val(); n != 0 {
		t.Fatal("the family exists before the exchange")
	}
	got, rt, err := s.ExchangeCode(ctx, code, goodCheck, 2*hour)
	if err != nil {
		t.Fatal(err)
	}
	want := newCode(fam)
	want.IssuedAt = got.IssuedAt
	if got != want || got.IssuedAt.Before(before.Truncate(time.Second)) || got.IssuedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("exchanged %+v, want %+v", got, want)
	}
	if rt.FamilyID != fam || !strings.HasPrefix(rt.Token, fam+".") || rt.Token == code ||
		rt.ExpiresAt.Before(time.Now().Add(2*hour-time.Minute)) {
		t.Errorf("refresh token %+v: want a new token of family %s living 2h", rt, fam)
	}
	// The family is the code's session, and its first token rotates.
	f := c.HGetAll(ctx, s.keys.family(fam)).Val()
	if f["user"] != "7" || f["client"] != "1001" || f["scope"] != "read" || f["revoked"] != "0" ||
		f["auth_time"] != strconv.FormatInt(want.IssuedAt.Unix(), 10) {
		t.Errorf("family record %v", f)
	}
	if d := c.PTTL(ctx, s.keys.family(fam)).Val(); d <= 2*hour-time.Minute || d > 2*hour {
		t.Errorf("family PTTL %v, want about 2h", d)
	}
	next, sess, err := s.RotateRefresh(ctx, rt.Token, rot(hour, 0))
	if err != nil || next.FamilyID != fam || sess.UserID != "7" || sess.ClientID != "1001" || sess.Scope != "read" ||
		sess.AuthTime != want.IssuedAt.Unix() {
		t.Errorf("rotate the exchanged refresh token: %+v %+v %v", next, sess, err)
	}
	if active, err := s.FamilyActive(ctx, fam); !active || err != nil {
		t.Errorf("FamilyActive = %v, %v", active, err)
	}
	// Without PKCE: both sides empty.
	plain := newCode(NewFamilyID())
	plain.Challenge, plain.ChallengeMethod = "", ""
	code2, err := s.CreateCode(ctx, plain, hour)
	if err != nil {
		t.Fatal(err)
	}
	if code2 == code {
		t.Fatal("two codes alike")
	}
	if got, _, err := s.ExchangeCode(ctx, code2, CodeCheck{ClientID: "1001", RedirectURI: "https://app.example/cb"}, hour); err != nil || got.FamilyID != plain.FamilyID {
		t.Errorf("exchange code without PKCE: %+v, %v", got, err)
	}
	if _, err := s.CreateCode(ctx, newCode("bad{fam}"), hour); err == nil {
		t.Error("CreateCode accepted a malformed family id")
	}
	if _, _, err := s.ExchangeCode(ctx, code, goodCheck, 0); err == nil {
		t.Error("ExchangeCode accepted a zero refresh lifetime")
	}
}

func testCodeChecksDoNotBurn(t *testing.T, newStore newStoreFunc) {
	s, c := newStore(t)
	ctx := t.Context()
	fam := NewFamilyID()
	code, err := s.CreateCode(ctx, newCode(fam), hour)
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name  string
		code  string
		check CodeCheck
		want  error
	}{
		{"other client", code, CodeCheck{"1002", goodCheck.RedirectURI, codeChallenge, ""}, ErrNotFound},
		{"other redirect", code, CodeCheck{"1001", goodCheck.RedirectURI + "x", codeChallenge, ""}, ErrRedirectMismatch},
		{"no verifier", code, CodeCheck{"1001", goodCheck.RedirectURI, "", ""}, ErrVerifierMismatch},
		{"wrong verifier", code, CodeCheck{"1001", goodCheck.RedirectURI, strings.Repeat("A", 43), ""}, ErrVerifierMismatch},
		{"unknown code", fam + "." + randomB64(32), goodCheck, ErrNotFound},
		{"unknown family", NewFamilyID() + code[familyLen:], goodCheck, ErrNotFound},
		{"malformed code", code + "x", goodCheck, ErrNotFound},
		{"old-style code", randomB64(32), goodCheck, ErrNotFound},
		{"empty code", "", goodCheck, ErrNotFound},
	}
	for _, b := range bad {
		if _, _, err := s.ExchangeCode(ctx, b.code, b.check, hour); !errors.Is(err, b.want) {
			t.Errorf("%s: err = %v, want %v", b.name, err, b.want)
		}
	}
	if n := c.Exists(ctx, s.keys.family(fam)).Val(); n != 0 {
		t.Error("a failed exchange created the family")
	}
	if _, _, err := s.ExchangeCode(ctx, code, goodCheck, hour); err != nil {
		t.Errorf("failed exchanges burnt the code: %v", err)
	}
	// A verifier sent for a code issued without codeChallenge is refused
	// (downgrade protection).
	plain := newCode(NewFamilyID())
	plain.Challenge, plain.ChallengeMethod = "", ""
	code2, _ := s.CreateCode(ctx, plain, hour)
	if _, _, err := s.ExchangeCode(ctx, code2, goodCheck, hour); !errors.Is(err, ErrVerifierMismatch) {
		t.Errorf("verifier for a code without codeChallenge: %v, want ErrVerifierMismatch", err)
	}
}

func testCodeReplayRevokesFamily(t *testing.T, newStore newStoreFunc) {
	s, c := newStore(t)
	ctx := t.Context()
	fam := NewFamilyID()
	code, _ := s.CreateCode(ctx, newCode(fam), hour)
	_, rt, err := s.ExchangeCode(ctx, code, goodCheck, hour)
	if err != nil {
		t.Fatal(err)
	}
	ttl := c.PTTL(ctx, codeKey(t, s, code)).Val()
	for range 2 {
		got, _, err := s.ExchangeCode(ctx, code, goodCheck, hour)
		if !errors.Is(err, ErrCodeReused) || got.FamilyID != fam {
			t.Fatalf("replay: %+v, %v; want ErrCodeReused with family %s", got, err, fam)
		}
	}
	if active, err := s.FamilyActive(ctx, fam); active || err != nil {
		t.Errorf("FamilyActive after a replay = %v, %v; want revoked", active, err)
	}
	if _, _, err := s.RotateRefresh(ctx, rt.Token, rot(hour, 0)); !errors.Is(err, ErrRevoked) {
		t.Errorf("refresh token of a replayed code: %v, want ErrRevoked", err)
	}
	if d := c.PTTL(ctx, codeKey(t, s, code)).Val(); d <= 0 || d > ttl {
		t.Errorf("used code PTTL %v: want the original TTL (%v) kept, not extended", d, ttl)
	}
	// A replay with a wrong client or redirect proves nothing about the
	// holder and revokes nothing.
	fam2 := NewFamilyID()
	code2, _ := s.CreateCode(ctx, newCode(fam2), hour)
	if _, _, err := s.ExchangeCode(ctx, code2, goodCheck, hour); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ExchangeCode(ctx, code2, CodeCheck{"1002", goodCheck.RedirectURI, codeChallenge, ""}, hour); !errors.Is(err, ErrNotFound) {
		t.Errorf("replay by another client: %v, want ErrNotFound", err)
	}
	if active, _ := s.FamilyActive(ctx, fam2); !active {
		t.Error("a replay by another client revoked the session")
	}
}

func testCodeExpiry(t *testing.T, newStore newStoreFunc) {
	t.Parallel()
	s, c := newStore(t)
	ctx := t.Context()
	code, err := s.CreateCode(ctx, newCode(NewFamilyID()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	advance(c, 1100*time.Millisecond)
	if _, _, err := s.ExchangeCode(ctx, code, goodCheck, hour); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired code: err = %v, want ErrNotFound", err)
	}
	if keys := allKeys(t, c, s.keys.prefix); len(keys) != 0 {
		t.Errorf("keys left after expiry: %q", keys)
	}
	if _, err := s.CreateCode(ctx, newCode(NewFamilyID()), 0); err == nil {
		t.Error("CreateCode accepted a zero lifetime")
	}
}

func testCodeConcurrentExchange(t *testing.T, newStore newStoreFunc) {
	s, c := newStore(t)
	ctx := t.Context()
	fam := NewFamilyID()
	code, _ := s.CreateCode(ctx, newCode(fam), hour)
	const n = 50
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, _, errs[i] = s.ExchangeCode(ctx, code, goodCheck, hour)
		})
	}
	close(start)
	wg.Wait()
	var ok, reused int
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrCodeReused):
			reused++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || reused != n-1 {
		t.Errorf("%d exchanges: %d succeeded, %d ErrCodeReused; want exactly 1 success", n, ok, reused)
	}
	// One family with one token; the replays revoked it.
	var tokens []string
	for _, k := range allKeys(t, c, s.keys.prefix) {
		if strings.HasPrefix(k, s.keys.prefix+":rt:{"+fam+"}:t:") {
			tokens = append(tokens, k)
		}
	}
	if len(tokens) != 1 {
		t.Errorf("%d refresh tokens in the family, want 1: %q", len(tokens), tokens)
	}
	if active, _ := s.FamilyActive(ctx, fam); active {
		t.Error("the family survived the replays")
	}
}

func testCodeOnlyHashStored(t *testing.T, newStore newStoreFunc) {
	s, c := newStore(t)
	ctx := t.Context()
	code, _ := s.CreateCode(ctx, newCode(NewFamilyID()), hour)
	_, rt, _ := s.ExchangeCode(ctx, code, goodCheck, hour)
	_, _, _ = s.ExchangeCode(ctx, code, goodCheck, hour)
	dump := dumpAll(t, c, s.keys.prefix)
	if secret := code[familyLen+1:]; strings.Contains(dump, secret) {
		t.Errorf("code stored in plain text:\n%s", dump)
	}
	if secret := rt.Token[familyLen+1:]; strings.Contains(dump, secret) {
		t.Errorf("refresh token stored in plain text:\n%s", dump)
	}
	for _, k := range allKeys(t, c, s.keys.prefix) {
		if d := c.PTTL(ctx, k).Val(); d <= 0 {
			t.Errorf("key %s has PTTL %v, want a TTL", k, d)
		}
	}
}

func testCodeUnavailable(t *testing.T, newStore newStoreFunc) {
	c := redis.NewClient(&redis.Options{Addr: closedAddr(t), DialTimeout: dialTimeout, ReadTimeout: ioTimeout,
		WriteTimeout: ioTimeout, PoolTimeout: poolTimeout, MaxRetries: maxRetries, DialerRetries: 1})
	defer c.Close()
	s := New(c, Options{})
	ctx := t.Context()
	if _, err := s.CreateCode(ctx, newCode(NewFamilyID()), hour); !errors.Is(err, ErrUnavailable) {
		t.Errorf("CreateCode: %v, want ErrUnavailable", err)
	}
	if _, _, err := s.ExchangeCode(ctx, NewFamilyID()+"."+randomB64(32), goodCheck, hour); !errors.Is(err, ErrUnavailable) {
		t.Errorf("ExchangeCode: %v, want ErrUnavailable", err)
	}
}
