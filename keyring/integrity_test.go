package keyring

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// A Redis writer without the key-encryption key rewrites the ring's times to
// make an old, retired key (still in the ring, or restored from a copy the
// writer kept) sign again. The document's MAC does not verify: the replica
// refuses it and the signer stays the key the ring rotated to.
func TestAttackRedisWriterReactivatesRetiredKey(t *testing.T) {
	st := realStore(t)
	ctx := context.Background()
	c := newClock(time.Unix(1_800_000_000, 0))
	r, err := Open(ctx, st, opts(testKEK(t, 1), c))
	if err != nil {
		t.Fatal(err)
	}
	old := r.Keys().Signer().ID()
	if _, err := r.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	saved, _ := st.SigningRing(ctx)      // the writer keeps a copy of the ring as it is now
	c.add(lead + lifetime + time.Minute) // the new key signs; the old one is past Removes
	if err := r.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	current := r.Keys().Signer().ID()
	if current == old {
		t.Fatal("setup: no rotation")
	}

	// The writer: edit the stored document's times (no KEK involved).
	ring, err := st.SigningRing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var d doc
	if err := json.Unmarshal(ring.Doc, &d); err != nil {
		t.Fatal(err)
	}
	found := false
	for i := range d.Keys {
		if d.Keys[i].KID == old {
			found = true
			d.Keys[i].Activates, d.Keys[i].Retires, d.Keys[i].Removes = c.now().Unix(), 0, 0
		}
	}
	if !found { // pruned already: the writer restores the copy it kept of the entry
		var was doc
		_ = json.Unmarshal(saved.Doc, &was)
		for _, e := range was.Keys {
			if e.KID == old {
				e.Activates, e.Retires, e.Removes = c.now().Unix(), 0, 0
				d.Keys = append(d.Keys, e)
			}
		}
	}
	b, _ := json.Marshal(d)
	if _, err := st.SwapSigningRing(ctx, ring.Version, b); err != nil {
		t.Fatal(err)
	}
	if err := r.Tick(ctx); err == nil {
		t.Error("a ring document written without the KEK was read without complaint")
	}
	if got := r.Keys().Signer().ID(); got == old {
		t.Fatalf("a Redis writer without the KEK made retired key %s sign again (was %s)", old, current)
	}
}

// A Redis writer marks every key removed: were the document accepted, every
// replica would drop its published keys and make a fresh one, and every live
// token would stop verifying. The keys in use stay published.
func TestAttackRingLossDropsAllPublishedKeys(t *testing.T) {
	st := realStore(t)
	ctx := context.Background()
	c := newClock(time.Unix(1_800_000_000, 0))
	r, err := Open(ctx, st, opts(testKEK(t, 1), c))
	if err != nil {
		t.Fatal(err)
	}
	old := r.Keys().Signer().ID()
	tok := sign(t, r.Keys(), c.now())
	ring, _ := st.SigningRing(ctx)
	var d doc
	_ = json.Unmarshal(ring.Doc, &d)
	for i := range d.Keys {
		d.Keys[i].Removes = c.now().Unix() - 1 // or: DEL the ring key
	}
	b, _ := json.Marshal(d)
	if _, err := st.SwapSigningRing(ctx, ring.Version, b); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_ = r.Tick(ctx)
	}
	published := kids(r.Keys())
	t.Logf("signer %s -> %s; published %v; token signed a moment ago now has kid %s", old, r.Keys().Signer().ID(), published, old)
	for _, k := range published {
		if k == old {
			return
		}
	}
	_ = tok
	t.Fatalf("a Redis write without the KEK unpublished the signing key %s within two ticks: every live token is refused", old)
}

// The ring is gone from Redis (DEL, FLUSHALL, eviction, a restart without
// persistence): the replica writes its copy back instead of making a fresh
// key, so every published key stays published, in Redis too.
func TestRingWrittenBackWhenLost(t *testing.T) {
	st := realStore(t)
	ctx := context.Background()
	c := newClock(time.Unix(1_800_000_000, 0))
	r, err := Open(ctx, st, opts(testKEK(t, 1), c))
	if err != nil {
		t.Fatal(err)
	}
	signer := r.Keys().Signer().ID()
	if err := st.Client().Del(ctx, "tokend:signing:{ring}").Err(); err != nil {
		t.Fatal(err)
	}
	if ring, _ := st.SigningRing(ctx); ring.Version != 0 {
		t.Fatal("setup: the ring is still there (key name?)")
	}
	if err := r.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.Keys().Signer().ID(); got != signer {
		t.Fatalf("signer %s after the loss, want %s", got, signer)
	}
	entries, _, err := Read(ctx, st)
	if err != nil || len(entries) != 1 || entries[0].KID != signer {
		t.Fatalf("ring in Redis after the write-back: %v, %v", entries, err)
	}
	// Another replica opening now reads the same key.
	r2, err := Open(ctx, st, opts(testKEK(t, 1), c))
	if err != nil || r2.Keys().Signer().ID() != signer {
		t.Fatalf("a second replica signs with %v (%v), want %s", r2, err, signer)
	}
}
