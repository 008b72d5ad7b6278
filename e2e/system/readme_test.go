package system

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestREADMEExamples runs the README's command lines as written, against
// `tokend` in development mode (what `go run .` starts), the way a reader
// would: it reads the demo credentials off the banner, runs every `curl`
// and `grpcurl` line of the README's sh blocks in order, and fills each
// <placeholder> from the banner or from an earlier command's output. A
// command must exit 0 and, when it prints JSON, must not print an error.
// An unknown placeholder fails the test, so README and test stay in step.
func TestREADMEExamples(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		needTool(t, "curl")
	}
	if _, err := exec.LookPath("grpcurl"); err != nil {
		needTool(t, "grpcurl")
	}
	addr := freeAddr(t)
	banner := &syncBuffer{}
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(), "TOKEND_ADDR="+addr, "TOKEND_REDIS_URL=")
	cmd.Stdout, cmd.Stderr = banner, &syncBuffer{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitReady(t, "http://"+addr, banner)

	values := map[string]string{}
	for key, re := range map[string]*regexp.Regexp{
		"printed password":           regexp.MustCompile(`demo user\s+username=\S+\s+password=(\S+)`),
		"printed code client secret": regexp.MustCompile(`code client\s+client_id=\S+\s+client_secret=(\S+)`),
		"printed m2m client secret":  regexp.MustCompile(`m2m client\s+client_id=\S+\s+client_secret=(\S+)`),
	} {
		m := re.FindStringSubmatch(banner.String())
		if m == nil {
			t.Fatalf("the banner has no %s:\n%s", key, banner)
		}
		values[key] = m[1]
	}

	lines := readmeCommands(t)
	// The README's "try it" shows every API: each service is called by at
	// least one command, as is the OAuth token endpoint.
	all := strings.Join(lines, "\n")
	for _, want := range []string{"auth.v1.AuthService/", "auth.AuthService/",
		"priv.tokenservice.v1alpha1.TokenService/", "m2moauthserver.pb.M2MOAuthService/", "/oauth/token"} {
		if !strings.Contains(all, want) {
			t.Errorf("no README command calls %s", want)
		}
	}
	env := os.Environ()
	for _, line := range lines {
		line = strings.ReplaceAll(line, "127.0.0.1:8080", addr)
		line = fillPlaceholders(t, line, values)
		if name, ok := assignment(line); ok {
			// Let the shell evaluate the right-hand side, as a reader's would.
			c := exec.Command("sh", "-c", line+` && printf %s "$`+name+`"`)
			c.Env = env
			out, err := c.Output()
			if err != nil || len(out) == 0 {
				t.Fatalf("%s\nfailed (%v): %q", line, err, out)
			}
			env = append(env, name+"="+string(out))
			continue
		}
		c := exec.Command("sh", "-c", line)
		c.Env = env
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s\nfailed (%v):\n%s", line, err, out)
		}
		var doc map[string]any
		if json.Unmarshal(out, &doc) == nil {
			_, connectErr := doc["message"]
			if (doc["code"] != nil && connectErr) || doc["error"] != nil {
				t.Fatalf("%s\nanswered an error:\n%s", line, out)
			}
			remember(doc, values)
		}
		t.Logf("ok: %.120s", line)
	}
}

// needTool skips outside CI and fails in CI.
func needTool(t *testing.T, name string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (CI installs it in .ci/run)", name)
	}
	t.Skipf("%s is not installed: skipping the README examples (CI runs them)", name)
}

func waitReady(t *testing.T, url string, logs *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if code, _ := get(url + "/readyz"); code == 200 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("tokend dev not ready:\n%s", logs)
}

// readmeCommands returns the curl and grpcurl command lines (continuations
// joined) and shell assignments of README.md's sh blocks, in order: every
// one of them, so the README shows no command this test does not run.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	var inSh bool
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```sh"):
			inSh = true
			continue
		case strings.HasPrefix(line, "```"):
			inSh = false
			continue
		}
		if !inSh {
			continue
		}
		if cur.Len() > 0 || strings.HasPrefix(line, "curl ") || strings.HasPrefix(line, "grpcurl ") ||
			regexp.MustCompile(`^[A-Z_]+=`).MatchString(line) {
			if strings.HasSuffix(line, `\`) {
				cur.WriteString(strings.TrimSuffix(line, `\`))
				continue
			}
			cur.WriteString(line)
			cmds = append(cmds, stripComment(cur.String()))
			cur.Reset()
		}
	}
	return cmds
}

// stripComment drops a trailing "  # ..." comment outside quotes.
func stripComment(s string) string {
	var single, double bool
	for i, r := range s {
		switch {
		case r == '\'' && !double:
			single = !single
		case r == '"' && !single:
			double = !double
		case r == '#' && !single && !double && i > 0 && s[i-1] == ' ':
			return strings.TrimSpace(s[:i])
		}
	}
	return strings.TrimSpace(s)
}

var placeholder = regexp.MustCompile(`<([a-z][a-z0-9 ]*)>`)

// fillPlaceholders replaces every <name> in line by values[name].
func fillPlaceholders(t *testing.T, line string, values map[string]string) string {
	t.Helper()
	return placeholder.ReplaceAllStringFunc(line, func(m string) string {
		v, ok := values[m[1:len(m)-1]]
		if !ok {
			t.Fatalf("README placeholder %s: no value (known: %v)\nin: %s", m, keys(values), line)
		}
		return v
	})
}

func keys(m map[string]string) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	return k
}

// assignment recognises NAME=value lines.
func assignment(line string) (name string, ok bool) {
	m := regexp.MustCompile(`^([A-Z_]+)=`).FindStringSubmatch(line)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// remember keeps the values later README commands refer to.
func remember(doc map[string]any, values map[string]string) {
	str := func(k string) string { s, _ := doc[k].(string); return s }
	for k, name := range map[string]string{
		"accessToken": "access token", "access_token": "access token",
		"refreshToken": "refresh token", "refresh_token": "refresh token",
		"code": "code",
	} {
		if v := str(k); v != "" {
			values[name] = v
		}
	}
	if tok, ok := doc["token"].(map[string]any); ok {
		if s, _ := tok["secret"].(string); s != "" {
			values["api token secret"] = s
		}
		if s, _ := tok["id"].(string); s != "" {
			values["api token id"] = s
		}
	}
}
