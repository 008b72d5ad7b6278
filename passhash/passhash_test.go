package passhash

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// cheap returns a valid argon2id hash with minimal parameters, so that tests
// that hash many times stay fast (and fast under -race).
func cheap(secret string) string { return hashArgon2id(secret, 8, 1, 1, 16, 32) }

func TestHashRoundTrip(t *testing.T) {
	h, err := Hash("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("Hash = %q, want OWASP parameters", h)
	}
	if err := Verify(h, "s3cret"); err != nil {
		t.Errorf("Verify(right secret) = %v", err)
	}
	if err := Verify(h, "s3cret "); !errors.Is(err, errMismatch) {
		t.Errorf("Verify(wrong secret) = %v, want errMismatch", err)
	}
	if h2, _ := Hash("s3cret"); h2 == h {
		t.Error("two hashes of one secret are equal: salt is not random")
	}
}

func TestHashBcryptRoundTrip(t *testing.T) {
	h, err := HashBcrypt("s3cret", 4)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$2a$04$") {
		t.Errorf("HashBcrypt = %q", h)
	}
	if err := Verify(h, "s3cret"); err != nil {
		t.Errorf("Verify(right secret) = %v", err)
	}
	if err := Verify(h, "S3cret"); !errors.Is(err, errMismatch) {
		t.Errorf("Verify(wrong secret) = %v, want errMismatch", err)
	}
	for _, cost := range []int{0, 3, 17, 31} {
		if _, err := HashBcrypt("x", cost); err == nil {
			t.Errorf("HashBcrypt(cost %d) succeeded", cost)
		}
	}
	if _, err := HashBcrypt(strings.Repeat("x", 73), 4); err == nil {
		t.Error("HashBcrypt(73 bytes) succeeded; bcrypt would ignore the tail")
	}
}

// Hashes written by other implementations verify.
func TestForeignHashes(t *testing.T) {
	for _, tc := range []struct{ hash, secret, source string }{
		// Reference argon2 CLI (Debian package argon2, 0~20171227):
		// printf password | argon2 somesaltsomesalt -id -t 2 -m 10 -p 1 -l 32 -e
		{"$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CKGe5/bX9YnCq2rxjW5yQXKxn31v1GKzhDCrMc6r6vA", "password", "argon2 CLI"},
		// Openwall crypt_blowfish's own test vector, also what libxcrypt's
		// crypt(3) returns for it.
		{"$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U", "crypt_blowfish"},
		// libxcrypt crypt(3), via Python's crypt.crypt(secret, salt).
		{"$2y$05$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy2", "correct horse", "libxcrypt $2y$"},
		{"$2b$06$abcdefghijklmnopqrstuud/5IuQmqhVO0kfNEbHJM.fJkPiliBzC", "correct horse", "libxcrypt $2b$"},
	} {
		if err := Verify(tc.hash, tc.secret); err != nil {
			t.Errorf("%s: Verify = %v", tc.source, err)
		}
		if err := Verify(tc.hash, tc.secret+"x"); !errors.Is(err, errMismatch) {
			t.Errorf("%s: Verify(wrong) = %v, want errMismatch", tc.source, err)
		}
	}
}

// When the reference argon2 CLI is installed, hashes it makes now verify too.
// (It refuses empty passwords and those over 127 bytes.)
func TestArgon2CLI(t *testing.T) {
	bin, err := exec.LookPath("argon2")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("argon2 CLI not installed: CI checks hashes against the reference implementation (.ci/run installs Debian's argon2)")
		}
		t.Skip("argon2 CLI not installed (apt-get install argon2)")
	}
	for _, secret := range []string{"hunter2", "pässwörd with spaces", strings.Repeat("long", 30)} {
		cmd := exec.Command(bin, "saltsaltsaltsalt", "-id", "-t", "3", "-k", "2048", "-p", "2", "-l", "24", "-e")
		cmd.Stdin = strings.NewReader(secret)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		h := strings.TrimSpace(string(out))
		if err := Verify(h, secret); err != nil {
			t.Errorf("Verify(%s, %q) = %v", h, secret, err)
		}
	}
}

func TestMalformed(t *testing.T) {
	good := cheap("x")
	parts := strings.Split(good, "$") // "", argon2id, v=19, params, salt, hash
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	const bc = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
	for _, tc := range []struct{ name, hash, reason string }{
		{"empty", "", "empty"},
		{"plain text", "hunter2", "not a bcrypt or argon2id hash"},
		{"md5 crypt", "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", "not a bcrypt or argon2id"},
		{"argon2i", strings.Replace(good, "argon2id", "argon2i", 1), "only argon2id"},
		{"argon2d", strings.Replace(good, "argon2id", "argon2d", 1), "only argon2id"},
		{"missing field", strings.Join(parts[:5], "$"), "form"},
		{"extra field", good + "$x", "form"},
		{"version 16", with(2, "v=16"), "version"},
		{"no version", "$argon2id$m=8,t=1,p=1$" + parts[4] + "$" + parts[5], "form"},
		{"params order", with(3, "t=1,m=8,p=1"), "m=…,t=…,p=…"},
		{"params missing", with(3, "m=8,t=1"), "m=…,t=…,p=…"},
		{"params extra", with(3, "m=8,t=1,p=1,k=3"), "m=…,t=…,p=…"},
		{"leading zero", with(3, "m=08,t=1,p=1"), "decimal"},
		{"sign", with(3, "m=+8,t=1,p=1"), "decimal"},
		{"not a number", with(3, "m=x,t=1,p=1"), "decimal"},
		{"memory overflow", with(3, "m=4294967296,t=1,p=1"), "decimal"},
		{"memory 2 GiB", with(3, "m=2097152,t=1,p=1"), "memory"},
		{"memory max uint32", with(3, "m=4294967295,t=1,p=1"), "memory"},
		{"memory below 8p", with(3, "m=15,t=1,p=2"), "memory"},
		{"time 0", with(3, "m=8,t=0,p=1"), "passes"},
		{"time 17", with(3, "m=8,t=17,p=1"), "passes"},
		{"time huge", with(3, "m=8,t=4000000000,p=1"), "passes"},
		{"threads 0", with(3, "m=8,t=1,p=0"), "parallelism"},
		{"threads 17", with(3, "m=1024,t=1,p=17"), "parallelism"},
		{"threads 256", with(3, "m=4096,t=1,p=256"), "parallelism"},
		{"salt padded", with(4, parts[4]+"=="), "base64"},
		{"salt bad char", with(4, "!!!!!!!!!!!!"), "base64"},
		{"salt short", with(4, "c2FsdA"), "salt is 4 bytes"},
		{"salt huge", with(4, strings.Repeat("A", 100)), "salt is 75 bytes"},
		{"hash short", with(5, "aGFzaA"), "hash is 4 bytes"},
		{"hash huge", with(5, strings.Repeat("A", 1000)), "hash is 750 bytes"},
		{"hash url alphabet", with(5, strings.Repeat("_", 43)), "base64"},
		{"hash stray bits", with(5, parts[5][:42]+"B"), "base64"},
		{"bcrypt short", bc[:59], "60 characters"},
		{"bcrypt long", bc + "x", "60 characters"},
		{"bcrypt $2x$", "$2x$" + bc[4:], "not a bcrypt"},
		{"bcrypt $2$", "$2$05" + bc[6:] + "x", "not a bcrypt"},
		{"bcrypt cost 31", "$2a$31" + bc[6:], "cost 31"},
		{"bcrypt cost 17", "$2a$17" + bc[6:], "cost 17"},
		{"bcrypt cost 03", "$2a$03" + bc[6:], "cost 3"},
		{"bcrypt cost sign", "$2a$+5" + bc[6:], "form"},
		{"bcrypt no separator", "$2a$05x" + bc[7:], "form"},
		{"bcrypt bad alphabet", bc[:59] + "=", "alphabet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.hash)
			if !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("Validate(%q) = %v, want errMalformed saying %q", tc.hash, err, tc.reason)
			}
			var me *MalformedError
			if !errors.As(err, &me) || me.Reason == "" {
				t.Errorf("Validate(%q) = %#v, want *MalformedError with a reason", tc.hash, err)
			}
			if err := Verify(tc.hash, "x"); !errors.Is(err, errMalformed) {
				t.Errorf("Verify(%q) = %v, want errMalformed", tc.hash, err)
			}
		})
	}
	if err := Validate(good); err != nil {
		t.Errorf("Validate(good) = %v", err)
	}
}

func TestDummyFor(t *testing.T) {
	params := func(h string) string { return strings.Join(strings.Split(h, "$")[:4], "$") }
	argon := hashArgon2id("pw", 64, 3, 2, 24, 48)
	d := DummyFor(argon)
	if params(d) != params(argon) || len(d) != len(argon) {
		t.Errorf("DummyFor(%s) = %s: different parameters", argon, d)
	}
	if err := Validate(d); err != nil {
		t.Error(err)
	}
	if err := Verify(d, "pw"); !errors.Is(err, errMismatch) {
		t.Errorf("Verify(dummy, pw) = %v, want errMismatch", err)
	}
	if d2 := DummyFor(argon); d2 == d {
		t.Error("DummyFor is deterministic")
	}

	bc, _ := HashBcrypt("pw", 5)
	if d := DummyFor(bc); d[:7] != bc[:7] {
		t.Errorf("DummyFor(%s) = %s: different cost", bc, d)
	}
	y := "$2y$05$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy2"
	if d := DummyFor(y); !strings.HasPrefix(d, "$2a$05$") {
		t.Errorf("DummyFor($2y$05$…) = %s, want a cost-5 bcrypt hash", d)
	}

	for _, bad := range []string{"", "nonsense", "$argon2id$v=19$m=2097152,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"} {
		d := DummyFor(bad)
		if !strings.HasPrefix(d, "$argon2id$v=19$m=19456,t=2,p=1$") {
			t.Errorf("DummyFor(%q) = %s, want the default argon2id", bad, d)
		}
	}
}

func BenchmarkVerifyArgon2id(b *testing.B) {
	h, _ := Hash("benchmark secret")
	for b.Loop() {
		if err := Verify(h, "benchmark secret"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyBcrypt10(b *testing.B) {
	h, _ := HashBcrypt("benchmark secret", 10)
	for b.Loop() {
		if err := Verify(h, "benchmark secret"); err != nil {
			b.Fatal(err)
		}
	}
}

// Password checks run at most GOMAXPROCS at a time, however many callers ask
// at once (each argon2id check holds 19 MiB while it runs).
func TestVerifyConcurrencyBounded(t *testing.T) {
	hash, err := HashBcrypt("pw", 4)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	running, most := 0, 0
	onHash = func(delta int) {
		mu.Lock()
		running += delta
		most = max(most, running)
		mu.Unlock()
		if delta > 0 {
			time.Sleep(20 * time.Millisecond) // long enough for every caller to pile up
		}
	}
	defer func() { onHash = nil }()
	limit := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for range 4 * limit {
		wg.Go(func() {
			if err := Verify(hash, "pw"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if most != limit {
		t.Fatalf("at most %d checks ran at once, want exactly GOMAXPROCS = %d", most, limit)
	}
}

// TestVerifyFreesWorkArea checks that an argon2id check leaves no dead work
// area behind: right after Verify returns, the 19 MiB it used is collected,
// so a burst of logins cannot pile them up on the heap.
func TestVerifyFreesWorkArea(t *testing.T) {
	encoded, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := parse(encoded)
	area := uint64(p.argon.memory) << 10
	var m runtime.MemStats
	for i := range 3 {
		if err := Verify(encoded, "correct horse battery staple"); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&m)
		if m.HeapAlloc >= area {
			t.Fatalf("check %d: heap holds %d MiB after Verify returned; want its %d MiB work area collected",
				i, m.HeapAlloc>>20, area>>20)
		}
	}
}
