package main

import (
	"context"
	"testing"
	"time"
)

func TestQueueOrderAndSkipsEnded(t *testing.T) {
	var q queue
	now := time.Now()
	a, b, c := newInvocation("a", nil, now, time.Second), newInvocation("b", nil, now, time.Second), newInvocation("c", nil, now, time.Second)
	q.push(a)
	q.push(b)
	q.push(c)
	b.finish(outcome{}, now) // timed out while waiting
	ctx := context.Background()
	for _, want := range []string{"a", "c"} {
		got, err := q.next(ctx)
		if err != nil || got.id != want {
			t.Fatalf("got %v %v, want %s", got, err, want)
		}
	}
}

func TestQueueHandsToWaitingRuntime(t *testing.T) {
	var q queue
	got := make(chan *invocation)
	go func() {
		inv, _ := q.next(context.Background())
		got <- inv
	}()
	waitFor(t, func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.waiters) == 1 })
	q.push(newInvocation("a", nil, time.Now(), time.Second))
	if inv := <-got; inv.id != "a" {
		t.Errorf("got %s", inv.id)
	}
}

func TestQueueWaiterThatGivesUp(t *testing.T) {
	var q queue
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := q.next(ctx)
		done <- err
	}()
	waitFor(t, func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.waiters) == 1 })
	cancel()
	if err := <-done; err == nil {
		t.Fatal("next returned no error after its context ended")
	}
	q.push(newInvocation("a", nil, time.Now(), time.Second)) // kept, not lost to the gone waiter
	if inv, err := q.next(context.Background()); err != nil || inv.id != "a" {
		t.Errorf("got %v %v", inv, err)
	}
}

func TestQueueDrain(t *testing.T) {
	var q queue
	q.push(newInvocation("a", nil, time.Now(), time.Second))
	q.push(newInvocation("b", nil, time.Now(), time.Second))
	if got := q.drain(); len(got) != 2 {
		t.Errorf("drained %d", len(got))
	}
	if len(q.drain()) != 0 {
		t.Error("drained twice")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}
