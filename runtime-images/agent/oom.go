// Telling an out-of-memory kill from any other death of a runtime. The kernel's OOM killer ends a
// process with SIGKILL, which looks like any other "signal: killed"; but it first counts the kill
// in the memory cgroup (the kernel raises the event before it sends the signal), so a runtime
// that died of a SIGKILL the agent did not send, while the pod's counter went up, was killed for
// memory: Lambda's Runtime.OutOfMemory.
//
// The counter is the "oom_kill N" line of memory.oom_control (cgroup v1) or memory.events
// (cgroup v2), in the cgroup /proc/self/cgroup names, under the cgroup mount. A container sees
// its own cgroup at the mount's root (v2 with a cgroup namespace, and v1, where the runtime
// mounts the container's cgroup over the hierarchy), so the root is the fallback when the named
// path does not exist there. Without a readable counter no kill is taken for OOM.

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const cgroupRoot = "/sys/fs/cgroup"

// oomCounter reads the memory cgroup's count of OOM kills; the zero value counts nothing.
type oomCounter struct {
	path string // memory.oom_control or memory.events; "" when none was found
}

// findOOMCounter locates the counter of the cgroup that procSelfCgroup (the text of
// /proc/self/cgroup) names, under root.
func findOOMCounter(procSelfCgroup, root string, exists func(string) bool) oomCounter {
	for _, candidate := range oomCounterPaths(procSelfCgroup, root) {
		if exists(candidate) {
			return oomCounter{path: candidate}
		}
	}
	return oomCounter{}
}

// oomCounterPaths lists where the counter may be, best first: the v1 memory hierarchy's file
// (its own cgroup, then the mount's root), then the v2 one's. E.g. "4:memory:/pod/ctr" ->
// /sys/fs/cgroup/memory/pod/ctr/memory.oom_control, /sys/fs/cgroup/memory/memory.oom_control;
// "0::/pod/ctr" -> /sys/fs/cgroup/pod/ctr/memory.events, /sys/fs/cgroup/memory.events.
func oomCounterPaths(procSelfCgroup, root string) []string {
	var v1, v2 []string
	for _, line := range strings.Split(procSelfCgroup, "\n") {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		controllers, path := parts[1], filepath.Clean("/"+parts[2])
		switch {
		case parts[0] == "0" && controllers == "":
			v2 = append(v2, filepath.Join(root, path, "memory.events"), filepath.Join(root, "memory.events"))
		case hasController(controllers, "memory"):
			mount := filepath.Join(root, "memory")
			v1 = append(v1, filepath.Join(mount, path, "memory.oom_control"), filepath.Join(mount, "memory.oom_control"))
		}
	}
	return append(v1, v2...)
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// kills is the counter now; ok is false when it cannot be read.
func (c oomCounter) kills() (n int64, ok bool) {
	if c.path == "" {
		return 0, false
	}
	b, err := os.ReadFile(c.path)
	if err != nil {
		return 0, false
	}
	return parseOOMKills(string(b))
}

// parseOOMKills finds "oom_kill 3" in memory.oom_control ("oom_kill_disable 0\nunder_oom 0\n
// oom_kill 3\n") or memory.events ("low 0\nhigh 0\nmax 12\noom 1\noom_kill 3\noom_group_kill 0\n").
func parseOOMKills(text string) (int64, bool) {
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 2 && fields[0] == "oom_kill" {
			n, err := strconv.ParseInt(fields[1], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// newOOMCounter is the counter of the agent's own cgroup (its runtimes run in it too).
func newOOMCounter() oomCounter {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return oomCounter{}
	}
	return findOOMCounter(string(b), cgroupRoot, func(p string) bool {
		_, ok := oomCounter{path: p}.kills()
		return ok
	})
}

// killedForMemory says whether a process that ended with status was taken by the OOM killer:
// a SIGKILL the agent did not send (killedBy is empty), and more OOM kills now than before.
func killedForMemory(status, killedBy string, before, after int64, counted bool) bool {
	return counted && status == "signal: killed" && killedBy == "" && after > before
}
