package redisstore

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// runCodeConformance checks authorization codes against one kind of Redis;
// runConformance calls it.
func runCodeConformance(t *testing.T, newStore func(t *testing.T) (*Store, redis.UniversalClient)) {
	const challenge = "np3-VEAOrr6BWtzp2_r_Aiv7G97YWyWJPFZ2d2BG3Yw" // opaque to the store
	newCode := func(fam string) AuthCode {
		return AuthCode{UserID: "7", ClientID: "1001", RedirectURI: "https://app.example/cb", Scope: "read",
			Challenge: challenge, ChallengeMethod: "S256", FamilyID: fam}
	}
	good := CodeCheck{ClientID: "1001", RedirectURI: "https://app.example/cb", Challenge: challenge}

	t.Run("CodeCreateConsume", func(t *testing.T) {
		s, c := newStore(t)
		ctx := t.Context()
		fam := NewFamilyID()
		before := time.Now().Add(-time.Second)
		code, err := s.CreateCode(ctx, newCode(fam), hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(code) != codeLen || !base64url(code) {
			t.Fatalf("code %q: want 43 base64url characters (256 bits)", code)
		}
		if d := c.PTTL(ctx, s.keys.code(hashToken(code))).Val(); d <= hour-time.Minute || d > hour {
			t.Errorf("code PTTL %v, want about 1h", d)
		}
		got, err := s.ConsumeCode(ctx, code, good)
		if err != nil {
			t.Fatal(err)
		}
		want := newCode(fam)
		want.IssuedAt = got.IssuedAt
		if got != want || got.IssuedAt.Before(before.Truncate(time.Second)) || got.IssuedAt.After(time.Now().Add(time.Second)) {
			t.Errorf("consumed %+v, want %+v", got, want)
		}
		if replayed, err := s.CodeReplayed(ctx, code); replayed || err != nil {
			t.Errorf("CodeReplayed after one use = %v, %v", replayed, err)
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
		if got, err := s.ConsumeCode(ctx, code2, CodeCheck{ClientID: "1001", RedirectURI: "https://app.example/cb"}); err != nil || got.FamilyID != plain.FamilyID {
			t.Errorf("consume code without PKCE: %+v, %v", got, err)
		}
		if _, err := s.CreateCode(ctx, newCode("bad{fam}"), hour); err == nil {
			t.Error("CreateCode accepted a malformed family id")
		}
	})

	t.Run("CodeChecksDoNotBurn", func(t *testing.T) {
		s, _ := newStore(t)
		ctx := t.Context()
		code, err := s.CreateCode(ctx, newCode(NewFamilyID()), hour)
		if err != nil {
			t.Fatal(err)
		}
		bad := []struct {
			name  string
			code  string
			check CodeCheck
			want  error
		}{
			{"other client", code, CodeCheck{"1002", good.RedirectURI, challenge}, ErrNotFound},
			{"other redirect", code, CodeCheck{"1001", good.RedirectURI + "x", challenge}, ErrRedirectMismatch},
			{"no verifier", code, CodeCheck{"1001", good.RedirectURI, ""}, ErrVerifierMismatch},
			{"wrong verifier", code, CodeCheck{"1001", good.RedirectURI, strings.Repeat("A", 43)}, ErrVerifierMismatch},
			{"unknown code", randomB64(32), good, ErrNotFound},
			{"malformed code", code + "x", good, ErrNotFound},
			{"empty code", "", good, ErrNotFound},
		}
		for _, b := range bad {
			if _, err := s.ConsumeCode(ctx, b.code, b.check); !errors.Is(err, b.want) {
				t.Errorf("%s: err = %v, want %v", b.name, err, b.want)
			}
		}
		if _, err := s.ConsumeCode(ctx, code, good); err != nil {
			t.Errorf("failed exchanges burnt the code: %v", err)
		}
		// A verifier sent for a code issued without challenge is refused
		// (downgrade protection).
		plain := newCode(NewFamilyID())
		plain.Challenge, plain.ChallengeMethod = "", ""
		code2, _ := s.CreateCode(ctx, plain, hour)
		if _, err := s.ConsumeCode(ctx, code2, good); !errors.Is(err, ErrVerifierMismatch) {
			t.Errorf("verifier for a code without challenge: %v, want ErrVerifierMismatch", err)
		}
	})

	t.Run("CodeReplay", func(t *testing.T) {
		s, c := newStore(t)
		ctx := t.Context()
		fam := NewFamilyID()
		code, _ := s.CreateCode(ctx, newCode(fam), hour)
		if _, err := s.ConsumeCode(ctx, code, good); err != nil {
			t.Fatal(err)
		}
		ttl := c.PTTL(ctx, s.keys.code(hashToken(code))).Val()
		for range 2 {
			got, err := s.ConsumeCode(ctx, code, good)
			if !errors.Is(err, ErrCodeReused) || got.FamilyID != fam {
				t.Fatalf("replay: %+v, %v; want ErrCodeReused with family %s", got, err, fam)
			}
		}
		if replayed, err := s.CodeReplayed(ctx, code); !replayed || err != nil {
			t.Errorf("CodeReplayed = %v, %v; want true", replayed, err)
		}
		if d := c.PTTL(ctx, s.keys.code(hashToken(code))).Val(); d <= 0 || d > ttl {
			t.Errorf("used code PTTL %v: want the original TTL (%v) kept, not extended", d, ttl)
		}
		for _, bad := range []string{"", "x", randomB64(32)} {
			if replayed, err := s.CodeReplayed(ctx, bad); replayed || err != nil {
				t.Errorf("CodeReplayed(%q) = %v, %v", bad, replayed, err)
			}
		}
	})

	t.Run("CodeExpiry", func(t *testing.T) {
		t.Parallel()
		s, c := newStore(t)
		ctx := t.Context()
		code, err := s.CreateCode(ctx, newCode(NewFamilyID()), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		advance(c, 1100*time.Millisecond)
		if _, err := s.ConsumeCode(ctx, code, good); !errors.Is(err, ErrNotFound) {
			t.Errorf("expired code: err = %v, want ErrNotFound", err)
		}
		if keys := allKeys(t, c, s.keys.prefix); len(keys) != 0 {
			t.Errorf("keys left after expiry: %q", keys)
		}
		if _, err := s.CreateCode(ctx, newCode(NewFamilyID()), 0); err == nil {
			t.Error("CreateCode accepted a zero lifetime")
		}
	})

	t.Run("CodeConcurrentConsume", func(t *testing.T) {
		s, _ := newStore(t)
		ctx := t.Context()
		code, _ := s.CreateCode(ctx, newCode(NewFamilyID()), hour)
		const n = 50
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				_, errs[i] = s.ConsumeCode(ctx, code, good)
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
			t.Errorf("%d consumes: %d succeeded, %d ErrCodeReused; want exactly 1 success", n, ok, reused)
		}
	})

	t.Run("CodeOnlyHashStored", func(t *testing.T) {
		s, c := newStore(t)
		ctx := t.Context()
		code, _ := s.CreateCode(ctx, newCode(NewFamilyID()), hour)
		_, _ = s.ConsumeCode(ctx, code, good)
		_, _ = s.ConsumeCode(ctx, code, good)
		if dump := dumpAll(t, c, s.keys.prefix); strings.Contains(dump, code) {
			t.Errorf("code stored in plain text:\n%s", dump)
		}
		for _, k := range allKeys(t, c, s.keys.prefix) {
			if d := c.PTTL(ctx, k).Val(); d <= 0 {
				t.Errorf("key %s has PTTL %v, want a TTL", k, d)
			}
		}
	})

	t.Run("CodeUnavailable", func(t *testing.T) {
		c := redis.NewClient(&redis.Options{Addr: closedAddr(t), DialTimeout: dialTimeout, ReadTimeout: ioTimeout,
			WriteTimeout: ioTimeout, PoolTimeout: poolTimeout, MaxRetries: maxRetries, DialerRetries: 1})
		defer c.Close()
		s := New(c, Options{})
		ctx := t.Context()
		if _, err := s.CreateCode(ctx, newCode(NewFamilyID()), hour); !errors.Is(err, ErrUnavailable) {
			t.Errorf("CreateCode: %v, want ErrUnavailable", err)
		}
		if _, err := s.ConsumeCode(ctx, randomB64(32), good); !errors.Is(err, ErrUnavailable) {
			t.Errorf("ConsumeCode: %v, want ErrUnavailable", err)
		}
		if _, err := s.CodeReplayed(ctx, randomB64(32)); !errors.Is(err, ErrUnavailable) {
			t.Errorf("CodeReplayed: %v, want ErrUnavailable", err)
		}
	})
}
