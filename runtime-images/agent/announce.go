// Announcing the pod to the activators. A new pod's runtime is initialised some 0.35 s before the
// kubelet reports the pod Ready, and its EndpointSlice comes later still; so the moment the first
// runtime asks for work (when /healthz turns 200) the agent POSTs an announcement to every
// activator, which checks the bearer token (a projected service-account token for the audience
// "lambdalet-activator", bound to this pod) and routes to the pod at once. On SIGTERM it DELETEs
// the same announcement so the activators stop routing to it before the EndpointSlice says so.
//
//	agent ──POST {namespace, function, pod, podIP, port, concurrency}──▶ every activator pod
//	        (the URL's host resolves, through a headless Service, to each of them)
//
// An init failure (code that cannot be fetched, a handler that does not import, a runtime that
// exits) is reported the same way, POSTed to /v1/init-error next to the announcement URL with the
// error document: an activator holding requests for a Function none of whose pods is ready
// answers them with that error at once, as Lambda answers an invocation whose init failed,
// instead of holding them until their deadline. It never routes to the pod for it.
//
// All of it is best effort: it runs beside readiness and invocations, never before them, and a
// failure is one log line per activator address.

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

const (
	defaultAnnounceTokenFile = "/var/run/lambdalet/announce/token"
	announceAttemptTimeout   = 1 * time.Second
	announceResolveTimeout   = 1 * time.Second
	// The whole DELETE round on SIGTERM: the pod is going anyway, and the EndpointSlice will
	// tell the activators too.
	withdrawBudget = 500 * time.Millisecond
	// The largest init-error report (the activator's bound too); a longer error document is
	// cut to its type and the start of its message.
	maxInitErrorReport = 16 << 10
)

// AnnounceConfig says where and as whom the pod announces itself; nil without
// LAMBDALET_ANNOUNCE_URL.
type AnnounceConfig struct {
	URL       *url.URL
	TokenFile string // re-read for every request: the kubelet rotates the token
	PodIP     string // downward API: status.podIP
	PodName   string // downward API: metadata.name
}

func announceFromEnv(env map[string]string) (*AnnounceConfig, error) {
	raw := env["LAMBDALET_ANNOUNCE_URL"]
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" || u.User != nil {
		return nil, fmt.Errorf("LAMBDALET_ANNOUNCE_URL must be an http:// or https:// URL, not %q", raw)
	}
	c := &AnnounceConfig{
		URL:       u,
		TokenFile: env["LAMBDALET_ANNOUNCE_TOKEN_FILE"],
		PodIP:     env["LAMBDALET_POD_IP"],
		PodName:   env["LAMBDALET_POD_NAME"],
	}
	if c.TokenFile == "" {
		c.TokenFile = defaultAnnounceTokenFile
	}
	if net.ParseIP(c.PodIP) == nil {
		return nil, fmt.Errorf("LAMBDALET_POD_IP must be the pod's IP address with LAMBDALET_ANNOUNCE_URL set, not %q", c.PodIP)
	}
	if c.PodName == "" {
		return nil, fmt.Errorf("LAMBDALET_POD_NAME must be the pod's name with LAMBDALET_ANNOUNCE_URL set")
	}
	return c, nil
}

// announcement is the body of both requests; lambdalet.activator.announce parses it.
type announcement struct {
	Namespace   string `json:"namespace"`
	Function    string `json:"function"`
	Pod         string `json:"pod"`
	PodIP       string `json:"podIP"`
	Port        int    `json:"port"`
	Concurrency int    `json:"concurrency"`
}

// initErrorReport is the body of an init-error report: the announcement and the error document.
type initErrorReport struct {
	announcement
	ErrorType string          `json:"errorType"`
	Error     json.RawMessage `json:"error"`
}

// initErrorURL is where init errors are reported: /v1/init-error beside /v1/announce.
func initErrorURL(announce *url.URL) *url.URL {
	u := *announce
	dir := u.Path[:strings.LastIndex(u.Path, "/")+1]
	u.Path, u.RawPath = dir+"init-error", ""
	return &u
}

// announcer sends the announcement once, at the first readiness, and withdraws it on SIGTERM;
// it reports init errors meanwhile. A nil *announcer (no LAMBDALET_ANNOUNCE_URL) does nothing.
type announcer struct {
	cfg            AnnounceConfig
	self           announcement
	body           []byte
	log            *logger
	resolve        func(ctx context.Context, host string) ([]string, error)
	pauses         []time.Duration // between the attempts of one request: 100 ms, 300 ms
	attemptTimeout time.Duration

	mu     sync.Mutex
	begun  bool          // announce or withdraw was called: neither runs twice
	cancel func()        // stops the announcement round
	done   chan struct{} // closed when the announcement round has ended
	addrs  []string      // the activators' addresses, once resolved
}

func newAnnouncer(c Config, log *logger) *announcer {
	if c.Announce == nil {
		return nil
	}
	self := announcement{
		Namespace:   c.Namespace,
		Function:    c.FunctionName,
		Pod:         c.Announce.PodName,
		PodIP:       c.Announce.PodIP,
		Port:        c.Port,
		Concurrency: c.Concurrency,
	}
	body, _ := json.Marshal(self)
	return &announcer{
		cfg:            *c.Announce,
		self:           self,
		body:           body,
		log:            log,
		resolve:        net.DefaultResolver.LookupHost,
		pauses:         []time.Duration{100 * time.Millisecond, 300 * time.Millisecond},
		attemptTimeout: announceAttemptTimeout,
	}
}

// announce starts the announcement in the background and returns at once; only the first call
// (before any withdraw) does anything.
func (n *announcer) announce() {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.begun {
		return
	}
	n.begun = true
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan struct{})
	go n.round(ctx, n.done)
}

// withdraw stops an announcement still under way and DELETEs it at every address it was sent
// to, waiting at most budget in all.
func (n *announcer) withdraw(budget time.Duration) {
	if n == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	n.mu.Lock()
	begun, done := n.begun, n.done
	n.begun = true
	if n.cancel != nil {
		n.cancel()
	}
	n.mu.Unlock()
	if !begun {
		return
	}
	select {
	case <-done: // the POSTs have ended: a DELETE cannot overtake one
	case <-ctx.Done():
	}
	n.mu.Lock()
	addrs := n.addrs
	n.mu.Unlock()
	n.each(addrs, func(addr string) error { return n.send(ctx, http.MethodDelete, addr, 1) })
}

// reportInitError POSTs the init error to every activator, in the background; each failure of
// a round is reported anew.
func (n *announcer) reportInitError(e initError) {
	if n == nil {
		return
	}
	body := n.initErrorBody(e)
	target := initErrorURL(n.cfg.URL)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		addrs, err := n.lookup(ctx)
		if err != nil {
			n.log.agent("init error report: cannot resolve %s: %v", n.cfg.URL.Hostname(), err)
			return
		}
		n.each(addrs, func(addr string) error {
			return n.sendTo(ctx, http.MethodPost, target, body, addr, 1+len(n.pauses))
		})
	}()
}

// initErrorBody is the report of e, its error document cut down if the whole would be too big.
func (n *announcer) initErrorBody(e initError) []byte {
	doc := e.body
	if !json.Valid(doc) {
		doc = errorDoc(e.errorType, string(doc))
	}
	body, _ := json.Marshal(initErrorReport{n.self, e.errorType, doc})
	if len(body) <= maxInitErrorReport {
		return body
	}
	var fields struct {
		ErrorMessage string `json:"errorMessage"`
	}
	_ = json.Unmarshal(doc, &fields)
	message := fields.ErrorMessage
	if len(message) > maxInitErrorReport/2 {
		message = strings.ToValidUTF8(message[:maxInitErrorReport/2], "") + " …"
	}
	body, _ = json.Marshal(initErrorReport{n.self, e.errorType, errorDoc(e.errorType, message)})
	return body
}

// round resolves the activators' addresses and POSTs the announcement to each.
func (n *announcer) round(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	addrs, err := n.lookup(ctx)
	if err != nil {
		if ctx.Err() == nil {
			n.log.agent("announce: cannot resolve %s: %v", n.cfg.URL.Hostname(), err)
		}
		return
	}
	n.mu.Lock()
	n.addrs = addrs
	n.mu.Unlock()
	n.each(addrs, func(addr string) error { return n.send(ctx, http.MethodPost, addr, 1+len(n.pauses)) })
}

// lookup is every address of the URL's host (an IP literal is its own), tried as often as a
// request is.
func (n *announcer) lookup(ctx context.Context) ([]string, error) {
	host := n.cfg.URL.Hostname()
	if net.ParseIP(host) != nil {
		return []string{host}, nil
	}
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, announceResolveTimeout)
		addrs, err := n.resolve(actx, host)
		cancel()
		if err == nil && len(addrs) == 0 {
			err = errors.New("no addresses")
		}
		if err == nil {
			return dedupe(addrs), nil
		}
		if isNotFound(err) || !n.pause(ctx, attempt) {
			return nil, err
		}
	}
}

// each runs send for every address at once and logs each failure.
func (n *announcer) each(addrs []string, send func(addr string) error) {
	var wg sync.WaitGroup
	for _, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := send(addr); err != nil {
				n.log.agent("announce: %s: %v", addr, err)
			}
		}()
	}
	wg.Wait()
}

// send makes up to attempts tries of one request to the activator at addr, pausing between
// them; it gives up at once on an answer that another try cannot change (a 4xx but 408 or 429).
func (n *announcer) send(ctx context.Context, method, addr string, attempts int) error {
	return n.sendTo(ctx, method, n.cfg.URL, n.body, addr, attempts)
}

// sendTo is send of body to target.
func (n *announcer) sendTo(ctx context.Context, method string, target *url.URL, body []byte, addr string,
	attempts int) error {
	client := n.client(addr)
	defer client.CloseIdleConnections()
	for attempt := 0; ; attempt++ {
		again, err := n.attempt(ctx, client, method, target, body)
		if err == nil {
			return nil
		}
		if !again || attempt+1 >= attempts || !n.pause(ctx, attempt) {
			return fmt.Errorf("%s: %w", strings.ToLower(method), err)
		}
	}
}

// attempt makes one try; again says whether another could end otherwise.
func (n *announcer) attempt(ctx context.Context, client *http.Client, method string, target *url.URL,
	body []byte) (again bool, err error) {
	token, err := os.ReadFile(n.cfg.TokenFile)
	if err == nil && len(bytes.TrimSpace(token)) == 0 {
		err = fmt.Errorf("token file %s is empty", n.cfg.TokenFile)
	}
	if err != nil {
		return true, err // the kubelet may not have written it yet
	}
	ctx, cancel := context.WithTimeout(ctx, n.attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target.String(), bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+string(bytes.TrimSpace(token)))
	resp, err := client.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	return transientStatus(resp.StatusCode), fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(detail)))
}

// client talks to the activator at addr whatever the URL's host resolves to by then, with the
// URL's host still in the Host header and TLS server name. No proxy: the activators are in the
// cluster, and a proxy could not reach the one chosen.
func (n *announcer) client(addr string) *http.Client {
	port := n.cfg.URL.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[n.cfg.URL.Scheme]
	}
	dialer := &net.Dialer{}
	return &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, net.JoinHostPort(addr, port))
			},
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// pause waits before attempt+2, false if there is to be none or ctx ends first.
func (n *announcer) pause(ctx context.Context, attempt int) bool {
	if attempt >= len(n.pauses) {
		return false
	}
	t := time.NewTimer(n.pauses[attempt])
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func isNotFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}

func dedupe(addrs []string) []string {
	seen := map[string]bool{}
	out := addrs[:0:0]
	for _, a := range addrs {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}
