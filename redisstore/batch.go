package redisstore

import (
	"context"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// batcher pipelines the Redis calls of concurrent requests: a worker takes
// every call that is waiting and sends them in one pipeline, so a busy
// server pays one write and one read system call (on both sides) for many
// requests instead of one pair each. A lone request goes out at once: the
// worker never waits for company.
//
// Calls that revoke or rotate go through queues of their own: their
// pipelines end with a WAIT for replicas (see Durability), which holds the
// pipeline until a replica confirms (or, with none, for the whole timeout),
// and reads must not wait behind it.
type batcher struct {
	store   *Store
	ops     chan *batchOp // calls that need no replica's confirmation
	durable chan *batchOp // calls with a script of durableScripts
	stop    chan struct{}
	once    sync.Once
}

type batchOp struct {
	ctx   context.Context // the caller's, for its trace (pipelineContext)
	calls []scriptCall
	out   []redis.Cmder // set before done is sent on
	done  chan error
}

const (
	batchWorkers = 4   // pipelines in flight at once
	batchMax     = 128 // calls per pipeline
)

func (b *batcher) start() {
	b.once.Do(func() {
		b.ops = make(chan *batchOp, 1024)
		b.durable = make(chan *batchOp, 1024)
		for range batchWorkers {
			go b.work(b.ops)
			go b.work(b.durable)
		}
	})
}

func (b *batcher) work(queue <-chan *batchOp) {
	var ops []*batchOp
	var calls []scriptCall
	for {
		ops, calls = ops[:0], calls[:0]
		select {
		case op := <-queue:
			ops, calls = append(ops, op), append(calls, op.calls...)
		case <-b.stop:
			return
		}
	drain:
		for len(calls) < batchMax {
			select {
			case op := <-queue:
				ops, calls = append(ops, op), append(calls, op.calls...)
			default:
				break drain
			}
		}
		// Requests' own contexts may end while the pipeline runs; the
		// client's timeouts bound it.
		out, _ := b.store.runPipelined(pipelineContext(ops[0].ctx), calls)
		i := 0
		for _, op := range ops {
			var err error
			op.out = out[i : i+len(op.calls) : i+len(op.calls)]
			for _, c := range op.out {
				if e := c.Err(); e != nil && err == nil {
					err = e
				}
			}
			i += len(op.calls)
			op.done <- err
		}
	}
}

// run sends calls in a shared pipeline and returns their results (result i
// for calls[i]) and the first error among them; no results when the call
// never got an answer (ctx ended, store closed). The calls of one op keep
// their order within the pipeline.
//
// run sends no prechecks; see gated.
func (b *batcher) run(ctx context.Context, calls ...scriptCall) ([]redis.Cmder, error) {
	return b.gated(ctx, nil, calls...)
}

// gated is run behind a request's gate: read-only calls take the prechecks
// not yet sent along in the same op, and calls that write are sent only
// after every precheck has passed; either way gated returns ErrRefused, and
// no results, when one refuses.
func (b *batcher) gated(ctx context.Context, checks Gate, calls ...scriptCall) ([]redis.Cmder, error) {
	if len(checks) == 0 {
		return b.send(ctx, calls)
	}
	var mine []*Precheck
	if !writes(calls) {
		mine = claim(checks)
	}
	if len(mine) == 0 {
		if refused, err := Settle(ctx, checks...); err != nil || refused {
			return nil, refusal(refused, err)
		}
		return b.send(ctx, calls)
	}
	all := make([]scriptCall, 0, len(mine)+len(calls))
	for _, p := range mine {
		all = append(all, p.call)
	}
	out, err := b.send(ctx, append(all, calls...))
	finishAll(mine, out, err)
	if refused, cerr := verdict(ctx, checks); cerr != nil || refused {
		return nil, refusal(refused, cerr)
	}
	if out == nil {
		return nil, err
	}
	out, err = out[len(mine):], nil
	for _, c := range out {
		if err = c.Err(); err != nil {
			break
		}
	}
	return out, err
}

func refusal(refused bool, err error) error {
	if refused {
		return ErrRefused
	}
	return err
}

// writes reports whether any of calls may write: every script is taken to.
func writes(calls []scriptCall) bool {
	for _, c := range calls {
		if c.script != nil || c.write {
			return true
		}
	}
	return false
}

// send is run without prechecks.
func (b *batcher) send(ctx context.Context, calls []scriptCall) ([]redis.Cmder, error) {
	b.start()
	select {
	case <-b.stop:
		return nil, redis.ErrClosed
	default:
	}
	op := &batchOp{ctx: ctx, calls: calls, done: make(chan error, 1)}
	queue := b.ops
	if slices.ContainsFunc(calls, func(c scriptCall) bool { return durableScripts[c.script] }) {
		queue = b.durable
	}
	select {
	case queue <- op:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.stop:
		return nil, redis.ErrClosed
	}
	select {
	case err := <-op.done:
		return op.out, err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.stop: // closed while waiting: workers may be gone
		return nil, redis.ErrClosed
	}
}

// pipelineContext is the context a batch's pipeline runs under: without
// cancellation (see work), and carrying the first caller's span when it is
// being traced, so that the Redis spans (redisotel) join that caller's
// trace. Untraced, it is context.Background(): nothing is allocated.
func pipelineContext(ctx context.Context) context.Context {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return context.Background()
	}
	return trace.ContextWithSpan(context.Background(), trace.SpanFromContext(ctx))
}
