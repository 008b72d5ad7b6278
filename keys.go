package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/keyring"
	"github.com/tokend/tokend/redisstore"
	"github.com/tokend/tokend/server"
)

// keysCmd lists or rotates the signing keys shared through Redis.
func keysCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "rotate") {
		return errors.New("keys: want list or rotate, e.g. tokend keys rotate --config FILE")
	}
	sub := args[0]
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	path := fs.String("config", "", "configuration file (YAML) of the servers")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("keys %s: --config FILE is required", sub)
	}
	cfg, err := config.Load(*path, os.Getenv)
	if err != nil {
		return err
	}
	if !cfg.Signing.SharedKeys() {
		return fmt.Errorf("keys %s: %s keeps no keys in Redis (set signing.kek_file or %s, and no signing.key_files)", sub, *path, config.EnvSigningKEK)
	}
	if cfg.Redis.URL == "" {
		return fmt.Errorf("keys %s: %s sets no redis.url", sub, *path)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	store, err := redisstore.Open(ctx, cfg.Redis.URL, redisstore.Options{})
	if err != nil {
		return fmt.Errorf("redis.url: %w", err)
	}
	defer store.Close()
	if sub == "list" {
		entries, kekID, err := keyring.Read(ctx, store)
		if err != nil {
			return err
		}
		return printKeys(stdout, entries, kekID)
	}
	ring, err := server.OpenRing(ctx, cfg, store, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	e, err := ring.Rotate(ctx)
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	fmt.Fprintf(stdout, "published %s (%s); it signs from %s\n", e.KID, e.Alg, unix(e.Activates))
	return nil
}

func printKeys(w io.Writer, entries []keyring.Entry, kekID string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "KID\tALG\tSTATE\tPUBLISHED\tSIGNS FROM\tRETIRES\tREMOVED\n")
	now := time.Now()
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.KID, e.Alg, e.State(now), unix(e.Published), unix(e.Activates), unix(e.Retires), unix(e.Removes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if kekID != "" {
		_, err := fmt.Fprintf(w, "sealed with key-encryption key %s\n", kekID)
		return err
	}
	_, err := fmt.Fprintln(w, "no keys in Redis yet: the first server to start makes one")
	return err
}

func unix(t int64) string {
	if t == 0 {
		return "-"
	}
	return time.Unix(t, 0).UTC().Format(time.RFC3339)
}
