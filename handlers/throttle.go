package handlers

import (
	"context"
	"net/netip"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tokend/tokend/redisstore"
)

// Limiter is the fleet-wide rate limiter (redisstore: LimitTake and
// LimitForgive over one Lua script every replica shares).
type Limiter interface {
	// LimitTake counts one attempt against every counter of each group, all
	// or none within a group; a group's wait is 0 when it allowed the
	// attempt, else how long until it would.
	LimitTake(ctx context.Context, window time.Duration, groups ...redisstore.LimitGroup) ([]time.Duration, error)
	// LimitForgive takes one attempt back from every counter of each group.
	LimitForgive(ctx context.Context, groups ...redisstore.LimitGroup) error
}

// addrTag names a client address for the limiter: the address itself, or
// for IPv6 its /64 (one subscriber commonly holds a whole /64).
func addrTag(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "a:" + addr
	}
	if a = a.Unmap(); a.Is6() {
		p, _ := a.Prefix(64)
		return "a:" + p.String()
	}
	return "a:" + a.String()
}

// takeLimits counts one attempt against groups. If any group refuses, the
// attempt counts nowhere (what other groups counted is taken back) and the
// longest wait is returned, else 0.
func takeLimits(ctx context.Context, l Limiter, window time.Duration, groups ...redisstore.LimitGroup) (time.Duration, error) {
	waits, err := l.LimitTake(ctx, window, groups...)
	if err != nil {
		return 0, err
	}
	var wait time.Duration
	var counted []redisstore.LimitGroup
	for i, w := range waits {
		wait = max(wait, w)
		if w == 0 {
			counted = append(counted, groups[i])
		}
	}
	if wait > 0 && len(counted) > 0 {
		if err := l.LimitForgive(ctx, counted...); err != nil {
			return 0, err
		}
	}
	return wait, nil
}

// retryInfoType is google.rpc.RetryInfo's name: gRPC clients read a
// resource_exhausted error's retry delay from this detail.
const retryInfoType = "type.googleapis.com/google.rpc.RetryInfo"

// throttled is the answer to a throttled call: resource_exhausted with a
// google.rpc.RetryInfo detail saying when to retry (whole seconds, as
// Retry-After). The detail is encoded here, by its wire format
// (RetryInfo{retry_delay: Duration{seconds}}), rather than by importing
// the googleapis types for one message.
func throttled(wait time.Duration) *connect.Error {
	err := connect.NewError(connect.CodeResourceExhausted, errThrottled)
	secs := retrySeconds(wait)
	var dur, info []byte
	dur = protowire.AppendTag(dur, 1, protowire.VarintType) // Duration.seconds
	dur = protowire.AppendVarint(dur, uint64(secs))
	info = protowire.AppendTag(info, 1, protowire.BytesType) // RetryInfo.retry_delay
	info = protowire.AppendBytes(info, dur)
	if d, e := connect.NewErrorDetail(&anypb.Any{TypeUrl: retryInfoType, Value: info}); e == nil {
		err.AddDetail(d)
	}
	return err
}

// retrySeconds rounds a wait up to whole seconds (at least 1).
func retrySeconds(wait time.Duration) int64 {
	return max(1, int64((wait+time.Second-1)/time.Second))
}

// RetryAfter returns the retry delay of a throttled error, in seconds.
func RetryAfter(err error) (int64, bool) {
	ce, ok := err.(*connect.Error)
	if !ok || ce.Code() != connect.CodeResourceExhausted {
		return 0, false
	}
	for _, d := range ce.Details() {
		if "type.googleapis.com/"+d.Type() != retryInfoType {
			continue
		}
		b := d.Bytes()
		if num, typ, n := protowire.ConsumeTag(b); n > 0 && num == 1 && typ == protowire.BytesType {
			dur, m := protowire.ConsumeBytes(b[n:])
			if m < 0 {
				return 0, false
			}
			if num, typ, n := protowire.ConsumeTag(dur); n > 0 && num == 1 && typ == protowire.VarintType {
				secs, m := protowire.ConsumeVarint(dur[n:])
				if m > 0 {
					return int64(secs), true
				}
			}
		}
	}
	return 0, false
}
