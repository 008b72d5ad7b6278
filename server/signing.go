package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/keyring"
	"github.com/tokend/tokend/redisstore"
)

// openKeys sets s.keys: from the key files, from the ring in Redis when a
// key-encryption key is configured (and then reads it every second,
// rotating when due), else a key generated now (development).
func (s *Server) openKeys(ctx context.Context) error {
	if !s.cfg.Signing.SharedKeys() {
		keys, err := loadKeys(s.cfg, s.log)
		s.keys = keys
		return err
	}
	ring, err := OpenRing(ctx, s.cfg, s.store, s.log)
	// Redis may come up after tokend (a fleet started at once): wait for it
	// a while, since nothing can be signed before the ring is read.
	for deadline := time.Now().Add(ringWait); errors.Is(err, redisstore.ErrUnavailable) && time.Now().Before(deadline); {
		s.log.Warn("signing keys: Redis unavailable; trying again", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		ring, err = OpenRing(ctx, s.cfg, s.store, s.log)
	}
	if err != nil {
		return err
	}
	s.keys = ring.Keys()
	s.background = append(s.background, ring.Run)
	s.log.Info("signing keys shared through Redis", "signer", s.keys.Signer().ID(), "published", len(s.keys.Keys()),
		"rotate_every", s.cfg.Signing.RotateEvery.String())
	return nil
}

// OpenRing opens the signing-key ring in Redis that cfg describes (its
// key-encryption key, algorithm and rotation period; keys retire for the
// longest token lifetime cfg allows).
func OpenRing(ctx context.Context, cfg *config.Config, store *redisstore.Store, log *slog.Logger) (*keyring.Ring, error) {
	kek, err := keyring.LoadKEK(cfg.Signing.KEKFile, cfg.Signing.KEK)
	if err != nil {
		return nil, err
	}
	if kek == nil {
		return nil, fmt.Errorf("signing: no key-encryption key (signing.kek_file or %s)", config.EnvSigningKEK)
	}
	opt := keyring.Options{
		KEK:           kek,
		Alg:           cfg.Signing.Alg,
		RotateEvery:   cfg.Signing.RotateEvery.D(),
		Lead:          cfg.Signing.PublishLead(),
		TokenLifetime: LongestTokenLifetime(cfg),
		PollEvery:     config.KeyPickup,
		Log:           log,
	}
	return keyring.Open(ctx, store, opt)
}

// ringWait bounds how long start waits for Redis to read the signing keys.
const ringWait = 30 * time.Second

// verifierLeeway is the clock skew verifiers allow past exp (tokens.NewVerifier's default).
const verifierLeeway = 30 * time.Second

// LongestTokenLifetime is the longest a token tokend signs under cfg may be
// accepted: the longest of tokens.access_ttl and every client's
// access_token_lifetime, plus the verifiers' leeway.
func LongestTokenLifetime(cfg *config.Config) time.Duration {
	d := cfg.Tokens.AccessTTL.D()
	for _, c := range cfg.Clients {
		d = max(d, c.AccessTokenLifetime.D())
	}
	return d + verifierLeeway
}

// jwks serves the current JWKS (the ring may change it at any time) with
// the configured max-age.
func (s *Server) jwks() http.Handler {
	maxAge := strconv.Itoa(int(s.cfg.Signing.JWKSMaxAge.D() / time.Second))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		staticJSON(s.keys.JWKS(), maxAge).ServeHTTP(w, r)
	})
}
