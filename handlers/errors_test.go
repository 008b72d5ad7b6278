package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/redisstore"
)

// TestConnectErrorTable: what a caller reads for each kind of handler
// error, and what only the log learns.
func TestConnectErrorTable(t *testing.T) {
	secret := errors.New("dial tcp 10.1.2.3:6379: connection refused")
	for _, c := range []struct {
		name   string
		err    error
		code   connect.Code
		msg    string // the message the caller reads
		logged bool
	}{
		{"refusal", errBadRefreshToken, connect.CodeUnauthenticated, errBadRefreshToken.Error(), false},
		{"wrapped refusal", fmt.Errorf("rotate: %w", errBadCode), connect.CodeUnauthenticated, errBadCode.Error(), false},
		{"argument", invalidArgument("user_id is required"), connect.CodeInvalidArgument, "user_id is required", false},
		{"sentinel as argument", badArgument{errNotCodeClient}, connect.CodeInvalidArgument, errNotCodeClient.Error(), false},
		{"throttled", throttledError{3 * time.Second}, connect.CodeResourceExhausted, errThrottled.Error(), false},
		{"quota", fmt.Errorf("store M2M token: %w", redisstore.ErrLimit), connect.CodeResourceExhausted, errQuota.Error(), false},
		{"not synced", errNotSynced, connect.CodeUnavailable, "token store unavailable; try again", false},
		{"redis down", fmt.Errorf("create code: %w: %w", redisstore.ErrUnavailable, secret), connect.CodeUnavailable, "token store unavailable; try again", true},
		{"deadline", fmt.Errorf("list %w: %w", secret, context.DeadlineExceeded), connect.CodeUnavailable, "token store unavailable; try again", true},
		{"refused read", fmt.Errorf("read M2M tokens: %w", redisstore.ErrRefused), connect.CodeUnauthenticated, "missing or invalid access token", false},
		{"canceled", context.Canceled, connect.CodeCanceled, context.Canceled.Error(), false},
		{"unexpected", fmt.Errorf("sign: %w", secret), connect.CodeInternal, errInternal.Error(), true},
		{"connect error as is", connect.NewError(connect.CodePermissionDenied, errors.New("kind not allowed")), connect.CodePermissionDenied, "kind not allowed", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			ce := report(context.Background(), slog.New(slog.NewTextHandler(&buf, nil)), "/p", c.err)
			if ce.Code() != c.code || ce.Message() != c.msg {
				t.Errorf("answered %v %q, want %v %q", ce.Code(), ce.Message(), c.code, c.msg)
			}
			if strings.Contains(ce.Message(), "10.1.2.3") {
				t.Errorf("the caller reads internals: %q", ce.Message())
			}
			if logged := buf.Len() > 0; logged != c.logged {
				t.Errorf("logged %v (%q), want %v", logged, buf.String(), c.logged)
			}
			if c.logged && !strings.Contains(buf.String(), "10.1.2.3") {
				t.Errorf("the log lacks the details: %q", buf.String())
			}
			if c.code == connect.CodeResourceExhausted && c.err == (throttledError{3 * time.Second}) {
				if s, ok := RetryAfter(ce); !ok || s != 3 {
					t.Errorf("retry after %d (%v), want 3", s, ok)
				}
			}
		})
	}
}

// TestRefusalMessagesAreDistinct: every refusal of the table has a message
// of its own, so that the table is the one place a message is written.
func TestRefusalMessagesAreDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range refusals {
		msg := r.err.Error()
		if r.answer != nil {
			msg = r.answer.Error()
		}
		if seen[msg] {
			t.Errorf("message %q twice in the table", msg)
		}
		seen[msg] = true
	}
}
