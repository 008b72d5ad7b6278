package tokens

import (
	"testing"
	"time"
)

func BenchmarkSign(b *testing.B) {
	for _, alg := range algs {
		b.Run(alg, func(b *testing.B) {
			ks := mustKeySet(b, testKey(b, alg, 0))
			c := testClaims(time.Now())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ks.Sign(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, alg := range algs {
		b.Run(alg, func(b *testing.B) {
			ks := mustKeySet(b, testKey(b, alg, 0))
			tok := mustSign(b, ks, testClaims(time.Now()))
			for _, cache := range []struct {
				name string
				size int
			}{{"signature", 0}, {"remembered", DefaultCacheSize}} {
				b.Run(cache.name, func(b *testing.B) {
					v := NewVerifier(ks, testIssuer, WithCacheSize(cache.size))
					b.ReportAllocs()
					for b.Loop() {
						if _, err := v.Verify(tok); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
