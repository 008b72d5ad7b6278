package system

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tokend/tokend/redisstore/redistest"
)

// webDir is the browser page's project (npm --prefix e2e/web run build).
const webDir = "../web"

type browserRun struct {
	Steps []struct {
		Transport, Step, Text string
		OK                    bool
	}
	Errors []string
}

// needBrowser skips (outside CI) or fails (in CI) when the page is not
// built or node or Chromium is missing.
func needBrowser(t *testing.T) {
	t.Helper()
	missing := ""
	switch {
	case !exists(filepath.Join(webDir, "dist", "main.js")):
		missing = "the page (npm --prefix e2e/web ci && npm --prefix e2e/web run build)"
	case !exists(filepath.Join(webDir, "node_modules", "playwright-core")):
		missing = "playwright-core (npm --prefix e2e/web ci)"
	case !onPath("node"):
		missing = "node"
	case !exists(chromiumPath()):
		missing = "Chromium at " + chromiumPath() + " (apt-get install chromium)"
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("browser test: %s is missing (.ci/run provides it)", missing)
	}
	t.Skipf("browser test: %s is missing; skipping (CI runs it)", missing)
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

func onPath(name string) bool { _, err := exec.LookPath(name); return err == nil }

func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// TestBrowser loads the page in headless Chromium from one origin while
// tokend serves on another, and checks that every step succeeded over both
// gRPC-Web and Connect. The screenshot is left in e2e/web/out/ (ignored by
// git). A second run, with the page's origin not allowed, shows the calls
// really depend on CORS.
func TestBrowser(t *testing.T) {
	needBrowser(t)
	page := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(webDir, "dist"))))
	defer page.Close()
	redis := redistest.Start(t)
	key := signingKey(t)

	allowed := startTokend(t, func(addr string) string {
		return configYAML(t, addr, redis.URL, key, "cors:\n  allowed_origins: ["+`"`+page.URL+`"`+"]\n"+
			"dpop:\n  nonce_rotate_every: 1m\n") // the page's DPoP interceptor fetches the nonce and retries
	})
	run := drive(t, page.URL, allowed.URL, "browser.png", "dpop", "1")
	if len(run.Errors) > 0 {
		t.Errorf("page errors: %v", run.Errors)
	}
	want := []string{"login", "wrong-password", "refresh", "create-api-token", "list-api-tokens",
		"trade-api-token", "delete-api-token", "create-m2m-token", "logout",
		// with a non-extractable WebCrypto key signing DPoP proofs
		"dpop-login", "dpop-refresh", "dpop-list-api-tokens", "dpop-create-api-token", "dpop-bearer-refused", "dpop-logout"}
	for _, transport := range []string{"grpc-web", "connect"} {
		done := map[string]bool{}
		for _, s := range run.Steps {
			if s.Transport != transport {
				continue
			}
			if !s.OK {
				t.Errorf("%s", s.Text)
			}
			done[s.Step] = s.OK
		}
		for _, step := range want {
			if !done[step] {
				t.Errorf("%s: step %s did not succeed", transport, step)
			}
		}
	}

	refused := startTokend(t, func(addr string) string {
		return configYAML(t, addr, redis.URL, key, "cors:\n  allowed_origins: [\"https://elsewhere.example\"]\n")
	})
	run = drive(t, page.URL, refused.URL, "browser-cors-refused.png")
	for _, s := range run.Steps {
		if s.Step == "login" && s.OK {
			t.Errorf("%s: login succeeded from an origin tokend does not allow", s.Transport)
		}
	}
	if len(run.Steps) != 2 {
		t.Errorf("with the origin refused, want one failed login per transport, got %+v", run.Steps)
	}
}

// drive opens the page against api (with extra query parameters, name and value) and returns what
// it showed.
func drive(t *testing.T, pageURL, api, screenshot string, extra ...string) browserRun {
	t.Helper()
	q := url.Values{"api": {api}, "user": {"alice"}, "password": {alicePassword},
		"m2m_client": {"svc"}, "m2m_secret": {clientSecret}, "m2m_audience": {"api"}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	out := filepath.Join(webDir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join(webDir, "drive.mjs"), pageURL+"/index.html?"+q.Encode(), filepath.Join(out, screenshot))
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromiumPath())
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("driving Chromium: %v\n%s", err, b)
	}
	var run browserRun
	if err := json.Unmarshal(b, &run); err != nil {
		t.Fatalf("driver output %q: %v", b, err)
	}
	t.Logf("%s: %d steps shown, screenshot e2e/web/out/%s", api, len(run.Steps), screenshot)
	return run
}
