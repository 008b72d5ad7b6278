package passhash

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

var (
	// errMismatch means the secret does not match the hash.
	errMismatch = errors.New("passhash: mismatch")
	// errMalformed means the hash is not one Verify accepts. Errors returned
	// for malformed hashes are *MalformedError values that wrap errMalformed.
	errMalformed = errors.New("passhash: malformed hash")
)

// MalformedError says why a hash is not accepted. errors.Is(err, errMalformed)
// holds for it.
type MalformedError struct {
	Reason string // e.g. "not a bcrypt or argon2id hash"
}

func (e *MalformedError) Error() string { return errMalformed.Error() + ": " + e.Reason }
func (e *MalformedError) Unwrap() error { return errMalformed }

func malformed(format string, args ...any) error {
	return &MalformedError{Reason: fmt.Sprintf(format, args...)}
}

// Parameters of new argon2id hashes: OWASP Password Storage Cheat Sheet,
// "m=19456 (19 MiB), t=2, p=1".
const (
	defaultMemory  = 19456 // KiB
	defaultTime    = 2
	defaultThreads = 1
	defaultSaltLen = 16
	defaultKeyLen  = 32
)

// Bounds on what Verify accepts. Generous for real deployments, but a single
// check can cost at most ~1 GiB × 16 passes, and never a bcrypt cost of 31
// (2^31 rounds: hours).
const (
	maxMemory     = 1 << 20 // KiB, 1 GiB
	maxTime       = 16
	maxThreads    = 16
	minSaltLen    = 8 // RFC 9106 §3.1
	maxSaltLen    = 64
	minKeyLen     = 16
	maxKeyLen     = 64
	maxBcryptCost = 16 // cost 16 is ~4 s on current hardware
)

// b64 is the PHC string encoding: standard alphabet, no padding, and no
// stray bits in the last character (one hash, one spelling).
var b64 = base64.RawStdEncoding.Strict()

type argonParams struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

// parsed is a hash that Verify accepts: argon2id when argon is non-nil,
// bcrypt otherwise.
type parsed struct {
	argon      *argonParams
	bcryptCost int
}

func parse(encoded string) (parsed, error) {
	switch {
	case encoded == "":
		return parsed{}, malformed("empty")
	case strings.HasPrefix(encoded, "$argon2id$"):
		p, err := parseArgon2id(encoded)
		return parsed{argon: p}, err
	case strings.HasPrefix(encoded, "$2a$"), strings.HasPrefix(encoded, "$2b$"), strings.HasPrefix(encoded, "$2y$"):
		cost, err := parseBcrypt(encoded)
		return parsed{bcryptCost: cost}, err
	case strings.HasPrefix(encoded, "$argon2"):
		return parsed{}, malformed("only argon2id is supported, not %s", strings.SplitN(encoded[1:], "$", 2)[0])
	default:
		return parsed{}, malformed("not a bcrypt or argon2id hash")
	}
}

// parseArgon2id parses $argon2id$v=19$m=M,t=T,p=P$SALT$HASH strictly.
func parseArgon2id(s string) (*argonParams, error) {
	f := strings.Split(s, "$")
	if len(f) != 6 {
		return nil, malformed("argon2id hash must have the form $argon2id$v=19$m=…,t=…,p=…$salt$hash")
	}
	if f[2] != "v=19" {
		return nil, malformed("argon2id version %q is not supported (want v=19)", f[2])
	}
	kv := strings.Split(f[3], ",")
	if len(kv) != 3 {
		return nil, malformed("argon2id parameters %q must be m=…,t=…,p=…", f[3])
	}
	var v [3]uint32
	for i, name := range []string{"m=", "t=", "p="} {
		num, ok := strings.CutPrefix(kv[i], name)
		n, err := strconv.ParseUint(num, 10, 32)
		if !ok || err != nil || num != strconv.FormatUint(n, 10) {
			return nil, malformed("argon2id parameters %q must be m=…,t=…,p=… in decimal", f[3])
		}
		v[i] = uint32(n)
	}
	p := &argonParams{memory: v[0], time: v[1]}
	switch {
	case v[2] < 1 || v[2] > maxThreads:
		return nil, malformed("argon2id parallelism p=%d is outside 1..%d", v[2], maxThreads)
	case v[1] < 1 || v[1] > maxTime:
		return nil, malformed("argon2id passes t=%d is outside 1..%d", v[1], maxTime)
	case v[0] < 8*v[2] || v[0] > maxMemory:
		return nil, malformed("argon2id memory m=%d KiB is outside 8·p..%d (1 GiB)", v[0], maxMemory)
	}
	p.threads = uint8(v[2])
	var err error
	if p.salt, err = b64.DecodeString(f[4]); err != nil {
		return nil, malformed("argon2id salt is not unpadded base64")
	}
	if len(p.salt) < minSaltLen || len(p.salt) > maxSaltLen {
		return nil, malformed("argon2id salt is %d bytes, want %d..%d", len(p.salt), minSaltLen, maxSaltLen)
	}
	if p.key, err = b64.DecodeString(f[5]); err != nil {
		return nil, malformed("argon2id hash is not unpadded base64")
	}
	if len(p.key) < minKeyLen || len(p.key) > maxKeyLen {
		return nil, malformed("argon2id hash is %d bytes, want %d..%d", len(p.key), minKeyLen, maxKeyLen)
	}
	return p, nil
}

// parseBcrypt checks the modular crypt form $2x$CC$<22 salt><31 hash> and
// returns the cost.
func parseBcrypt(s string) (int, error) {
	if len(s) != 60 {
		return 0, malformed("bcrypt hash must be 60 characters, not %d", len(s))
	}
	cost, err := strconv.Atoi(s[4:6])
	if err != nil || s[4] < '0' || s[4] > '9' || s[6] != '$' {
		return 0, malformed("bcrypt hash must have the form $2b$NN$…")
	}
	if cost < bcrypt.MinCost || cost > maxBcryptCost {
		return 0, malformed("bcrypt cost %d is outside %d..%d", cost, bcrypt.MinCost, maxBcryptCost)
	}
	for _, c := range []byte(s[7:]) {
		if !(c == '.' || c == '/' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return 0, malformed("bcrypt salt and hash contain %q, outside bcrypt's base64 alphabet", c)
		}
	}
	return cost, nil
}

// Hash returns an argon2id PHC string of secret with OWASP's recommended
// parameters (m=19456 KiB, t=2, p=1), a 16-byte random salt and a 32-byte
// hash. The error is always nil today; it is there so that the signature need
// not change if hashing ever can fail.
func Hash(secret string) (string, error) {
	return hashArgon2id(secret, defaultMemory, defaultTime, defaultThreads, defaultSaltLen, defaultKeyLen), nil
}

func hashArgon2id(secret string, memory, time uint32, threads uint8, saltLen, keyLen int) string {
	salt := make([]byte, saltLen)
	rand.Read(salt) // never fails: crypto/rand crashes the program instead
	key := argon2.IDKey([]byte(secret), salt, time, memory, threads, uint32(keyLen))
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, memory, time, threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// HashBcrypt returns a bcrypt hash ($2a$) of secret at the given cost, which
// must be within what Verify accepts (4..16; 10 is common). bcrypt reads at most
// 72 bytes, so longer secrets are refused: use Hash for them.
func HashBcrypt(secret string, cost int) (string, error) {
	if cost < bcrypt.MinCost || cost > maxBcryptCost {
		return "", fmt.Errorf("passhash: bcrypt cost %d is outside %d..%d", cost, bcrypt.MinCost, maxBcryptCost)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(secret), cost)
	if err != nil {
		return "", fmt.Errorf("passhash: %w", err)
	}
	return string(h), nil
}

// Verify checks secret against a bcrypt ($2a$, $2b$, $2y$) or argon2id (PHC
// string) hash in constant time. It returns nil on a match, errMismatch, or an
// error wrapping errMalformed when encoded is not a hash it accepts.
//
// Like every bcrypt implementation, a bcrypt hash considers only the first 72
// bytes of the secret.
//
// At most GOMAXPROCS checks run at once; others wait their turn. The hashes
// are CPU-bound, so more at once would finish none sooner, and each argon2id
// check holds its memory parameter (19 MiB by default) while it runs: a burst
// of logins must not turn into a burst of memory.
func Verify(encoded, secret string) error {
	p, err := parse(encoded)
	if err != nil {
		return err
	}
	if a := p.argon; a != nil {
		got := argon2id(secret, a)
		if subtle.ConstantTimeCompare(got, a.key) != 1 {
			return errMismatch
		}
		return nil
	}
	inSlot(func() { err = bcrypt.CompareHashAndPassword([]byte(encoded), []byte(secret)) })
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return errMismatch
	default:
		return malformed("bcrypt: %v", err)
	}
}

// argon2id computes the key of secret under a's parameters in one of the
// hash slots. x/crypto/argon2 allocates its work area (a.memory KiB) afresh
// each time and drops it on return; left to the pacer, a run of logins piles
// dead 19 MiB areas onto a heap allowed to grow to twice its live size, and
// the process grows by that much. A check with a work area of collectFrom or
// more therefore runs a collection before it gives up its slot: the area it
// dropped is free before the next check allocates one, so at most GOMAXPROCS
// areas exist at a time. One collection of tokend's small pointer heap costs far less than the check
// itself: the work area holds no pointers to mark.
func argon2id(secret string, a *argonParams) (key []byte) {
	inSlot(func() {
		key = argon2.IDKey([]byte(secret), a.salt, a.time, a.memory, a.threads, uint32(len(a.key)))
		if a.memory >= collectFrom {
			runtime.GC()
		}
	})
	return key
}

// inSlot runs the password check f in one of the hash slots, waiting for
// one to be free.
func inSlot(f func()) {
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	if onHash != nil {
		onHash(+1)
		defer onHash(-1)
	}
	f()
}

// collectFrom is the argon2id memory parameter (KiB) from which a check
// collects its work area right away.
const collectFrom = 4 << 10

// hashSlots bounds the password checks running at once (Verify).
var hashSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// onHash, when set (tests only), is told of every check starting (+1) and
// ending (-1) while it holds a slot.
var onHash func(delta int)

// Validate reports whether encoded is a hash Verify accepts, without hashing
// anything. Its error wraps errMalformed and says what is wrong.
func Validate(encoded string) error {
	_, err := parse(encoded)
	return err
}

// DummyFor returns a hash of a random secret with the same algorithm and
// parameters as encoded, or a default argon2id hash when encoded is malformed.
// Verifying against it costs what verifying against encoded costs, so an
// unknown username takes as long as a known one with a wrong password.
func DummyFor(encoded string) string {
	secret := rand.Text()
	p, err := parse(encoded)
	switch {
	case err != nil:
	case p.argon != nil:
		a := p.argon
		return hashArgon2id(secret, a.memory, a.time, a.threads, len(a.salt), len(a.key))
	default:
		if h, err := HashBcrypt(secret, p.bcryptCost); err == nil {
			return h
		}
	}
	h, _ := Hash(secret)
	return h
}
