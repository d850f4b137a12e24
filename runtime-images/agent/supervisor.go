// Starting, watching and restarting the runtime processes. Each of the LAMBDALET_CONCURRENCY
// runtime slots runs one process at a time with its own Runtime API address, so the agent always
// knows which process holds which invocation: a timeout kills exactly that process, an exit fails
// exactly its invocation. The agent reaps every child itself (it is PID 1 in the pod, so orphans
// of killed runtimes land on it too) and kills a runtime's whole process group when it ends.

package main

import (
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Why the agent killed a process, if it did.
const (
	killTimeout   = "timeout"
	killInitError = "init error"
	killShutdown  = "shutdown"
)

// Restart delays after consecutive failures: 200 ms, 400 ms, 800 ms, … capped at 10 s. A failure
// is an init that did not succeed or a runtime that exited while idle; exits caused by an
// invocation (a timeout, os._exit in a handler) restart at once, as each needs a new request.
const (
	restartBase = 200 * time.Millisecond
	restartMax  = 10 * time.Second
)

func restartDelay(failures int) time.Duration {
	return backoff(restartBase, restartMax, failures)
}

// backoff is the pause after n consecutive failures: none for 0, then base, doubling, at most
// limit. backoff(1s, 5m, 4) = 8s.
func backoff(base, limit time.Duration, n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// exitStatus describes how a process ended, as Lambda (and Go's os/exec) spell it:
// "exit status 1", "signal: killed".
func exitStatus(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "signal: " + ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}

// process is one run of a runtime; its fields after pid are guarded by its slot's mutex.
type process struct {
	pid          int
	started      time.Time
	exited       <-chan syscall.WaitStatus
	oomBefore    int64 // the cgroup's OOM kills when it started
	oomCounted   bool  // oomBefore could be read
	initialized  bool  // it asked for its first invocation
	initDuration time.Duration
	initReported bool // the REPORT of its first invocation carried Init Duration
	initFailed   bool // it posted /runtime/init/error
	killed       string
}

// runtimeSlot is one Runtime API client: its listener, its current process and invocation.
type runtimeSlot struct {
	index    int
	agent    *agent
	listener net.Listener
	apiAddr  string // 127.0.0.1:port, the runtime's AWS_LAMBDA_RUNTIME_API

	mu       sync.Mutex
	proc     *process
	current  *invocation
	failures int // consecutive failures, reset by a completed invocation
	memMiB   int // the last Max Memory Used measured
}

// supervise runs the slot's runtime until stop is closed, restarting it whenever it ends.
func (r *runtimeSlot) supervise(stop <-chan struct{}) {
	a := r.agent
	for {
		select {
		case <-stop:
			return
		default:
		}
		p, err := r.start()
		if err != nil {
			a.initFailed(initError{"Runtime.InvalidEntrypoint", errorDoc("Runtime.InvalidEntrypoint", err.Error())}, 0)
			r.mu.Lock()
			r.failures++
			r.mu.Unlock()
		} else {
			r.exited(p, <-p.exited)
		}
		r.mu.Lock()
		delay := restartDelay(r.failures)
		r.mu.Unlock()
		select {
		case <-stop:
			return
		case <-time.After(delay):
		}
	}
}

func (r *runtimeSlot) start() (*process, error) {
	a := r.agent
	path, err := exec.LookPath(a.cfg.Bootstrap[0])
	if err != nil {
		return nil, err
	}
	env := RuntimeEnv(a.cfg, a.env, r.apiAddr, a.logStream)
	r.mu.Lock()
	defer r.mu.Unlock()
	// The process may ask for work before start returns: it is recorded under the same lock.
	p := &process{started: time.Now()}
	p.oomBefore, p.oomCounted = a.oom.kills()
	p.pid, p.exited, err = a.reaper.start(path, a.cfg.Bootstrap, env, a.cfg.TaskRoot)
	if err != nil {
		return nil, err
	}
	r.proc = p
	return p, nil
}

// exited handles the end of process p: its invocation fails, an unfinished init is an init error.
func (r *runtimeSlot) exited(p *process, ws syscall.WaitStatus) {
	a := r.agent
	now := time.Now()
	status := exitStatus(ws)
	r.mu.Lock()
	cur := r.current
	r.current, r.proc = nil, nil
	initialized, initFailed, killed := p.initialized, p.initFailed, p.killed
	if !initialized && killed != killShutdown || initialized && cur == nil && killed == "" {
		r.failures++
	}
	r.mu.Unlock()
	errorType := "Runtime.ExitError"
	if p.oomCounted && status == "signal: killed" && killed == "" {
		after, ok := a.oom.kills()
		if killedForMemory(status, killed, p.oomBefore, after, ok) {
			errorType = outOfMemory
		}
	}

	if initialized {
		a.runtimeGone()
	}
	if cur != nil {
		cur.finish(exitOutcome(cur.id, status, errorType), now)
	} else if killed == "" {
		a.log.agent("runtime %d (pid %d) ended: %s", r.index, p.pid, status)
	}
	if !initialized && !initFailed && killed == "" && !a.isStopping() {
		a.initFailed(initError{errorType, errorDoc(errorType, exitReason(status))}, now.Sub(p.started))
	}
}

// kill signals process p, if it is still the slot's current one, noting why.
func (r *runtimeSlot) kill(p *process, reason string, sig syscall.Signal) {
	r.mu.Lock()
	current := r.proc == p
	if current && p.killed == "" {
		p.killed = reason
	}
	r.mu.Unlock()
	if current {
		r.agent.reaper.signal(p.pid, sig)
	}
}

// reaper starts child processes and collects every child's exit status (its own and orphans).
type reaper struct {
	mu    sync.Mutex
	procs map[int]chan syscall.WaitStatus
}

func newReaper() *reaper {
	r := &reaper{procs: map[int]chan syscall.WaitStatus{}}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD) // before the first fork, so no exit goes unnoticed
	go func() {
		for range sigs {
			r.reap()
		}
	}()
	return r
}

// start runs argv in its own process group, with stdin from /dev/null and the agent's stdout and
// stderr; the channel gets its exit status.
func (r *reaper) start(path string, argv, env []string, dir string) (int, <-chan syscall.WaitStatus, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, nil, err
	}
	defer devnull.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{devnull.Fd(), os.Stdout.Fd(), os.Stderr.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.procs[pid] = ch
	return pid, ch, nil
}

func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if ch, ours := r.procs[pid]; ours {
			delete(r.procs, pid)
			// Whatever the runtime left behind in its group goes with it. The lock keeps the pid
			// from being reused by a runtime started meanwhile.
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			ch <- ws
		}
	}
}

// signal sends sig to the process group of pid, if pid is a live child.
func (r *reaper) signal(pid int, sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, live := r.procs[pid]; live {
		_ = syscall.Kill(-pid, sig)
	}
}
