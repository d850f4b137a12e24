package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestParseOOMKills(t *testing.T) {
	cases := []struct {
		text string
		n    int64
		ok   bool
	}{
		{"oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", 3, true},                // v1 memory.oom_control
		{"low 0\nhigh 0\nmax 12\noom 1\noom_kill 2\noom_group_kill 0\n", 2, true}, // v2 memory.events
		{"low 0\nhigh 0\nmax 0\noom 0\noom_group_kill 4\noom_kill 0\n", 0, true},  // order does not matter
		{"oom_kill_disable 0\nunder_oom 0\n", 0, false},                           // kernels before 4.13
		{"oom_kill many\n", 0, false},
		{"", 0, false},
	}
	for _, c := range cases {
		if n, ok := parseOOMKills(c.text); n != c.n || ok != c.ok {
			t.Errorf("%q: got %d %v, want %d %v", c.text, n, ok, c.n, c.ok)
		}
	}
}

func TestOOMCounterPaths(t *testing.T) {
	cases := []struct {
		cgroup string
		want   []string
	}{
		{ // cgroup v1, as in a pod on this test bed
			"12:pids:/kubepods/pod1/ctr\n4:memory:/kubepods/pod1/ctr\n1:cpu,cpuacct:/kubepods/pod1/ctr\n",
			[]string{"/r/memory/kubepods/pod1/ctr/memory.oom_control", "/r/memory/memory.oom_control"},
		},
		{ // cgroup v2 with a cgroup namespace: the container is the root
			"0::/\n",
			[]string{"/r/memory.events", "/r/memory.events"},
		},
		{ // cgroup v2 without one
			"0::/kubepods.slice/ctr.scope\n",
			[]string{"/r/kubepods.slice/ctr.scope/memory.events", "/r/memory.events"},
		},
		{ // hybrid: memory is on v1, which comes first
			"0::/x\n5:memory,hugetlb:/y\n",
			[]string{"/r/memory/y/memory.oom_control", "/r/memory/memory.oom_control", "/r/x/memory.events", "/r/memory.events"},
		},
		{"", nil},
	}
	for _, c := range cases {
		if got := oomCounterPaths(c.cgroup, "/r"); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %v, want %v", c.cgroup, got, c.want)
		}
	}
}

func TestFindOOMCounterFallsBackToTheMountRoot(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "memory", "memory.oom_control")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exists := func(p string) bool { _, ok := oomCounter{path: p}.kills(); return ok }
	c := findOOMCounter("4:memory:/kubepods/pod1/ctr\n", root, exists)
	if n, ok := c.kills(); c.path != file || n != 7 || !ok {
		t.Errorf("got %q %d %v", c.path, n, ok)
	}
	if n, ok := findOOMCounter("0::/\n", root, exists).kills(); ok || n != 0 {
		t.Errorf("no v2 counter: got %d %v", n, ok)
	}
}

func TestKilledForMemory(t *testing.T) {
	cases := []struct {
		status, killedBy string
		before, after    int64
		counted, want    bool
	}{
		{"signal: killed", "", 0, 1, true, true},
		{"signal: killed", "", 4, 4, true, false},          // a SIGKILL from someone else
		{"signal: killed", killTimeout, 0, 1, true, false}, // the agent's own timeout kill
		{"exit status 137", "", 0, 1, true, false},         // not killed by a signal
		{"signal: segmentation fault", "", 0, 1, true, false},
		{"signal: killed", "", 0, 1, false, false}, // no counter
	}
	for _, c := range cases {
		if got := killedForMemory(c.status, c.killedBy, c.before, c.after, c.counted); got != c.want {
			t.Errorf("%+v: got %v", c, got)
		}
	}
}
