package main

import (
	"syscall"
	"testing"
	"time"
)

func TestRestartDelay(t *testing.T) {
	cases := []struct {
		failures int
		want     time.Duration
	}{
		{0, 0},
		{1, 200 * time.Millisecond},
		{2, 400 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{6, 6400 * time.Millisecond},
		{7, 10 * time.Second},
		{1000, 10 * time.Second},
	}
	for _, tc := range cases {
		if got := restartDelay(tc.failures); got != tc.want {
			t.Errorf("%d failures: %v, want %v", tc.failures, got, tc.want)
		}
	}
}

func TestExitStatus(t *testing.T) {
	// A wait status: exit code in bits 8-15, or the terminating signal in bits 0-6.
	cases := []struct {
		ws   syscall.WaitStatus
		want string
	}{
		{syscall.WaitStatus(0), "exit status 0"},
		{syscall.WaitStatus(3 << 8), "exit status 3"},
		{syscall.WaitStatus(syscall.SIGKILL), "signal: killed"},
		{syscall.WaitStatus(syscall.SIGSEGV), "signal: segmentation fault"},
	}
	for _, tc := range cases {
		if got := exitStatus(tc.ws); got != tc.want {
			t.Errorf("%#x: %q, want %q", uint32(tc.ws), got, tc.want)
		}
	}
}
