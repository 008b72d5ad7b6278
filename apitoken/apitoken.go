package apitoken

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"time"
)

const (
	// idPrefix starts every API token id (the TypeID type prefix).
	idPrefix = "api_token_"
	// secretPrefix starts every API token secret.
	secretPrefix = "tokend_"

	suffixLen   = 26 // TypeID suffix: 128 bits in Crockford base32
	randomBytes = 32
	randomLen   = 52 // 256 bits in base32 (rounded up)
	checksumLen = 7  // CRC-32 in base32
	// secretLen is the length of every secret.
	secretLen = len(secretPrefix) + suffixLen + randomLen + checksumLen
)

// alphabet is Crockford's base32, lower case, as TypeID uses it.
const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"

var decodeTable = func() [256]byte {
	var t [256]byte
	for i := range t {
		t[i] = 0xff
	}
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// errMalformed is returned for any string that is not a well-formed id or
// secret.
var errMalformed = errors.New("apitoken: malformed")

// NewID returns a new id: idPrefix followed by the TypeID suffix of a
// UUIDv7 (time-ordered, 74 random bits).
func NewID() string {
	return idPrefix + encodeSuffix(newUUIDv7(time.Now()))
}

// NewSecret returns a new secret for the token with the given id.
func NewSecret(id string) (string, error) {
	suffix, ok := strings.CutPrefix(id, idPrefix)
	if !ok || !validSuffix(suffix) {
		return "", errMalformed
	}
	var r [randomBytes]byte
	_, _ = rand.Read(r[:]) // never fails (Go ≥ 1.24)
	var b strings.Builder
	b.Grow(secretLen)
	b.WriteString(secretPrefix)
	b.WriteString(suffix)
	b.WriteString(encodeBits(r[:], randomLen))
	body := b.String()
	var sum [5]byte
	binary.BigEndian.PutUint32(sum[1:], crc32.ChecksumIEEE([]byte(body)))
	b.WriteString(encodeBits(sum[:], checksumLen+1)[1:]) // 40 bits → 8 chars; the first is always 0
	return b.String(), nil
}

// ParseSecret checks a secret's form and checksum and returns the id it
// belongs to. It does not say whether the token exists.
func ParseSecret(secret string) (id string, err error) {
	if len(secret) != secretLen || !strings.HasPrefix(secret, secretPrefix) {
		return "", errMalformed
	}
	rest := secret[len(secretPrefix):]
	for i := range len(rest) {
		if decodeTable[rest[i]] == 0xff {
			return "", errMalformed
		}
	}
	suffix := rest[:suffixLen]
	if !validSuffix(suffix) {
		return "", errMalformed
	}
	body := secret[:secretLen-checksumLen]
	var sum [5]byte
	binary.BigEndian.PutUint32(sum[1:], crc32.ChecksumIEEE([]byte(body)))
	if encodeBits(sum[:], checksumLen+1)[1:] != secret[secretLen-checksumLen:] {
		return "", errMalformed
	}
	return idPrefix + suffix, nil
}

// ValidID reports whether id is a well-formed API token id.
func ValidID(id string) bool {
	suffix, ok := strings.CutPrefix(id, idPrefix)
	return ok && validSuffix(suffix)
}

// validSuffix: 26 base32 characters whose first is ≤ '7' (128 bits).
func validSuffix(s string) bool {
	if len(s) != suffixLen || s[0] > '7' {
		return false
	}
	for i := range len(s) {
		if decodeTable[s[i]] == 0xff {
			return false
		}
	}
	return true
}

func newUUIDv7(now time.Time) [16]byte {
	var u [16]byte
	_, _ = rand.Read(u[6:])
	ms := uint64(now.UnixMilli())
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // RFC 9562 variant
	return u
}

// encodeSuffix encodes 128 bits as 26 base32 characters, most significant
// first, with two zero bits in front (TypeID's encoding).
func encodeSuffix(u [16]byte) string {
	return encodeBits(u[:], suffixLen)
}

// encodeBits writes the big-endian bits of b, right-aligned, as n base32
// characters (n*5 ≥ 8*len(b); leading bits are zero).
func encodeBits(b []byte, n int) string {
	out := make([]byte, n)
	var acc uint64
	bits := 0
	j := n - 1
	for i := len(b) - 1; i >= 0; i-- {
		acc |= uint64(b[i]) << bits
		bits += 8
		for bits >= 5 && j >= 0 {
			out[j] = alphabet[acc&31]
			acc >>= 5
			bits -= 5
			j--
		}
	}
	for ; j >= 0; j-- {
		out[j] = alphabet[acc&31]
		acc >>= 5
	}
	return string(out)
}
