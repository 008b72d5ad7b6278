package handlers

import (
	"context"
	"errors"
	"log/slog"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/redisstore"
)

// Messages shared by every refusal of one kind, so that callers cannot tell
// which part of their credentials was wrong.
var (
	errBadLogin        = errors.New("invalid username or password")
	errBadRefreshToken = errors.New("invalid refresh token")
	errThrottled       = errors.New("too many failed attempts; try again later")
	errUnavailable     = errors.New("token store unavailable; try again")
	errQuota           = errors.New("the owner holds as many live tokens as allowed; delete some or let them expire")
	errInternal        = errors.New("internal error")
)

// storeError turns an unexpected store error into a connect error: Redis
// being unreachable is unavailable (the client may retry), anything else is
// internal and only the log learns the details. A read refused by its
// request's revocation precheck is unauthenticated.
func storeError(ctx context.Context, log *slog.Logger, op string, err error) *connect.Error {
	if errors.Is(err, redisstore.ErrRefused) { // the bearer check's own refusal (authn.Middleware.Defer) replaces this one
		return connect.NewError(connect.CodeUnauthenticated, errors.New("missing or invalid access token"))
	}
	if errors.Is(err, redisstore.ErrLimit) {
		return connect.NewError(connect.CodeResourceExhausted, errQuota)
	}
	if errors.Is(err, redisstore.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		log.WarnContext(ctx, "redis unavailable", "op", op, "err", err)
		return connect.NewError(connect.CodeUnavailable, errUnavailable)
	}
	if errors.Is(err, context.Canceled) {
		return connect.NewError(connect.CodeCanceled, err)
	}
	log.ErrorContext(ctx, "store error", "op", op, "err", err)
	return connect.NewError(connect.CodeInternal, errInternal)
}

func invalidArgument(msg string) *connect.Error {
	return connect.NewError(connect.CodeInvalidArgument, errors.New(msg))
}
