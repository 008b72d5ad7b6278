package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tokend/tokend/config"
	"github.com/tokend/tokend/gen/auth/v1/authv1connect"
	m2mpb "github.com/tokend/tokend/gen/m2moauthserver/pb"
	"github.com/tokend/tokend/redisstore/redistest"
	"github.com/tokend/tokend/server"
)

// The caller's W3C traceparent: its trace and span ids.
const (
	callerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID  = "00f067aa0ba902b7"
	traceparent   = "00-" + callerTraceID + "-" + callerSpanID + "-01"
)

func withTraceparent() connect.ClientOption {
	return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Traceparent", traceparent)
			return next(ctx, req)
		}
	}))
}

// With tracing on, one RPC is a tree in the caller's trace: the HTTP
// request's span (child of the caller's), the RPC's span under it, and
// under that the secret's hash, the signature and the Redis calls. No
// attribute holds the secret, the password or a token.
func TestTracingSpanTree(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	redis := redistest.Start(t)
	ts := startWith(t, redis.URL, func(c *config.Config) {
		c.Clients = append(c.Clients, config.Client{ID: "svc", Owner: "svc-owner", SecretHash: m2mHash(),
			GrantTypes: []string{"client_credentials"}, Audiences: []string{"api"}, AccessTokenLifetime: config.Duration(time.Hour)})
	}, server.WithTracerProvider(tp))
	startSpans := len(rec.Ended())

	resp, err := m2mClient(ts, withTraceparent()).CreateToken(context.Background(), connect.NewRequest(&m2mpb.CreateTokenRequest{
		GrantType: "client_credentials", ClientId: "svc", ClientSecret: m2mSecret, Audience: []string{"api"}}))
	if err != nil {
		t.Fatal(err)
	}
	login, err := authv1connect.NewAuthServiceClient(http.DefaultClient, ts.URL, connect.WithProtoJSON(), withTraceparent()).
		Token(context.Background(), login("alice", password))
	if err != nil {
		t.Fatal(err)
	}

	spans := rec.Ended()[startSpans:]
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID().String()] = s
	}
	var httpSpan, rpcSpan sdktrace.ReadOnlySpan
	for _, s := range spans {
		if !s.Parent().IsValid() && strings.HasPrefix(s.Name(), "redis.") {
			continue // the store's own background work (dials, sweeps), no request's
		}
		if s.SpanContext().TraceID().String() != callerTraceID {
			t.Errorf("span %q is in trace %s, not the caller's", s.Name(), s.SpanContext().TraceID())
		}
		switch {
		case s.Name() == "POST /m2moauthserver.pb.M2MOAuthService/CreateToken":
			httpSpan = s
		case s.Name() == "m2moauthserver.pb.M2MOAuthService/CreateToken":
			rpcSpan = s
		}
	}
	if httpSpan == nil || rpcSpan == nil {
		t.Fatalf("no HTTP or RPC span for CreateToken among %v", names(spans))
	}
	if got := httpSpan.Parent().SpanID().String(); got != callerSpanID || !httpSpan.Parent().IsRemote() {
		t.Errorf("HTTP span's parent is %s, want the caller's %s", got, callerSpanID)
	}
	if rpcSpan.Parent().SpanID() != httpSpan.SpanContext().SpanID() {
		t.Error("the RPC span is not a child of the HTTP span")
	}
	under := map[string]int{} // names of spans below the RPC span
	for _, s := range spans {
		for p := s; p != nil; p = byID[p.Parent().SpanID().String()] {
			if p.Parent().SpanID() == rpcSpan.SpanContext().SpanID() {
				under[s.Name()]++
				break
			}
		}
	}
	for _, want := range []string{"passhash.verify", "tokens.sign"} {
		if under[want] == 0 {
			t.Errorf("no %s span under the RPC span; under it: %v", want, under)
		}
	}
	redisSpans := 0
	for name, n := range under {
		if strings.HasPrefix(name, "redis.pipeline eval") { // a script, through the store's batcher
			redisSpans += n
		}
	}
	if redisSpans == 0 {
		t.Errorf("no Redis script's span under the RPC span; under it: %v", under)
	}

	// nothing secret in any attribute or event
	secrets := []string{m2mSecret, password, resp.Msg.AccessToken, login.Msg.AccessToken, login.Msg.RefreshToken}
	for _, tok := range []string{resp.Msg.AccessToken, login.Msg.AccessToken} {
		secrets = append(secrets, tok[strings.LastIndex(tok, ".")+1:]) // the signature alone
	}
	for _, s := range spans {
		var values []string
		for _, a := range s.Attributes() {
			values = append(values, a.Value.String())
		}
		for _, e := range s.Events() {
			for _, a := range e.Attributes {
				values = append(values, a.Value.String())
			}
		}
		for _, v := range values {
			for _, sec := range secrets {
				if sec != "" && strings.Contains(v, sec) {
					t.Errorf("span %q has an attribute holding a secret or token: %q", s.Name(), v)
				}
			}
		}
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}
