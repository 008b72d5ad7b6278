package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateMarshalParseRoundTrip(t *testing.T) {
	for _, alg := range []string{"", AlgEdDSA, AlgES256, AlgRS256} {
		t.Run("alg="+alg, func(t *testing.T) {
			k, err := GenerateKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			wantAlg := alg
			if alg == "" {
				wantAlg = AlgEdDSA
			}
			if k.Alg() != wantAlg {
				t.Fatalf("Alg() = %q, want %q", k.Alg(), wantAlg)
			}
			if alg == AlgRS256 {
				if bits := k.Public().(*rsa.PublicKey).N.BitLen(); bits != 3072 {
					t.Errorf("generated RSA key has %d bits, want 3072", bits)
				}
			}
			data, err := k.MarshalPEM()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----") {
				t.Errorf("MarshalPEM is not PKCS#8 PEM: %.40q", data)
			}
			back, err := ParseKeyPEM(data)
			if err != nil {
				t.Fatal(err)
			}
			if back.ID() != k.ID() || back.Alg() != k.Alg() {
				t.Errorf("round trip: got kid %s alg %s, want %s %s", back.ID(), back.Alg(), k.ID(), k.Alg())
			}
			type equaler interface{ Equal(crypto.PublicKey) bool }
			if !back.Public().(equaler).Equal(k.Public()) {
				t.Error("round trip changed the public key")
			}
			// A token signed by the parsed key verifies against the original.
			ks := mustKeySet(t, back)
			tok, err := ks.Sign(testClaims(now()))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := NewVerifier(mustKeySet(t, k), testIssuer, WithClock(now)).Verify(tok); err != nil {
				t.Errorf("token of parsed key: %v", err)
			}
		})
	}
}

func TestParseKeyPEMFixtures(t *testing.T) {
	tests := []struct {
		file    string
		wantAlg string
		wantErr string // substring; empty: must parse
	}{
		{file: "ed25519-pkcs8.pem", wantAlg: AlgEdDSA},
		{file: "p256-pkcs8.pem", wantAlg: AlgES256},
		{file: "p256-sec1.pem", wantAlg: AlgES256}, // EC PARAMETERS block first, then EC PRIVATE KEY
		{file: "rsa2048-pkcs8.pem", wantAlg: AlgRS256},
		{file: "rsa2048-pkcs1.pem", wantAlg: AlgRS256},
		{file: "rsa1024-pkcs8.pem", wantErr: "at least 2048 bits"},
		{file: "rsa1024-pkcs1.pem", wantErr: "at least 2048 bits"},
		{file: "p384-sec1.pem", wantErr: "only P-256"},
		{file: "p384-pkcs8.pem", wantErr: "only P-256"},
		{file: "secp256k1-sec1.pem", wantErr: "supported: Ed25519, P-256"},
		{file: "x25519-pkcs8.pem", wantErr: "unsupported key type"},
		{file: "ed25519-encrypted.pem", wantErr: "encrypted"},
		{file: "ed25519-public.pem", wantErr: "no \"PRIVATE KEY\""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			k, err := LoadKeyFile(filepath.Join("testdata", tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadKeyFile error = %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.file) {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Alg() != tt.wantAlg {
				t.Errorf("Alg() = %s, want %s", k.Alg(), tt.wantAlg)
			}
			// MarshalPEM of an openssl key parses back to the same kid.
			data, err := k.MarshalPEM()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseKeyPEM(data)
			if err != nil || back.ID() != k.ID() {
				t.Errorf("re-parse: kid %v err %v, want %s", back, err, k.ID())
			}
		})
	}
}

func TestParseKeyPEMRefused(t *testing.T) {
	pkcs8 := func(t *testing.T, priv any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384SEC1, err := x509.MarshalECPrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	ed, _ := os.ReadFile(filepath.Join("testdata", "ed25519-pkcs8.pem"))
	p256, _ := os.ReadFile(filepath.Join("testdata", "p256-pkcs8.pem"))

	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"RSA 1024 PKCS#8", pkcs8(t, rsa1024), "RSA key of 1024 bits refused"},
		{"RSA 1024 PKCS#1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsa1024)}), "RSA key of 1024 bits refused"},
		{"P-384 PKCS#8", pkcs8(t, p384), "unsupported elliptic curve P-384"},
		{"P-384 SEC1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: p384SEC1}), "unsupported elliptic curve P-384"},
		{"empty", nil, "no \"PRIVATE KEY\""},
		{"not PEM", []byte("hello"), "no \"PRIVATE KEY\""},
		{"corrupt DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x03, 1, 2, 3}}), "PRIVATE KEY"},
		{"two keys", append(append([]byte{}, ed...), p256...), "more than one private key"},
		{"legacy encrypted", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}, Bytes: []byte{1}}), "encrypted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKeyPEM(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseKeyPEM error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestGenerateKeyUnknownAlg(t *testing.T) {
	for _, alg := range []string{"HS256", "none", "ES384", "eddsa", "PS256"} {
		if _, err := GenerateKey(alg); err == nil {
			t.Errorf("GenerateKey(%q) succeeded", alg)
		}
	}
}

func TestLoadKeyFileMissing(t *testing.T) {
	_, err := LoadKeyFile(filepath.Join(t.TempDir(), "nope.pem"))
	if err == nil || !strings.Contains(err.Error(), "nope.pem") {
		t.Fatalf("error = %v, want one naming the file", err)
	}
}

// The kid is the RFC 7638 thumbprint: checked against the examples of RFC 7638 §3.1 (RSA) and
// RFC 8037 Appendix A (Ed25519).
func TestThumbprintVectors(t *testing.T) {
	b64 := base64.RawURLEncoding
	n, _ := b64.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	rsaPub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	seed, _ := b64.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	edKey, err := newKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	_, rsaKid, err := publicJWK(rsaPub)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, got, want string }{
		{"RFC 7638 RSA", rsaKid, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
		{"RFC 8037 Ed25519", edKey.ID(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"},
		{"RFC 8037 Ed25519 x", edKey.jwk.X, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, tt.got, tt.want)
		}
	}
}
