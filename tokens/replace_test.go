package tokens

import (
	"errors"
	"testing"
)

// A Verifier follows its KeySet's Replace: a new key's tokens pass at once, and a removed key's
// tokens are refused even when the Verifier had already verified (and remembered) them.
func TestReplaceRemovesKeyEvenFromVerifiedCache(t *testing.T) {
	oldKey, newKey := testKey(t, AlgEdDSA, 0), testKey(t, AlgEdDSA, 1)
	ks, err := NewKeySet(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(ks, testIssuer, WithClock(now))
	oldTok, err := ks.Sign(testClaims(testNow))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(oldTok); err != nil {
		t.Fatalf("old token before rotation: %v", err)
	}

	// the new key signs, the old one is still published
	if err := ks.Replace(newKey, oldKey); err != nil {
		t.Fatal(err)
	}
	newTok, err := ks.Sign(testClaims(testNow))
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"old": oldTok, "new": newTok} {
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("%s token while both keys are published: %v", name, err)
		}
	}

	// the old key leaves
	if err := ks.Replace(newKey); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(oldTok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token of a removed key: got %v, want ErrInvalidToken", err)
	}
	if _, err := v.Verify(newTok); err != nil {
		t.Errorf("new token after removal of the old key: %v", err)
	}
	if err := ks.Replace(); err == nil {
		t.Error("Replace with no keys: want an error")
	}
	if ks.Signer() != newKey {
		t.Error("a refused Replace changed the set")
	}
}
