package system

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	tsv1 "github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1"
	"github.com/tokend/tokend/gen/priv/tokenservice/v1alpha1/tokenservicev1alpha1connect"
	"github.com/tokend/tokend/redisstore/redistest"
)

// The fleet's timings: a key is published jwks_max_age plus 3 s (the
// replicas' pickup and a margin) before it signs, and a retired key stays
// published for the longest token lifetime plus the verifiers' 30 s leeway.
const (
	fleetMaxAge      = 2 * time.Second
	fleetLead        = fleetMaxAge + 3*time.Second
	fleetRotateEvery = 20 * time.Second
	fleetAccessTTL   = 3 * time.Second
	fleetRemoveAfter = fleetAccessTTL + 30*time.Second
)

// fleetConfig is one replica's configuration: keys in Redis under kek,
// users as listed (name → password).
func fleetConfig(t testing.TB, addr, redisURL, kek, pidFile string, users ...string) string {
	var us strings.Builder
	for i, u := range users {
		fmt.Fprintf(&us, "  - {id: %d, username: %s, password_hash: %q}\n", 7+i, u, hashOf(t, map[string]string{"alice": alicePassword, "bob": bobPassword}[u]))
	}
	return fmt.Sprintf(`addr: %q
issuer: "http://tokend.fleet.test"
pid_file: %q
redis:
  url: %q
signing:
  kek_file: %q
  rotate_every: %s
  jwks_max_age: %s
tokens:
  access_ttl: %s
  refresh_ttl: 1h
login_throttle: {max_failures: 100000, max_failures_per_user: 100000, window: 1m}
log: {format: json, level: info}
users:
%s`, addr, pidFile, redisURL, kek, fleetRotateEvery, fleetMaxAge, fleetAccessTTL, us.String())
}

// jwksVerifier is a resource server outside tokend: it fetches the JWKS,
// keeps it for the max-age the response names, and refreshes it only then
// (an unknown kid does not make it fetch early).
type jwksVerifier struct {
	url     string
	mu      sync.Mutex
	keys    map[string]ed25519.PublicKey
	expires time.Time
}

func (v *jwksVerifier) key(kid string) (ed25519.PublicKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if time.Now().After(v.expires) {
		keys, maxAge, err := fetchJWKS(v.url)
		if err != nil {
			return nil, err
		}
		v.keys, v.expires = keys, time.Now().Add(maxAge)
	}
	k, ok := v.keys[kid]
	if !ok {
		return nil, fmt.Errorf("kid %s not in the cached JWKS", kid)
	}
	return k, nil
}

func (v *jwksVerifier) verify(tok string) error {
	_, err := jwt.Parse(tok, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return v.key(kid)
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer("http://tokend.fleet.test"), jwt.WithExpirationRequired())
	return err
}

// fetchJWKS returns the Ed25519 keys of a JWKS and its max-age.
func fetchJWKS(url string) (map[string]ed25519.PublicKey, time.Duration, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	var doc struct {
		Keys []struct{ Kid, Crv, X string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, 0, err
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range doc.Keys {
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || k.Crv != "Ed25519" {
			return nil, 0, fmt.Errorf("bad key %s", k.Kid)
		}
		keys[k.Kid] = x
	}
	age, _ := strings.CutPrefix(resp.Header.Get("Cache-Control"), "public, max-age=")
	sec, err := strconv.Atoi(age)
	if err != nil {
		return nil, 0, fmt.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	return keys, time.Duration(sec) * time.Second, nil
}

func kidOf(t testing.TB, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct{ Kid string }
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

// TestFleetRotationAndReload runs two replicas over one Redis with their
// signing keys in it. Every 100 ms a user logs in on A, calls a
// bearer-checked procedure on B with the token, and an outside verifier
// that caches the JWKS for its max-age checks the token. Meanwhile keys
// rotate on demand (tokend keys rotate) and on schedule (rotate_every),
// and both replicas reload a changed file in turn (tokend reload). No call
// may fail; every kid is in both replicas' JWKS at least the max-age before
// the first token carries it; a retired key leaves after the last token it
// signed has expired, and its tokens are refused. The same on a Redis
// Cluster of 3 masters.
func TestFleetRotationAndReload(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two replicas through three rotations (about a minute)")
	}
	t.Run("redis", func(t *testing.T) { fleetRun(t, redistest.Start(t).URL) })
	t.Run("cluster", func(t *testing.T) { fleetRun(t, redistest.StartCluster(t, 3).URL) })
}

func fleetRun(t *testing.T, redisURL string) {
	dir := t.TempDir()
	kek := filepath.Join(dir, "kek")
	if err := os.WriteFile(kek, []byte(base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfgs [2]string
	var procs [2]*proc
	for i := range procs {
		pid := filepath.Join(dir, fmt.Sprintf("tokend-%d.pid", i))
		procs[i] = startTokend(t, func(addr string) string {
			cfgs[i] = fleetConfig(t, addr, redisURL, kek, pid, "alice")
			return cfgs[i]
		})
	}
	a, b := procs[0], procs[1]
	cfgPath := func(i int) string { return procs[i].File }

	// Who has published which kid since when, and which kid signed first when.
	var (
		mu         sync.Mutex
		published  = [2]map[string]time.Time{{}, {}}
		unpublish  = [2]map[string]time.Time{{}, {}}
		firstToken = map[string]time.Time{}
		lastToken  = map[string]string{}
		failures   []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // watch both JWKS documents
		for {
			for i, p := range procs {
				keys, _, err := fetchJWKS(p.URL + "/.well-known/jwks.json")
				if err != nil {
					fail("jwks of replica %d: %v", i, err)
					continue
				}
				now := time.Now()
				mu.Lock()
				for kid := range keys {
					if _, ok := published[i][kid]; !ok {
						published[i][kid] = now
					}
				}
				for kid := range published[i] {
					if _, ok := keys[kid]; !ok && unpublish[i][kid].IsZero() {
						unpublish[i][kid] = now
					}
				}
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	verifier := &jwksVerifier{url: b.URL + "/.well-known/jwks.json"}
	wg.Go(func() { // mint on A, use on B, verify outside
		authA := authv1connect.NewAuthServiceClient(http.DefaultClient, a.URL, jsonOpts...)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r, err := authA.Token(ctx, passwordLogin("alice", alicePassword))
			if err != nil {
				fail("login on A: %v", err)
				cancel()
				continue
			}
			tok := r.Msg.AccessToken
			kid := kidOf(t, tok)
			mu.Lock()
			if _, ok := firstToken[kid]; !ok {
				firstToken[kid] = time.Now()
			}
			lastToken[kid] = tok
			mu.Unlock()
			api := tokenservicev1alpha1connect.NewTokenServiceClient(http.DefaultClient, b.URL, withBearer(jsonOpts, tok)...)
			if _, err := api.ListTokens(ctx, connect.NewRequest(&tsv1.ListTokensRequest{})); err != nil {
				fail("bearer call on B with a token of %s: %v", kid, err)
			}
			if err := verifier.verify(tok); err != nil {
				fail("outside verifier, token of %s: %v", kid, err)
			}
			cancel()
		}
	})

	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binary, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("tokend %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	start := time.Now()
	at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) }

	at(2 * time.Second)
	out := run("keys", "rotate", "--config", cfgPath(0))
	t.Logf("keys rotate: %s", out)
	if _, err := exec.Command(binary, "keys", "rotate", "--config", cfgPath(1)).CombinedOutput(); err == nil {
		t.Error("a second rotation while a key waits to sign succeeded")
	}

	// reload both in turn: bob joins
	at(5 * time.Second)
	for i, p := range procs {
		cfgs[i] = strings.Replace(cfgs[i], "users:\n", "users:\n"+fmt.Sprintf("  - {id: 8, username: bob, password_hash: %q}\n", hashOf(t, bobPassword)), 1)
		if err := os.WriteFile(cfgPath(i), []byte(cfgs[i]), 0o600); err != nil {
			t.Fatal(err)
		}
		run("reload", "--config", cfgPath(i))
		waitLog(t, p, `"event":"config.reloaded"`, 5*time.Second)
		at(time.Duration(6+i) * time.Second)
	}
	for _, p := range procs {
		auth := authv1connect.NewAuthServiceClient(http.DefaultClient, p.URL, jsonOpts...)
		if _, err := auth.Token(context.Background(), passwordLogin("bob", bobPassword)); err != nil {
			t.Errorf("bob after the reload on %s: %v", p.Addr, err)
		}
	}

	// the first key retires when the one rotated on demand activates, and
	// leaves after the longest token lifetime; the scheduled rotation comes
	// rotate_every after that activation
	at(fleetLead + fleetRemoveAfter + 2*fleetRotateEvery/3 + 5*time.Second)
	close(stop)
	wg.Wait()
	t.Logf("keys list:\n%s", run("keys", "list", "--config", cfgPath(0)))

	mu.Lock()
	defer mu.Unlock()
	for _, f := range failures {
		t.Error(f)
	}
	if len(firstToken) < 3 {
		t.Errorf("tokens carried %d kids, want 3 (first key, on demand, scheduled): %v", len(firstToken), firstToken)
	}
	for kid, first := range firstToken {
		for i := range procs {
			pub, ok := published[i][kid]
			switch {
			case !ok:
				t.Errorf("kid %s signed but never in replica %d's JWKS", kid, i)
			case kid != firstKid(firstToken) && first.Sub(pub) < fleetMaxAge:
				t.Errorf("kid %s: in replica %d's JWKS %v before its first token, want ≥ the max-age %v", kid, i, first.Sub(pub), fleetMaxAge)
			}
		}
	}
	first := firstKid(firstToken)
	for i := range procs {
		gone := unpublish[i][first]
		if gone.IsZero() {
			t.Errorf("the first key %s is still in replica %d's JWKS", first, i)
			continue
		}
		if last := lastExpiry(t, lastToken[first]); gone.Before(last) {
			t.Errorf("the first key left replica %d's JWKS at %v, before its last token expired (%v)", i, gone, last)
		}
	}
	api := tokenservicev1alpha1connect.NewTokenServiceClient(http.DefaultClient, b.URL, withBearer(jsonOpts, lastToken[first])...)
	if _, err := api.ListTokens(context.Background(), connect.NewRequest(&tsv1.ListTokensRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("a token of the removed key: got %v, want unauthenticated", err)
	}
	// every rotation is made by exactly one replica: each key a replica
	// made went on to sign (a second replica's key would not)
	made := map[string]string{}
	for _, line := range strings.Split(a.logs.String()+b.logs.String(), "\n") {
		var ev struct{ Event, Kid, Reason string }
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == "key.rotated" {
			made[ev.Kid] = ev.Reason
		}
	}
	scheduled := 0
	for kid, reason := range made {
		if _, signed := firstToken[kid]; !signed {
			t.Errorf("a replica made key %s (%s) that never signed: more than one replica rotated", kid, reason)
		}
		if reason == "scheduled" {
			scheduled++
		}
	}
	if scheduled == 0 || len(made) != len(firstToken)-1 { // the on-demand key is the CLI's
		t.Errorf("replicas made %d keys (%d scheduled); tokens carried %d kids", len(made), scheduled, len(firstToken))
	}
}

// firstKid is the kid of the earliest token.
func firstKid(first map[string]time.Time) string {
	var kid string
	for k, at := range first {
		if kid == "" || at.Before(first[kid]) {
			kid = k
		}
	}
	return kid
}

// lastExpiry is tok's exp.
func lastExpiry(t testing.TB, tok string) time.Time {
	t.Helper()
	exp, _ := payload(t, tok)["exp"].(float64)
	return time.Unix(int64(exp), 0)
}

var errNoLog = errors.New("not logged")

// waitLog waits until p has logged want.
func waitLog(t testing.TB, p *proc, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(p.logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v: %s", p.Addr, errNoLog, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
