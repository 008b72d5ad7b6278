// Package deploy holds the files that run tokend in containers — the
// configuration deploy/tokend.compose.yaml, and the signing keys under
// deploy/keys that compose.yaml mounts — and tests that check the repository
// root's compose.yaml and Dockerfile against what tokend needs: Redis with
// AOF persistence on a volume, health checks that work without a shell,
// tokend waiting for a healthy Redis, publishing on loopback only, running as
// a non-root user from a static binary.
//
// The tests read the files only; they run no Docker and touch no network.
package deploy
