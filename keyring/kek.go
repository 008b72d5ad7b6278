package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KEK is a key-encryption key: AES-256-GCM over each signing key.
type KEK struct {
	aead cipher.AEAD
	id   string
}

// ParseKEK reads a key-encryption key: 32 bytes written in base64 (standard
// or URL alphabet, padded or not; surrounding white space ignored), as
// `openssl rand -base64 32` prints them.
func ParseKEK(text []byte) (*KEK, error) {
	s := strings.TrimSpace(string(text))
	var raw []byte
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			raw = b
			break
		}
	}
	if raw == nil {
		return nil, errors.New("key-encryption key: not base64 (make one with: openssl rand -base64 32)")
	}
	if len(raw) != 32 {
		return nil, fmt.Errorf("key-encryption key: %d bytes, want 32 (make one with: openssl rand -base64 32)", len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	mac := hmac.New(sha256.New, raw)
	mac.Write([]byte("tokend key-encryption key id"))
	return &KEK{aead: aead, id: hex.EncodeToString(mac.Sum(nil)[:8])}, nil
}

// LoadKEK reads the key-encryption key from the file at path when path is
// set, else from the value of the environment variable (env). It returns
// nil, nil when neither is set.
func LoadKEK(path, env string) (*KEK, error) {
	switch {
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("signing.kek_file: %w", err)
		}
		k, err := ParseKEK(b)
		if err != nil {
			return nil, fmt.Errorf("signing.kek_file: %w", err)
		}
		return k, nil
	case env != "":
		return ParseKEK([]byte(env))
	}
	return nil, nil
}

// ID names the key without revealing it (an HMAC of a fixed string under
// it): the ring records which KEK sealed it, so a replica with another one
// says so instead of failing to decrypt.
func (k *KEK) ID() string { return k.id }

// seal encrypts plain, bound to kid (additional data): nonce || ciphertext.
func (k *KEK) seal(kid string, plain []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.aead.Seal(nonce, nonce, plain, []byte(kid)), nil
}

// open decrypts what seal made for kid.
func (k *KEK) open(kid string, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed key too short")
	}
	plain, err := k.aead.Open(nil, sealed[:n], sealed[n:], []byte(kid))
	if err != nil {
		return nil, errors.New("sealed key does not open with this key-encryption key")
	}
	return plain, nil
}
