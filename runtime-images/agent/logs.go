// The function's log: the platform lines Lambda writes around each invocation (START, END,
// REPORT with its duration and billing arithmetic, INIT_REPORT for a failed init), written to
// stdout a whole line per write so they interleave cleanly with the runtime's own output, which
// goes to the same stdout directly. Max Memory Used is read from /proc.

package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

type logger struct {
	mu sync.Mutex
	w  io.Writer
}

// line writes s as one line, in one write.
func (l *logger) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, s+"\n")
}

// agent writes a diagnostic line of the agent's own.
func (l *logger) agent(format string, args ...any) {
	l.line("lambdalet-agent: " + fmt.Sprintf(format, args...))
}

func startLine(id, version string) string {
	return "START RequestId: " + id + " Version: " + version
}

func endLine(id string) string {
	return "END RequestId: " + id
}

// report is the REPORT line of one invocation.
type report struct {
	id           string
	duration     time.Duration // from hand-off to the runtime until the invocation ended
	memoryMiB    int           // the configured memory size
	maxMemoryMiB int
	initDuration time.Duration // 0 unless this was the first invocation after an init
}

func (r report) String() string {
	d := hundredthsOfMs(r.duration)
	s := fmt.Sprintf("REPORT RequestId: %s\tDuration: %s ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB",
		r.id, formatMs(d), billedMs(d), r.memoryMiB, r.maxMemoryMiB)
	if r.initDuration > 0 {
		s += "\tInit Duration: " + formatMs(hundredthsOfMs(r.initDuration)) + " ms"
	}
	return s
}

// initReportLine is Lambda's line for an init that failed.
func initReportLine(d time.Duration, errorType string) string {
	return "INIT_REPORT Init Duration: " + formatMs(hundredthsOfMs(d)) + " ms\tPhase: init\tStatus: error\tError Type: " + errorType
}

// hundredthsOfMs rounds a duration to the 0.01 ms the log shows: 12.345678 ms -> 1235.
func hundredthsOfMs(d time.Duration) int64 {
	return (d.Nanoseconds() + 5_000) / 10_000
}

func formatMs(hundredths int64) string {
	return fmt.Sprintf("%d.%02d", hundredths/100, hundredths%100)
}

// billedMs rounds the shown duration up to the next whole millisecond, at least 1:
// 12.34 ms -> 13 ms, 12.00 ms -> 12 ms, 0.00 ms -> 1 ms.
func billedMs(hundredths int64) int64 {
	return max(1, (hundredths+99)/100)
}

// maxMemoryMiB is the peak resident memory (VmHWM) of pid and its descendants, summed, in MiB
// rounded up; 0 if it cannot be read. Each process's peak counts even if the peaks were at
// different times, so this errs on the high side.
func maxMemoryMiB(pid int) int {
	var kb int64
	seen := map[int]bool{}
	stack := []int{pid}
	for len(stack) > 0 && len(seen) < 1000 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[p] {
			continue
		}
		seen[p] = true
		kb += vmHWMKiB(p)
		stack = append(stack, childrenOf(p)...)
	}
	return int((kb + 1023) / 1024)
}

func vmHWMKiB(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	return parseVmHWM(string(b))
}

// parseVmHWM finds "VmHWM:	   45120 kB" in a /proc/<pid>/status text.
func parseVmHWM(status string) int64 {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func childrenOf(pid int) []int {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}
