// Command loadgen is the benchmarks' HTTP load generator: c keep-alive connections, each carrying
// one request at a time, either open loop at a fixed rate or closed loop as fast as answers come.
//
//	loadgen -url http://127.0.0.1:8080/fn/bench/noop/ -c 16 -rate 1000 -duration 10s -warmup 2s
//
// Open loop (-rate > 0): request i is due at start + i/rate whatever happened to the ones before,
// and the first connection to be free takes the next due request. Latency counts from the due
// time, so a server that stalls is charged for every request that queued behind the stall (no
// coordinated omission). One exception: a connection that was idle sleeps until the due time, and
// Go's timers wake it some 0.5 ms late on Linux; that lateness is the generator's, not the
// server's, so such a request counts from when it actually went out. The lateness is reported on
// its own (late_ms).
//
// Closed loop (-rate 0): each connection sends its next request as soon as the last one is
// answered; latency counts from the send.
//
// Requests due (open loop) or sent (closed loop) during -warmup are not counted. When the counted
// window begins, loadgen writes the line "measuring" to stderr, so that a caller can sample the
// server's CPU time at the same moment. At the end it writes one JSON line to stdout:
//
//	{"requests":10000,"ok":10000,"errors":{"status":{},"transport":0},"duration_s":10,
//	 "rate":1000,"latency_ms":{"p50":0.41,"p95":0.62,"p99":0.9,"max":3.1},
//	 "late_ms":{"p50":0.55,"p99":1.1},"connections":16,"cpu_s":0.9}
//
// Latencies are over the answered requests (any status); a request that got no answer counts
// under errors.transport, with one message kept in transport_sample. cpu_s is loadgen's own CPU
// time (user + system), so a caller can see what the load itself cost.
//
// With -serve ADDR it is the other end instead: a stub pod that answers invocations at once (see
// serve.go), a backend that costs next to nothing, for measuring what sits in front of it.
//
//	loadgen -serve 127.0.0.2:8080
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ", ") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

type config struct {
	serve    string // listen address of the stub backend; nothing else applies then
	urls     []*url.URL
	method   string
	body     []byte
	header   http.Header
	host     string // a Host header given with -header
	conns    int
	rate     float64 // requests per second; 0 = closed loop
	duration time.Duration
	warmup   time.Duration
	timeout  time.Duration
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var urls, headers repeated
	fs.Var(&urls, "url", "target URL (repeatable: connection i uses URL i mod n)")
	method := fs.String("method", "", "HTTP method (default GET, or POST with -body)")
	body := fs.String("body", "", "request body")
	fs.Var(&headers, "header", `request header "Name: value" (repeatable)`)
	conns := fs.Int("c", 16, "keep-alive connections, one request at a time each")
	rate := fs.Float64("rate", 0, "requests per second on a fixed schedule (open loop); 0 = closed loop")
	duration := fs.Duration("duration", 10*time.Second, "counted window, after the warmup")
	warmup := fs.Duration("warmup", 2*time.Second, "load before the counted window")
	timeout := fs.Duration("timeout", 10*time.Second, "per-request limit for the response headers")
	serve := fs.String("serve", "", "be a stub backend listening on this address instead (host:port)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if *serve != "" {
		return config{serve: *serve}, nil
	}
	c := config{
		method: *method, body: []byte(*body), header: http.Header{}, conns: *conns,
		rate: *rate, duration: *duration, warmup: *warmup, timeout: *timeout,
	}
	if len(urls) == 0 {
		return config{}, fmt.Errorf("-url is required")
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return config{}, fmt.Errorf("-url %q is not an http:// URL", raw)
		}
		c.urls = append(c.urls, u)
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return config{}, fmt.Errorf("-header %q is not \"Name: value\"", h)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if strings.EqualFold(name, "host") {
			c.host = value
		} else {
			c.header.Add(name, value)
		}
	}
	if c.method == "" {
		c.method = http.MethodGet
		if len(c.body) > 0 {
			c.method = http.MethodPost
		}
	}
	switch {
	case c.conns < 1:
		return config{}, fmt.Errorf("-c must be at least 1")
	case c.rate < 0 || math.IsInf(c.rate, 0) || math.IsNaN(c.rate):
		return config{}, fmt.Errorf("-rate must be a non-negative number")
	case c.duration <= 0 || c.warmup < 0 || c.timeout <= 0:
		return config{}, fmt.Errorf("-duration and -timeout must be positive, -warmup not negative")
	}
	return c, nil
}

// body is a request body that can be rewound for the next request without allocating.
type body struct{ bytes.Reader }

func (*body) Close() error { return nil }

// worker is one connection: its own Transport (so it owns exactly one keep-alive connection) and
// its own tallies, merged once at the end.
type worker struct {
	transport *http.Transport
	request   *http.Request
	body      *body
	payload   []byte
	latencies []time.Duration
	late      []time.Duration
	ok        int
	statuses  map[int]int
	failed    int
	sample    string
}

// newWorker makes a connection's worker; capacity is how many requests it should expect to count.
func newWorker(c config, target *url.URL, capacity int) *worker {
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: c.timeout}).DialContext,
		MaxIdleConns:          1,
		MaxIdleConnsPerHost:   1,
		MaxConnsPerHost:       1,
		DisableCompression:    true,
		ResponseHeaderTimeout: c.timeout,
		IdleConnTimeout:       time.Minute,
	}
	request := &http.Request{
		Method:     c.method,
		URL:        target,
		Host:       c.host,
		Header:     c.header.Clone(),
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
	}
	w := &worker{
		transport: transport,
		request:   request,
		payload:   c.body,
		latencies: make([]time.Duration, 0, capacity),
		statuses:  map[int]int{},
	}
	if c.rate > 0 {
		w.late = make([]time.Duration, 0, capacity)
	}
	if len(c.body) > 0 {
		w.body = &body{}
		request.ContentLength = int64(len(c.body))
	}
	return w
}

// once sends one request and waits for the whole answer; from is when its latency counts from.
func (w *worker) once(from time.Time, counted bool) {
	if w.body != nil {
		w.body.Reset(w.payload)
		w.request.Body = w.body
	}
	response, err := w.transport.RoundTrip(w.request)
	if err == nil {
		_, err = io.Copy(io.Discard, response.Body)
		response.Body.Close()
	}
	done := time.Now()
	if !counted {
		return
	}
	if err != nil {
		w.failed++
		if w.sample == "" {
			w.sample = err.Error()
		}
		return
	}
	w.latencies = append(w.latencies, done.Sub(from))
	if response.StatusCode/100 == 2 {
		w.ok++
	} else {
		w.statuses[response.StatusCode]++
	}
}

// openLoop takes due requests off the shared schedule until the next one is due at or after end.
func (w *worker) openLoop(start, measureFrom, end time.Time, rate float64, next *atomic.Int64) {
	for {
		i := next.Add(1) - 1
		due := start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
		if !due.Before(end) {
			return
		}
		counted := !due.Before(measureFrom)
		from := due
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
			from = time.Now()
			if counted {
				w.late = append(w.late, from.Sub(due))
			}
		}
		w.once(from, counted)
	}
}

func (w *worker) closedLoop(measureFrom, end time.Time) {
	for {
		sent := time.Now()
		if !sent.Before(end) {
			return
		}
		w.once(sent, !sent.Before(measureFrom))
	}
}

type percentiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95,omitempty"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max,omitempty"`
}

type errorCounts struct {
	Status    map[string]int `json:"status"`
	Transport int            `json:"transport"`
}

type report struct {
	Requests        int         `json:"requests"`
	OK              int         `json:"ok"`
	Errors          errorCounts `json:"errors"`
	TransportSample string      `json:"transport_sample,omitempty"`
	DurationS       float64     `json:"duration_s"`
	Rate            float64     `json:"rate"`
	LatencyMS       percentiles `json:"latency_ms"`
	LateMS          percentiles `json:"late_ms"`
	Connections     int         `json:"connections"`
	CPUS            float64     `json:"cpu_s"`
}

// rank is the nearest-rank percentile p (0-1] of sorted, in milliseconds; 0 when empty.
func rank(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return round3(float64(sorted[i]) / float64(time.Millisecond))
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func sortDurations(d []time.Duration) {
	sort.Slice(d, func(a, b int) bool { return d[a] < d[b] })
}

func summarise(c config, workers []*worker, window time.Duration) report {
	r := report{
		Errors:      errorCounts{Status: map[string]int{}},
		DurationS:   round3(window.Seconds()),
		Connections: c.conns,
	}
	var latencies, late []time.Duration
	for _, w := range workers {
		latencies = append(latencies, w.latencies...)
		late = append(late, w.late...)
		r.OK += w.ok
		for status, n := range w.statuses {
			r.Errors.Status[strconv.Itoa(status)] += n
		}
		r.Errors.Transport += w.failed
		if r.TransportSample == "" {
			r.TransportSample = w.sample
		}
	}
	r.Requests = len(latencies) + r.Errors.Transport
	r.Rate = round3(float64(r.Requests) / window.Seconds())
	sortDurations(latencies)
	sortDurations(late)
	r.LatencyMS = percentiles{
		P50: rank(latencies, 0.50), P95: rank(latencies, 0.95),
		P99: rank(latencies, 0.99), Max: rank(latencies, 1),
	}
	r.LateMS = percentiles{P50: rank(late, 0.50), P99: rank(late, 0.99)}
	var usage syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &usage) == nil {
		cpu := time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
		r.CPUS = round3(cpu.Seconds())
	}
	return r
}

func run(c config) report {
	// Room for every counted request a connection might make, so the tallies never grow mid-run.
	capacity := 1 << 14
	if c.rate > 0 {
		capacity = int(c.rate*c.duration.Seconds())/c.conns + 1024
	}
	workers := make([]*worker, c.conns)
	for i := range workers {
		workers[i] = newWorker(c, c.urls[i%len(c.urls)], capacity)
	}
	start := time.Now()
	measureFrom := start.Add(c.warmup)
	end := measureFrom.Add(c.duration)
	announce := time.AfterFunc(c.warmup, func() { fmt.Fprintln(os.Stderr, "measuring") })
	defer announce.Stop()
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.rate > 0 {
				w.openLoop(start, measureFrom, end, c.rate, &next)
			} else {
				w.closedLoop(measureFrom, end)
			}
		}()
	}
	wg.Wait()
	for _, w := range workers {
		w.transport.CloseIdleConnections()
	}
	return summarise(c, workers, c.duration)
}

func main() {
	c, err := parseFlags(os.Args[1:])
	if err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
		}
		os.Exit(2)
	}
	if c.serve != "" {
		fmt.Fprintln(os.Stderr, "loadgen:", serve(c.serve))
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(run(c)); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
