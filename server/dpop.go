package server

import (
	"github.com/tokend/tokend/dpop"
)

// dpopChecker is the DPoP proof checker of the configuration: proofs recorded against replay in
// Redis (the fleet shares the record), nonces from Redis when dpop.nonce_rotate_every is set.
func (s *Server) dpopChecker() *dpop.Checker {
	var nonces *dpop.Nonces
	if every := s.cfg.DPoP.NonceRotateEvery.D(); every > 0 {
		nonces = dpop.NewNonces(s.store, every)
	}
	return dpop.NewChecker(dpop.Options{
		Issuer: s.cfg.Issuer,
		Window: s.cfg.DPoP.IATWindow.D(),
		Nonces: nonces,
		Replay: s.store.RecordDPoPProof,
	})
}
