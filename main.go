// Command tokend is a token service: authorization codes, password login with
// refresh-token rotation, API tokens and machine-to-machine tokens, served
// over Connect, gRPC and gRPC-Web on one port, with state in Redis.
//
//	tokend                         development server (embedded Redis, demo credentials)
//	tokend serve --config FILE     run from a configuration file
//	tokend hash [--bcrypt]         hash a password or secret read from standard input
//	tokend keygen [--alg ALG]      print a new PEM signing key (EdDSA, ES256, RS256)
//	tokend keys list|rotate --config FILE   the signing keys shared through Redis
//	tokend reload --config FILE    make the running server re-read its configuration
//	tokend healthcheck [--url U]   exit 0 when U (default http://127.0.0.1:8080/readyz) answers 200
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/passhash"
	"github.com/tokend/tokend/server"
	"github.com/tokend/tokend/tokens"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tokend:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, cancel := signalContext()
	defer cancel()
	return runContext(ctx, args, stdin, stdout, stderr)
}

// runContext runs a command until ctx is done (SIGTERM/SIGINT in main).
func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := ""
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "":
		return dev(ctx, stdout, stderr)
	case "serve":
		return serve(ctx, args, stderr)
	case "hash":
		return hash(args, stdin, stdout)
	case "keygen":
		return keygen(args, stdout)
	case "keys":
		return keysCmd(ctx, args, stdout)
	case "reload":
		return reload(args)
	case "healthcheck":
		return healthcheck(args)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
}

const usage = `usage:
  tokend                         development server (embedded Redis, demo credentials)
  tokend serve --config FILE     run from a configuration file (TOKEND_ADDR, TOKEND_REDIS_URL override it)
  tokend hash [--bcrypt]         hash a password or secret read from standard input
  tokend keygen [--alg ALG]      print a new PEM signing key: EdDSA (default), ES256 or RS256
  tokend healthcheck [--url U]   exit 0 when U (default http://127.0.0.1:8080/readyz) answers 200
  tokend keys list --config FILE     list the signing keys shared through Redis, with their states
  tokend keys rotate --config FILE   publish a new signing key now; it signs after signing.jwks_max_age
  tokend reload --config FILE    signal the server running with FILE (its pid_file) to re-read it
`

// servePprof serves Go's profiler on addr (config.EnvPprofAddr; empty:
// off), on its own listener so it is never reachable through the service
// port.
func servePprof(addr string, stderr io.Writer) {
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() {
		srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		fmt.Fprintln(stderr, "pprof:", srv.ListenAndServe())
	}()
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}

func dev(ctx context.Context, stdout, stderr io.Writer) error {
	cfg, cred, err := server.DevConfig(os.Getenv)
	if err != nil {
		return err
	}
	server.PrintDevBanner(stdout, cfg, cred)
	return server.Run(ctx, cfg, server.NewLogger(cfg.Log, stderr))
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := fs.String("config", "", "configuration file (YAML)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("serve: --config FILE is required")
	}
	cfg, err := config.Load(*path, os.Getenv)
	if err != nil {
		return err
	}
	if err := cfg.RequireSigningKeys(); err != nil {
		return err
	}
	servePprof(os.Getenv(config.EnvPprofAddr), stderr)
	return server.RunFile(ctx, *path, cfg, server.NewLogger(cfg.Log, stderr))
}

func hash(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("hash", flag.ContinueOnError)
	bcrypt := fs.Bool("bcrypt", false, "bcrypt (cost 12) instead of argon2id")
	if err := fs.Parse(args); err != nil {
		return err
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("hash: read standard input: %w", err)
	}
	secret := strings.TrimRight(line, "\r\n")
	if secret == "" {
		return errors.New("hash: empty input; pipe the password or secret in, e.g. printf %s \"$PASSWORD\" | tokend hash")
	}
	var h string
	if *bcrypt {
		h, err = passhash.HashBcrypt(secret, 12)
	} else {
		h, err = passhash.Hash(secret)
	}
	if err != nil {
		return fmt.Errorf("hash: %w", err)
	}
	_, err = fmt.Fprintln(stdout, h)
	return err
}

func keygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	alg := fs.String("alg", "EdDSA", "EdDSA, ES256 or RS256")
	if err := fs.Parse(args); err != nil {
		return err
	}
	k, err := tokens.GenerateKey(*alg)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	pem, err := k.MarshalPEM()
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	_, err = stdout.Write(pem)
	return err
}

func healthcheck(args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080/readyz", "URL that must answer 200")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(*url)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", *url, resp.Status)
	}
	return nil
}

// reload asks a running server to re-read its configuration: it sends
// SIGHUP to the process whose id is in the pid file (--pid-file, or the
// pid_file of --config).
func reload(args []string) error {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	path := fs.String("config", "", "configuration file of the running server (its pid_file is read)")
	pidFile := fs.String("pid-file", "", "pid file of the running server")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pidFile == "" && *path != "" {
		cfg, err := config.Load(*path, os.Getenv)
		if err != nil {
			return err
		}
		*pidFile = cfg.PIDFile
		if *pidFile == "" {
			return fmt.Errorf("reload: %s sets no pid_file; set one (the server writes its process id there) or send SIGHUP yourself", *path)
		}
	}
	if *pidFile == "" {
		return errors.New("reload: --config FILE or --pid-file FILE is required")
	}
	b, err := os.ReadFile(*pidFile)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("reload: %s does not hold a process id", *pidFile)
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("reload: signal process %d: %w", pid, err)
	}
	return nil
}
