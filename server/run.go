package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokend/tokend/config"
)

// NewLogger returns the process logger: JSON (production) or text, at the
// configured level.
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config; zero is info
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(c.Format, "text") {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// Run serves cfg until ctx is done (SIGTERM/SIGINT in main), then shuts down
// gracefully.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	// go-redis logs through one process-wide logger: set here, where the
	// process is run, not in New, which tests call many times.
	goredis.SetLogger(redisLogger{log})
	opts, shutdown, err := tracerFromEnv(ctx, os.Getenv)
	if err != nil {
		return err
	}
	defer shutdown()
	s, err := New(ctx, cfg, log, opts...)
	if err != nil {
		return err
	}
	defer s.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	return s.Serve(ctx, ln)
}
