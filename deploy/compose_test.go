package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/tokend/tokend/config"
)

// The repository root, relative to this package's directory (go test runs
// tests there).
const root = ".."

// loadProject loads ../compose.yaml as docker compose would, with the
// repository root as working directory, but with an empty environment (no
// OS variables, no .env) so that the result does not depend on the machine.
func loadProject(t *testing.T) *types.Project {
	t.Helper()
	wd, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(wd, "compose.yaml")},
		cli.WithWorkingDirectory(wd),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load compose.yaml: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return s
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, USER, ...
	args string
	line int
}

// stage is one build stage: its FROM and what follows it.
type stage struct {
	from  instruction
	insts []instruction
}

// parseDockerfile splits ../Dockerfile into stages. It handles what a
// Dockerfile needs here: comments, blank lines and backslash continuations.
func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		stages  []stage
		pending strings.Builder
		start   int
	)
	add := func(text string, line int) {
		cmd, args, _ := strings.Cut(strings.TrimSpace(text), " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: line}
		if in.cmd == "FROM" {
			stages = append(stages, stage{from: in})
			return
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile:%d: %s before the first FROM", line, in.cmd)
		}
		stages[len(stages)-1].insts = append(stages[len(stages)-1].insts, in)
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue // comments may sit inside a continued instruction too
		}
		if pending.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(l, `\`); ok {
			pending.WriteString(body + " ")
			continue
		}
		pending.WriteString(l)
		add(pending.String(), start)
		pending.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if pending.Len() > 0 {
		t.Fatalf("Dockerfile:%d: continuation at end of file", start)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s); want a multi-stage build (builder, then runtime)", len(stages))
	}
	return stages
}

// execForm decodes an exec-form (JSON array) argument such as
// ["/tokend", "healthcheck"]; ok is false for shell form.
func execForm(s string) (argv []string, ok bool) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "[") {
		return nil, false
	}
	if err := json.Unmarshal([]byte(s), &argv); err != nil || len(argv) == 0 {
		return nil, false
	}
	return argv, true
}

// finalUser is the user the image runs as: the last USER of the final stage
// ("" when there is none, which means root).
func finalUser(final stage) string {
	u := ""
	for _, in := range final.insts {
		if in.cmd == "USER" {
			u = in.args
		}
	}
	return u
}

// isRoot reports whether a user spec "user[:group]" is root; the empty spec
// is root too (the image default).
func isRoot(spec string) bool {
	u, _, _ := strings.Cut(spec, ":")
	u = strings.TrimSpace(u)
	return u == "" || u == "root" || strings.Trim(u, "0") == "" // "0", "00"
}

// imageBinary is the path of tokend in the image: the exec-form ENTRYPOINT
// of the final stage.
func imageBinary(t *testing.T, final stage) string {
	t.Helper()
	bin := ""
	for _, in := range final.insts {
		if in.cmd == "ENTRYPOINT" {
			argv, ok := execForm(in.args)
			if !ok {
				t.Fatalf("Dockerfile:%d: ENTRYPOINT must be exec form (JSON array): the image has no shell", in.line)
			}
			bin = argv[0]
		}
	}
	if bin == "" {
		t.Fatal("Dockerfile: final stage has no ENTRYPOINT")
	}
	return bin
}

func TestComposeServices(t *testing.T) {
	p := loadProject(t)
	for _, name := range []string{"tokend", "redis"} {
		s := service(t, p, name)
		if s.Restart != types.RestartPolicyUnlessStopped {
			t.Errorf("%s: restart = %q, want %q", name, s.Restart, types.RestartPolicyUnlessStopped)
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s: no healthcheck", name)
		}
	}
}

func TestComposeTokendPublishesOnLoopbackOnly(t *testing.T) {
	p := loadProject(t)
	tokend := service(t, p, "tokend")
	found := false
	for _, port := range tokend.Ports {
		if port.HostIP != "127.0.0.1" {
			t.Errorf("tokend: port %d published on host_ip %q; want 127.0.0.1 only", port.Target, port.HostIP)
		}
		if port.Target == 8080 && port.HostIP == "127.0.0.1" && port.Published == "8080" {
			found = true
		}
	}
	if !found {
		t.Errorf("tokend: ports = %+v; want container port 8080 published as 127.0.0.1:8080", tokend.Ports)
	}
	// The listen address must be reachable through that port from outside
	// the container: all interfaces, port 8080.
	addr := env(t, tokend, config.EnvAddr)
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "8080" || (host != "" && host != "0.0.0.0" && host != "::") {
		t.Errorf("tokend: %s = %q; want 0.0.0.0:8080", config.EnvAddr, addr)
	}
	// Redis is for tokend alone: unpublished, or on loopback.
	for _, port := range service(t, p, "redis").Ports {
		if port.HostIP != "127.0.0.1" {
			t.Errorf("redis: port %d published on host_ip %q; want it unpublished (or 127.0.0.1 only)", port.Target, port.HostIP)
		}
	}
}

func TestComposeTokendWaitsForHealthyRedis(t *testing.T) {
	p := loadProject(t)
	dep, ok := service(t, p, "tokend").DependsOn["redis"]
	if !ok {
		t.Fatal("tokend: does not depend_on redis")
	}
	if dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("tokend: depends_on redis condition = %q, want %q", dep.Condition, types.ServiceConditionHealthy)
	}
}

func TestComposeHealthchecks(t *testing.T) {
	p := loadProject(t)
	final := parseDockerfile(t)
	bin := imageBinary(t, final[len(final)-1])

	// tokend: the binary checks itself (the image has no shell or curl).
	hc := service(t, p, "tokend").HealthCheck
	if hc == nil {
		t.Fatal("tokend: no healthcheck")
	}
	if want := []string{"CMD", bin, "healthcheck"}; !slices.Equal(hc.Test[:min(3, len(hc.Test))], want) {
		t.Errorf("tokend: healthcheck test = %q, want it to start %q (exec form: the image has no shell)", hc.Test, want)
	}

	hc = service(t, p, "redis").HealthCheck
	if hc == nil {
		t.Fatal("redis: no healthcheck")
	}
	if len(hc.Test) < 2 || (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL") ||
		!strings.Contains(strings.Join(hc.Test[1:], " "), "redis-cli") ||
		!strings.Contains(strings.Join(hc.Test[1:], " "), "ping") {
		t.Errorf("redis: healthcheck test = %q, want redis-cli ping", hc.Test)
	}
}

func TestComposeRedisURL(t *testing.T) {
	p := loadProject(t)
	raw := env(t, service(t, p, "tokend"), config.EnvRedisURL)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("tokend: %s = %q: %v", config.EnvRedisURL, raw, err)
	}
	if u.Scheme != "redis" {
		t.Errorf("tokend: %s scheme = %q, want redis", config.EnvRedisURL, u.Scheme)
	}
	if _, err := p.GetService(u.Hostname()); err != nil || u.Hostname() != "redis" {
		t.Errorf("tokend: %s host = %q, want the redis service's name", config.EnvRedisURL, u.Hostname())
	}
	if u.Port() != "6379" {
		t.Errorf("tokend: %s port = %q, want 6379", config.EnvRedisURL, u.Port())
	}
	if cmd := service(t, p, "redis").Command; slices.Contains(cmd, "--port") {
		if i := slices.Index(cmd, "--port"); i+1 >= len(cmd) || cmd[i+1] != u.Port() {
			t.Errorf("redis: command %q sets a port other than %s's", cmd, config.EnvRedisURL)
		}
	}
}

func TestComposeRedisPersistence(t *testing.T) {
	p := loadProject(t)
	redis := service(t, p, "redis")
	if !strings.HasPrefix(redis.Image, "redis:7") {
		t.Errorf("redis: image = %q, want redis:7.x", redis.Image)
	}
	cmd := redis.Command
	if i := slices.Index(cmd, "--appendonly"); i < 0 || i+1 >= len(cmd) || cmd[i+1] != "yes" {
		t.Errorf("redis: command = %q, want --appendonly yes (AOF persistence)", cmd)
	}
	var data *types.ServiceVolumeConfig
	for i, v := range redis.Volumes {
		if v.Target == "/data" {
			data = &redis.Volumes[i]
		}
	}
	switch {
	case data == nil:
		t.Errorf("redis: nothing mounted at /data; the AOF would die with the container")
	case data.Type != types.VolumeTypeVolume:
		t.Errorf("redis: /data is a %s mount, want a named volume", data.Type)
	case data.ReadOnly:
		t.Errorf("redis: /data is read-only")
	default:
		if _, ok := p.Volumes[data.Source]; !ok {
			t.Errorf("redis: volume %q at /data is not declared under top-level volumes", data.Source)
		}
	}
}

func TestComposeTokendHardening(t *testing.T) {
	p := loadProject(t)
	tokend := service(t, p, "tokend")
	if tokend.Build == nil {
		t.Fatal("tokend: no build section")
	}
	if ctx, _ := filepath.Abs(root); filepath.Clean(tokend.Build.Context) != ctx {
		t.Errorf("tokend: build context = %q, want the repository root %q", tokend.Build.Context, ctx)
	}
	if df := tokend.Build.Dockerfile; df != "" && df != "Dockerfile" {
		t.Errorf("tokend: builds from %q; this test checks Dockerfile", df)
	}
	if !tokend.ReadOnly {
		t.Error("tokend: read_only is not set")
	}
	if !slices.ContainsFunc(tokend.CapDrop, func(c string) bool { return strings.EqualFold(c, "ALL") }) {
		t.Errorf("tokend: cap_drop = %q, want ALL", tokend.CapDrop)
	}
	if len(tokend.CapAdd) > 0 {
		t.Errorf("tokend: cap_add = %q, want none", tokend.CapAdd)
	}
	if !slices.ContainsFunc(tokend.SecurityOpt, func(o string) bool {
		return o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true"
	}) {
		t.Errorf("tokend: security_opt = %q, want no-new-privileges", tokend.SecurityOpt)
	}
	if tokend.Privileged {
		t.Error("tokend: privileged")
	}
	// Non-root: the image's USER, which compose must not override with root.
	stages := parseDockerfile(t)
	if u := finalUser(stages[len(stages)-1]); isRoot(u) {
		t.Errorf("Dockerfile: final stage runs as %q; want a non-root USER (e.g. 65532:65532)", u)
	}
	if tokend.User != "" && isRoot(tokend.User) {
		t.Errorf("tokend: user = %q overrides the image's non-root USER with root", tokend.User)
	}
}

// TestComposeTokendConfig checks that the configuration file compose mounts
// exists, is what tokend is told to read, is valid with compose's
// environment overrides, and that its signing keys come from a read-only
// mount of the host's deploy/keys (never from the image).
func TestComposeTokendConfig(t *testing.T) {
	p := loadProject(t)
	tokend := service(t, p, "tokend")

	cmd := tokend.Command
	i := slices.Index(cmd, "--config")
	if len(cmd) == 0 || cmd[0] != "serve" || i < 0 || i+1 >= len(cmd) {
		t.Fatalf("tokend: command = %q, want serve --config FILE", cmd)
	}
	target := cmd[i+1]

	mount := bindMount(t, tokend, target)
	if mount == nil {
		t.Fatalf("tokend: nothing is mounted at %s, the --config file", target)
	}
	if !mount.ReadOnly {
		t.Errorf("tokend: %s is mounted read-write; want read-only", target)
	}
	src := hostPath(t, mount.Source)
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatalf("tokend: config mount source: %v", err)
	}
	if !fi.Mode().IsRegular() {
		t.Fatalf("tokend: config mount source %s is not a file", src)
	}

	cfg, err := config.Load(src, func(k string) string {
		if v := tokend.Environment[k]; v != nil {
			return *v
		}
		return ""
	})
	if err != nil {
		t.Fatalf("tokend: the mounted configuration is invalid:\n%v", err)
	}
	if cfg.Redis.URL == "" {
		t.Error("config: redis.url is empty: tokend would run on embedded in-memory Redis")
	}
	// The issuer is what clients outside see: the published host port.
	if u, err := url.Parse(cfg.Issuer); err != nil || u.Port() != "8080" {
		t.Errorf("config: issuer = %q, want the host port compose publishes (8080)", cfg.Issuer)
	}

	if len(cfg.Signing.KeyFiles) == 0 {
		t.Error("config: signing.key_files is empty: a key generated at start dies with every restart, and with it every token")
	}
	keys := hostPath(t, filepath.Join("deploy", "keys"))
	for _, f := range cfg.Signing.KeyFiles {
		m := bindMount(t, tokend, f)
		if m == nil {
			t.Errorf("config: signing key %s is not under any bind mount of the tokend service", f)
			continue
		}
		if !m.ReadOnly {
			t.Errorf("tokend: signing keys are mounted read-write at %s; want read-only", m.Target)
		}
		if rel, err := filepath.Rel(keys, hostPath(t, m.Source)); err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("tokend: signing key %s comes from %s; want it under deploy/keys", f, m.Source)
		}
	}
}

// TestDockerfile checks the build: a multi-stage build of a static binary
// (CGO_ENABLED=0, -trimpath, -ldflags "-s -w") on the Go release go.mod
// names, with modules in their own cached layer; and a final stage without a
// shell-based HEALTHCHECK, since the runtime image has no shell.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	final := stages[len(stages)-1]

	// The builder: the stage whose output the final stage copies.
	var from string
	for _, in := range final.insts {
		if in.cmd == "COPY" && strings.Contains(in.args, "--from=") {
			for _, f := range strings.Fields(in.args) {
				if v, ok := strings.CutPrefix(f, "--from="); ok {
					from = v
				}
			}
		}
	}
	if from == "" {
		t.Fatal("Dockerfile: final stage copies nothing from a builder stage (COPY --from=...)")
	}
	var build *stage
	for i, s := range stages[:len(stages)-1] {
		f := strings.Fields(s.from.args)
		if len(f) == 3 && strings.EqualFold(f[1], "AS") && f[2] == from {
			build = &stages[i]
		}
	}
	if build == nil {
		t.Fatalf("Dockerfile: no stage named %q", from)
	}

	// Builder image: the Go release in go.mod.
	goVer := goDirective(t)
	if img := strings.Fields(build.from.args)[0]; !strings.HasPrefix(img, "golang:"+goVer) {
		t.Errorf("Dockerfile:%d: builder image %q; want golang:%s (go.mod says go %s)", build.from.line, img, goVer, goVer)
	}

	var (
		cgoOff        bool
		modsCopied    int // line of COPY go.mod go.sum
		modsLoaded    int // line of RUN go mod download
		srcCopied     int // line of COPY . .
		built         bool
		buildLine     int
		buildCommands string
	)
	for _, in := range build.insts {
		switch in.cmd {
		case "ENV", "ARG":
			f := strings.Fields(in.args)
			if slices.Contains(f, "CGO_ENABLED=0") || (len(f) == 2 && f[0] == "CGO_ENABLED" && f[1] == "0") {
				cgoOff = true
			}
		case "COPY":
			f := strings.Fields(in.args)
			if slices.Contains(f, "go.mod") && slices.Contains(f, "go.sum") && !slices.Contains(f, ".") {
				modsCopied = in.line
			}
			if len(f) >= 2 && f[len(f)-2] == "." {
				srcCopied = in.line
			}
		case "RUN":
			if strings.Contains(in.args, "go mod download") {
				modsLoaded = in.line
			}
			if strings.Contains(in.args, "go build") {
				built, buildLine, buildCommands = true, in.line, in.args
				if strings.Contains(in.args, "CGO_ENABLED=0") {
					cgoOff = true
				}
			}
		}
	}
	if !built {
		t.Fatalf("Dockerfile: stage %q runs no go build", from)
	}
	if !cgoOff {
		t.Errorf("Dockerfile: stage %q does not build with CGO_ENABLED=0 (the runtime image has no libc)", from)
	}
	for _, flag := range []string{"-trimpath", "-s -w"} {
		if !strings.Contains(buildCommands, flag) {
			t.Errorf("Dockerfile:%d: go build without %s", buildLine, flag)
		}
	}
	if modsCopied == 0 || modsLoaded == 0 || srcCopied == 0 || modsCopied >= modsLoaded || modsLoaded >= srcCopied {
		t.Errorf("Dockerfile: want COPY go.mod go.sum, then RUN go mod download, then COPY . . (modules in a cached layer); lines %d, %d, %d",
			modsCopied, modsLoaded, srcCopied)
	}

	// Runtime: exec-form commands only, no shell-based HEALTHCHECK.
	base := strings.Fields(final.from.args)[0]
	if base != "scratch" && !strings.Contains(base, "distroless/static") {
		t.Errorf("Dockerfile:%d: final base %q; want distroless/static or scratch for a static binary", final.from.line, base)
	}
	for _, in := range final.insts {
		switch in.cmd {
		case "HEALTHCHECK":
			f := strings.Fields(in.args)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			if len(f) == 1 && strings.EqualFold(f[0], "NONE") {
				continue
			}
			if len(f) == 0 || !strings.EqualFold(f[0], "CMD") {
				t.Errorf("Dockerfile:%d: HEALTHCHECK %s: want CMD [...] or NONE", in.line, in.args)
				continue
			}
			argv, ok := execForm(strings.Join(f[1:], " "))
			if !ok {
				t.Errorf("Dockerfile:%d: HEALTHCHECK in shell form; the image has no shell: use CMD [\"/tokend\", \"healthcheck\"]", in.line)
				continue
			}
			if slices.Contains([]string{"sh", "bash", "ash", "curl", "wget"}, filepath.Base(argv[0])) {
				t.Errorf("Dockerfile:%d: HEALTHCHECK runs %s, which the image does not have", in.line, argv[0])
			}
		case "CMD", "ENTRYPOINT":
			if _, ok := execForm(in.args); !ok {
				t.Errorf("Dockerfile:%d: %s in shell form; the image has no shell", in.line, in.cmd)
			}
		case "RUN":
			t.Errorf("Dockerfile:%d: RUN in the final stage; the image has no shell", in.line)
		}
	}
	if bin := imageBinary(t, final); !slices.ContainsFunc(final.insts, func(in instruction) bool {
		f := strings.Fields(in.args)
		return in.cmd == "COPY" && len(f) > 0 && f[len(f)-1] == bin
	}) {
		t.Errorf("Dockerfile: ENTRYPOINT %s is not where the final stage copies the binary", bin)
	}
}

// TestDockerignore checks that keys and the repository's history never go
// to the build context.
func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimPrefix(l, "/"))
		}
	}
	for _, want := range []string{".git", "deploy/keys", "**/*.pem"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore: no %q", want)
		}
	}
	for _, p := range patterns {
		if strings.HasPrefix(p, "!") {
			t.Errorf(".dockerignore: exception %q; check it lets no key in", p)
		}
	}
}

// env is a service's environment variable, which must be set.
func env(t *testing.T, s types.ServiceConfig, key string) string {
	t.Helper()
	v := s.Environment[key]
	if v == nil || *v == "" {
		t.Fatalf("%s: environment %s is not set", s.Name, key)
	}
	return *v
}

// bindMount is the bind mount of s that holds the container path p: the
// file itself or a directory above it.
func bindMount(t *testing.T, s types.ServiceConfig, p string) *types.ServiceVolumeConfig {
	t.Helper()
	for i, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if rel, err := filepath.Rel(v.Target, p); err == nil && !strings.HasPrefix(rel, "..") {
			return &s.Volumes[i]
		}
	}
	return nil
}

// hostPath makes a mount source absolute against the repository root, as
// compose does.
func hostPath(t *testing.T, p string) string {
	t.Helper()
	if !filepath.IsAbs(p) {
		p = filepath.Join(root, p)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// goDirective is the major.minor Go release of go.mod's go line.
func goDirective(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "go "); ok {
			parts := strings.SplitN(strings.TrimSpace(v), ".", 3)
			if len(parts) >= 2 {
				return parts[0] + "." + parts[1]
			}
		}
	}
	t.Fatal("go.mod: no go directive")
	return ""
}
