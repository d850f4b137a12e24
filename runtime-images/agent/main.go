// Command agent is PID 1 of a Lambdalet function pod, in the role of Lambda's own init: it serves
// invocations from the activator on the pod port, serves the Lambda Runtime API on 127.0.0.1 to
// the language runtime processes it starts and supervises, and writes Lambda's START / END /
// REPORT log lines. Code written for AWS Lambda runs under it unchanged.
//
//	activator ──POST /2015-03-31/functions/function/invocations──▶ agent :8080
//	agent :9001 ◀──GET /2018-06-01/runtime/invocation/next, POST …/response── runtime + handler
//
// Files: config.go (environment), invokeapi.go (the activator's side), runtimeapi.go (the
// runtime's side), queue.go (hand-off between them), invocation.go (one invocation and its
// outcomes), supervisor.go (runtime processes), oom.go (out-of-memory kills), logs.go (the function's log), code.go and
// unzip.go (code fetched from a URL at start), announce.go (telling the activators the pod is
// ready before the kubelet does).
package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// How long runtimes get to exit on SIGTERM at shutdown before they are killed.
const runtimeStopGrace = 2 * time.Second

type agent struct {
	cfg       Config
	env       map[string]string // the pod's environment, passed on to runtimes
	logStream string
	log       *logger
	queue     queue
	slots     chan struct{} // admission: one token per invocation in flight
	reaper    *reaper
	runtimes  []*runtimeSlot
	announcer *announcer // nil without LAMBDALET_ANNOUNCE_URL
	oom       oomCounter // the pod's OOM kills, to tell them from other SIGKILLs

	mu          sync.Mutex
	ready       int        // runtime processes that have initialised and are alive
	lastInitErr *initError // the latest init failure, until a runtime initialises
	stopping    bool
}

func main() {
	os.Exit(run())
}

func run() int {
	log := &logger{w: os.Stdout}
	env := envMap(os.Environ())
	cfg, err := ConfigFromEnv(env, fileExists)
	if err != nil {
		log.agent("configuration: %v", err)
		return 2
	}
	instance, _ := os.Hostname()
	a := &agent{
		cfg:       cfg,
		env:       env,
		logStream: LogStreamName(cfg.FunctionVersion, instance, time.Now()),
		log:       log,
		slots:     make(chan struct{}, cfg.Concurrency),
		reaper:    newReaper(),
		oom:       newOOMCounter(),
	}
	a.announcer = newAnnouncer(cfg, log)

	invokeLn, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		log.agent("invoke port: %v", err)
		return 1
	}
	var servers []*http.Server
	for i := 0; i < cfg.Concurrency; i++ {
		port := 0
		if cfg.RuntimeAPIPort != 0 {
			port = cfg.RuntimeAPIPort + i
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			log.agent("runtime API port: %v", err)
			return 1
		}
		r := &runtimeSlot{index: i, agent: a, listener: ln, apiAddr: ln.Addr().String()}
		a.runtimes = append(a.runtimes, r)
		srv := &http.Server{Handler: r.runtimeAPI(), ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		go func() { _ = srv.Serve(ln) }()
	}

	stop := make(chan struct{})
	var supervisors sync.WaitGroup
	invokeSrv := &http.Server{Handler: a.invokeAPI(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- invokeSrv.Serve(invokeLn) }()
	supervisors.Add(1)
	go func() {
		defer supervisors.Done()
		if !a.prepare(stop, fileExists) {
			return
		}
		for _, r := range a.runtimes {
			supervisors.Add(1)
			go func() {
				defer supervisors.Done()
				r.supervise(stop)
			}()
		}
	}()

	signals, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	select {
	case <-signals.Done():
	case err := <-served:
		log.agent("invoke server: %v", err)
	}

	// Stop accepting, let invocations in flight end (each is bounded by its deadline), then stop
	// the runtimes.
	a.mu.Lock()
	a.stopping = true
	a.mu.Unlock()
	withdrawn := make(chan struct{})
	go func() {
		defer close(withdrawn)
		a.announcer.withdraw(withdrawBudget) // the activators stop routing here at once
	}()
	defer func() { <-withdrawn }()
	ctx, cancelShutdown := context.WithTimeout(context.Background(), cfg.Timeout+5*time.Second)
	defer cancelShutdown()
	if err := invokeSrv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.agent("shutdown: %v", err)
	}
	close(stop)
	a.stopRuntimes(&supervisors)
	for _, srv := range servers {
		_ = srv.Close()
	}
	return 0
}

func fileExists(path string) bool {
	info, err := os.Stat(path)
	return err == nil && !info.IsDir()
}

// prepare puts the code in place when it comes from elsewhere (code.go), until stop is closed;
// true once the runtimes can start.
func (a *agent) prepare(stop <-chan struct{}, exists func(string) bool) bool {
	if a.cfg.Code == nil {
		return true
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if !a.loadCode(ctx) {
		return false
	}
	// A `provided` runtime's own bootstrap may have come with the code. No runtime has read
	// the configuration yet: they start after this.
	a.cfg.Bootstrap = BootstrapCommand(a.env, a.cfg.Runtime, a.cfg.TaskRoot, exists)
	return true
}

// stopRuntimes sends SIGTERM to every runtime, then SIGKILL after the grace period, until every
// supervisor has returned.
func (a *agent) stopRuntimes(supervisors *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		supervisors.Wait()
		close(done)
	}()
	deadline := time.Now().Add(runtimeStopGrace)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		sig := syscall.SIGTERM
		if time.Now().After(deadline) {
			sig = syscall.SIGKILL
		}
		for _, r := range a.runtimes {
			r.mu.Lock()
			p := r.proc
			r.mu.Unlock()
			if p != nil {
				r.kill(p, killShutdown, sig)
			}
		}
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}

// runtimeReady counts a runtime that asked for its first invocation. The first makes the pod
// ready (/healthz turns 200): the agent announces it to the activators (only once).
func (a *agent) runtimeReady() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ready++
	a.lastInitErr = nil
	if !a.stopping {
		a.announcer.announce() // in the background: it delays nothing
	}
}

// runtimeGone uncounts an initialised runtime that ended.
func (a *agent) runtimeGone() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ready--
}

// initFailed records an init failure (d is how long the init ran); with no runtime ready, the
// invocations waiting for one fail with it.
func (a *agent) initFailed(e initError, d time.Duration) {
	a.log.line(initReportLine(d, e.errorType))
	a.announcer.reportInitError(e) // in the background
	a.mu.Lock()
	a.lastInitErr = &e
	var failed []*invocation
	if a.ready == 0 {
		failed = a.queue.drain()
	}
	a.mu.Unlock()
	now := time.Now()
	for _, inv := range failed {
		inv.finish(e.outcome(), now)
	}
}

func (a *agent) isStopping() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stopping
}
