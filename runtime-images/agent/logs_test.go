package main

import (
	"testing"
	"time"
)

func TestBilling(t *testing.T) {
	cases := []struct {
		d      time.Duration
		shown  string
		billed int64
	}{
		{12340 * time.Microsecond, "12.34", 13},
		{12 * time.Millisecond, "12.00", 12},
		{12*time.Millisecond + 4*time.Microsecond, "12.00", 12}, // shows 12.00, bills what it shows
		{12*time.Millisecond + 5*time.Microsecond, "12.01", 13},
		{0, "0.00", 1}, // at least 1 ms
		{999_996 * time.Microsecond, "1000.00", 1000},
		{3*time.Second + 1*time.Millisecond, "3001.00", 3001},
	}
	for _, tc := range cases {
		h := hundredthsOfMs(tc.d)
		if got := formatMs(h); got != tc.shown {
			t.Errorf("%v shown as %s, want %s", tc.d, got, tc.shown)
		}
		if got := billedMs(h); got != tc.billed {
			t.Errorf("%v billed %d ms, want %d", tc.d, got, tc.billed)
		}
	}
}

func TestReportLine(t *testing.T) {
	r := report{id: "abc", duration: 12340 * time.Microsecond, memoryMiB: 128, maxMemoryMiB: 45}
	want := "REPORT RequestId: abc\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 45 MB"
	if got := r.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	r.initDuration = 123456 * time.Microsecond
	if got := r.String(); got != want+"\tInit Duration: 123.46 ms" {
		t.Errorf("with init: %q", got)
	}
}

func TestPlatformLines(t *testing.T) {
	if got := startLine("abc", "$LATEST"); got != "START RequestId: abc Version: $LATEST" {
		t.Error(got)
	}
	if got := endLine("abc"); got != "END RequestId: abc" {
		t.Error(got)
	}
	want := "INIT_REPORT Init Duration: 52.00 ms\tPhase: init\tStatus: error\tError Type: Runtime.ImportModuleError"
	if got := initReportLine(52*time.Millisecond, "Runtime.ImportModuleError"); got != want {
		t.Error(got)
	}
}

func TestParseVmHWM(t *testing.T) {
	status := "Name:\tpython3\nVmPeak:\t  30000 kB\nVmHWM:\t   45120 kB\nVmRSS:\t   40000 kB\n"
	if got := parseVmHWM(status); got != 45120 {
		t.Errorf("got %d", got)
	}
	if got := parseVmHWM("Name:\tkthreadd\n"); got != 0 {
		t.Errorf("kernel thread: %d", got)
	}
}
