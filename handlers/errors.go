package handlers

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"connectrpc.com/connect"

	"github.com/tokend/tokend/authn"
	"github.com/tokend/tokend/redisstore"
)

// Handlers return errors that say what happened: a sentinel below, a
// badArgument, a throttledError, errNotSynced, or a store error wrapped
// with what was being done. The bearer check's refusals (missing token,
// store unavailable) are authn's, and so are their messages. ErrorInterceptor turns them into connect errors in one place
// (connectError's table); OAuthErrorFrom turns the same into RFC 6749
// errors for the form endpoints.

// Refusals, each message written once. Authentication failures of one kind
// share one message, so that callers cannot tell which part of their
// credentials was wrong.
var (
	errBadLogin        = errors.New("invalid username or password")
	errBadRefreshToken = errors.New("invalid refresh token")
	errBadClient       = errors.New("invalid client credentials")
	errBadCode         = errors.New("invalid authorization code")
	errBadAPIToken     = errors.New("invalid API token")

	errRedirectMismatch = errors.New("redirect_uri does not match the authorization request")
	errVerifierMismatch = errors.New("code_verifier is missing or does not match the code_challenge")

	errNotCodeClient       = errors.New("this client may not use the authorization_code grant")
	errNoRefreshGrant      = errors.New("this client may not use the refresh_token grant")
	errNoClientCredentials = errors.New("this client may not use the client_credentials grant")
	errNoPasswordGrant     = errors.New("this client may not use the password grant")
	errNotUsersToken       = errors.New("the access token must be the user's own sign-in token for user_id")
	errNoOwner             = errors.New("no owner: the client has none configured")

	errNoSuchAPIToken   = errors.New("no such API token")
	errTooManyAPITokens = errors.New("too many API tokens; delete some first")

	errThrottled = errors.New("too many failed attempts; try again later")
	errQuota     = errors.New("the owner holds as many live tokens as allowed; delete some or let them expire")
	errInternal  = errors.New("internal error")
)

// refusals is the table: which code each refusal gets, and the message the
// caller reads when it is not the error's own.
var refusals = []struct {
	err    error
	code   connect.Code
	answer error // nil: err's own message
}{
	{errBadLogin, connect.CodeUnauthenticated, nil},
	{errBadRefreshToken, connect.CodeUnauthenticated, nil},
	{errBadClient, connect.CodeUnauthenticated, nil},
	{errBadCode, connect.CodeUnauthenticated, nil},
	{errBadAPIToken, connect.CodeUnauthenticated, nil},
	{errRedirectMismatch, connect.CodeInvalidArgument, nil},
	{errVerifierMismatch, connect.CodeInvalidArgument, nil},
	{errNotCodeClient, connect.CodePermissionDenied, nil},
	{errNoRefreshGrant, connect.CodePermissionDenied, nil},
	{errNoClientCredentials, connect.CodePermissionDenied, nil},
	{errNoPasswordGrant, connect.CodePermissionDenied, nil},
	{errNotUsersToken, connect.CodePermissionDenied, nil},
	{errNoOwner, connect.CodePermissionDenied, nil},
	{errNoSuchAPIToken, connect.CodeNotFound, nil},
	{errTooManyAPITokens, connect.CodeResourceExhausted, nil},
	{redisstore.ErrLimit, connect.CodeResourceExhausted, errQuota},
}

// badArgument is a request the caller must change: invalid_argument with
// the wrapped error's message.
type badArgument struct{ error }

func (e badArgument) Unwrap() error { return e.error }

func invalidArgument(msg string) error { return badArgument{errors.New(msg)} }

// throttledError is a throttled call: errThrottled, retry after wait.
type throttledError struct{ wait time.Duration }

func (e throttledError) Error() string { return errThrottled.Error() }
func (e throttledError) Unwrap() error { return errThrottled }

// connectError is the one mapping of a handler's error to what the caller
// sees. internal is true when the caller sees less than the log must
// (unavailable, internal).
func connectError(err error) (ce *connect.Error, internal bool) {
	var arg badArgument
	var wait throttledError
	switch {
	case errors.As(err, &ce): // already answered (the bearer check's refusals)
		return ce, false
	case errors.As(err, &arg):
		return connect.NewError(connect.CodeInvalidArgument, arg.error), false
	case errors.As(err, &wait):
		return throttled(wait.wait), false
	case errors.Is(err, redisstore.ErrRefused): // a read refused by its request's revocation check
		return authn.ErrUnauthenticated(), false
	case errors.Is(err, errNotSynced): // the configuration is not recorded yet: retry once Redis answers
		return authn.ErrUnavailable(), false
	case errors.Is(err, redisstore.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return authn.ErrUnavailable(), true
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, context.Canceled), false
	}
	for _, r := range refusals {
		if errors.Is(err, r.err) {
			if r.answer == nil {
				return connect.NewError(r.code, r.err), false
			}
			return connect.NewError(r.code, r.answer), false
		}
	}
	return connect.NewError(connect.CodeInternal, errInternal), true
}

// report is connectError that logs what the caller is not told: Redis
// unreachable as a warning, anything unexpected as an error.
func report(ctx context.Context, log *slog.Logger, procedure string, err error) *connect.Error {
	ce, internal := connectError(err)
	if internal && log != nil {
		level := slog.LevelError
		if ce.Code() == connect.CodeUnavailable {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, ce.Message(), "procedure", procedure, "err", err)
	}
	return ce
}

// ErrorInterceptor turns the errors of every RPC handler into connect
// errors (connectError) and logs the internals.
func ErrorInterceptor(log *slog.Logger) connect.Interceptor { return errorInterceptor{log} }

type errorInterceptor struct{ log *slog.Logger }

func (i errorInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		resp, err := next(ctx, req)
		if err != nil {
			return nil, report(ctx, i.log, req.Spec().Procedure, err)
		}
		return resp, nil
	}
}

func (i errorInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i errorInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := next(ctx, conn); err != nil {
			return report(ctx, i.log, conn.Spec().Procedure, err)
		}
		return nil
	}
}
