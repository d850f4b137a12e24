// The hand-off between accepted invocations and runtimes waiting in GET /invocation/next: each
// pending invocation goes to the next runtime that asks, in arrival order. Admission (at most
// LAMBDALET_CONCURRENCY invocations in flight) happens before an invocation gets here, so the
// queue holds at most that many live entries; entries that ended while waiting are dropped.

package main

import (
	"context"
	"sync"
)

type queue struct {
	mu      sync.Mutex
	pending []*invocation
	waiters []chan *invocation // runtimes blocked in next, oldest first; each buffered (1)
}

// push hands inv to the longest-waiting runtime, or keeps it for the next one that asks.
func (q *queue) push(inv *invocation) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiters) > 0 {
		w := q.waiters[0]
		q.waiters = q.waiters[1:]
		w <- inv
		return
	}
	live := q.pending[:0]
	for _, p := range q.pending {
		if !p.isFinished() {
			live = append(live, p)
		}
	}
	q.pending = append(live, inv)
}

// requeue puts back an invocation a runtime took but could not be given (it went away).
func (q *queue) requeue(inv *invocation) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiters) > 0 {
		w := q.waiters[0]
		q.waiters = q.waiters[1:]
		w <- inv
		return
	}
	q.pending = append([]*invocation{inv}, q.pending...)
}

// next waits for an invocation that has not ended, until ctx is done.
func (q *queue) next(ctx context.Context) (*invocation, error) {
	q.mu.Lock()
	for len(q.pending) > 0 {
		inv := q.pending[0]
		q.pending = q.pending[1:]
		if !inv.isFinished() {
			q.mu.Unlock()
			return inv, nil
		}
	}
	w := make(chan *invocation, 1)
	q.waiters = append(q.waiters, w)
	q.mu.Unlock()

	select {
	case inv := <-w:
		return inv, nil
	case <-ctx.Done():
		q.mu.Lock()
		for i, x := range q.waiters {
			if x == w {
				q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
				break
			}
		}
		q.mu.Unlock()
		select {
		case inv := <-w: // handed over just as the waiter gave up
			q.requeue(inv)
		default:
		}
		return nil, ctx.Err()
	}
}

// drain removes and returns every pending invocation (they are failed by the caller).
func (q *queue) drain() []*invocation {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.pending
	q.pending = nil
	return out
}
