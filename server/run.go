package server

import (
	"context"
	"io"
	"log/slog"
	"strings"

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
// gracefully: RunFile without a file to reload.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	return RunFile(ctx, "", cfg, log)
}
