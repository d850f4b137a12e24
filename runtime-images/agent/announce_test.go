package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// received is one request an activator stand-in got.
type received struct {
	method, host, auth, contentType string
	body                            announcement
}

// activator is an httptest server on addr:port (port 0 picks one) answering with answer.
type activator struct {
	srv  *httptest.Server
	got  chan received
	port string
}

func startActivator(t *testing.T, addr, port string, answer func(n int, w http.ResponseWriter)) *activator {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, port))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	a := &activator{got: make(chan received, 16)}
	var mu sync.Mutex
	count := 0
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body announcement
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Errorf("body %q: %v", raw, err)
		}
		a.got <- received{r.Method, r.Host, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body}
		mu.Lock()
		count++
		n := count
		mu.Unlock()
		answer(n, w)
	}))
	a.srv.Listener.Close()
	a.srv.Listener = ln
	a.srv.Start()
	t.Cleanup(a.srv.Close)
	_, a.port, _ = net.SplitHostPort(ln.Addr().String())
	return a
}

func status(code int) func(int, http.ResponseWriter) {
	return func(_ int, w http.ResponseWriter) { w.WriteHeader(code) }
}

// next is the next request the activator got, failing the test after a second.
func (a *activator) next(t *testing.T) received {
	t.Helper()
	select {
	case r := <-a.got:
		return r
	case <-time.After(time.Second):
		t.Fatal("no request within 1 s")
		return received{}
	}
}

func (a *activator) none(t *testing.T) {
	t.Helper()
	select {
	case r := <-a.got:
		t.Fatalf("unexpected request %+v", r)
	default:
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testAnnouncer announces to rawURL as pod hello-1 of tests/hello with the token "first";
// resolve stands in for DNS (nil: the test fails if it is asked).
func testAnnouncer(t *testing.T, rawURL string, resolve func(context.Context, string) ([]string, error)) (*announcer, *syncBuffer, string) {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ConfigFromEnv(map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME":      "hello",
		"LAMBDALET_NAMESPACE":           "tests",
		"LAMBDALET_CONCURRENCY":         "4",
		"LAMBDALET_ANNOUNCE_URL":        rawURL,
		"LAMBDALET_ANNOUNCE_TOKEN_FILE": tokenFile,
		"LAMBDALET_POD_IP":              "10.1.2.3",
		"LAMBDALET_POD_NAME":            "hello-1",
	}, noFile)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	n := newAnnouncer(cfg, &logger{w: logs})
	if resolve == nil {
		resolve = func(context.Context, string) ([]string, error) {
			t.Error("resolver asked")
			return nil, errors.New("not expected")
		}
	}
	n.resolve = resolve
	n.pauses = []time.Duration{10 * time.Millisecond, 30 * time.Millisecond}
	return n, logs, tokenFile
}

func resolveTo(addrs ...string) func(context.Context, string) ([]string, error) {
	return func(context.Context, string) ([]string, error) { return addrs, nil }
}

// finished waits for the announcement round to end.
func finished(t *testing.T, n *announcer) {
	t.Helper()
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the announcement round did not end within 5 s")
	}
}

var wantBody = announcement{Namespace: "tests", Function: "hello", Pod: "hello-1", PodIP: "10.1.2.3", Port: 8080, Concurrency: 4}

func TestAnnounceReachesEveryAddressOfTheHost(t *testing.T) {
	one := startActivator(t, "127.0.0.1", "0", status(http.StatusNoContent))
	two := startActivator(t, "127.0.0.2", one.port, status(http.StatusOK))
	rawURL := "http://activators.test:" + one.port + "/v1/announce"
	n, logs, _ := testAnnouncer(t, rawURL, resolveTo("127.0.0.1", "127.0.0.2", "127.0.0.1"))

	n.announce()
	n.announce() // only the first counts
	finished(t, n)

	for _, a := range []*activator{one, two} {
		got := a.next(t)
		want := received{"POST", "activators.test:" + one.port, "Bearer first", "application/json", wantBody}
		if got != want {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
		a.none(t)
	}
	if logs.String() != "" {
		t.Errorf("logged %q", logs)
	}
}

func TestAnnounceRetriesAfter5xxWithTheTokenReread(t *testing.T) {
	var tokenFile string
	a := startActivator(t, "127.0.0.1", "0", func(n int, w http.ResponseWriter) {
		if n == 1 {
			// The kubelet rotates the token between two attempts.
			if err := os.WriteFile(tokenFile, []byte("second"), 0o600); err != nil {
				t.Error(err)
			}
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	n, logs, file := testAnnouncer(t, "http://127.0.0.1:"+a.port+"/v1/announce", nil)
	tokenFile = file

	n.announce()
	finished(t, n)

	if got := a.next(t).auth; got != "Bearer first" {
		t.Errorf("first attempt: %q", got)
	}
	if got := a.next(t).auth; got != "Bearer second" {
		t.Errorf("second attempt: %q", got)
	}
	a.none(t)
	if logs.String() != "" {
		t.Errorf("logged %q", logs)
	}
}

func TestAnnounceGivesUpOncePerAddress(t *testing.T) {
	cases := []struct {
		status   int
		attempts int
	}{
		{http.StatusInternalServerError, 3},
		{http.StatusTooManyRequests, 3},
		{http.StatusForbidden, 1}, // another try cannot change the answer
		{http.StatusBadRequest, 1},
	}
	for _, tc := range cases {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			a := startActivator(t, "127.0.0.1", "0", func(_ int, w http.ResponseWriter) {
				http.Error(w, "the reason", tc.status)
			})
			n, logs, _ := testAnnouncer(t, "http://127.0.0.1:"+a.port+"/", nil)

			n.announce()
			finished(t, n)

			for i := 0; i < tc.attempts; i++ {
				a.next(t)
			}
			a.none(t)
			want := "lambdalet-agent: announce: 127.0.0.1: post: HTTP " + strconv.Itoa(tc.status) + ": the reason\n"
			if logs.String() != want {
				t.Errorf("logged %q, want %q", logs, want)
			}
		})
	}
}

func TestAnnounceToNoActivatorIsLoggedNotFatal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	n, logs, _ := testAnnouncer(t, "http://"+addr+"/", nil)

	n.announce()
	finished(t, n)

	if got := logs.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "announce: 127.0.0.1: post: ") ||
		!strings.Contains(got, "connection refused") {
		t.Errorf("logged %q", got)
	}
}

func TestAnnounceWithUnresolvableHostIsLogged(t *testing.T) {
	cases := []struct {
		name    string
		err     error
		lookups int
	}{
		{"not found", &net.DNSError{Err: "no such host", Name: "activators.test", IsNotFound: true}, 1},
		{"timeout", &net.DNSError{Err: "i/o timeout", Name: "activators.test", IsTimeout: true}, 3},
		{"no addresses", nil, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			lookups := 0
			n, logs, _ := testAnnouncer(t, "http://activators.test:8081/v1/announce",
				func(_ context.Context, host string) ([]string, error) {
					mu.Lock()
					defer mu.Unlock()
					lookups++
					if host != "activators.test" {
						t.Errorf("looked up %q", host)
					}
					return nil, tc.err
				})

			n.announce()
			finished(t, n)

			mu.Lock()
			defer mu.Unlock()
			if lookups != tc.lookups {
				t.Errorf("%d lookups, want %d", lookups, tc.lookups)
			}
			if got := logs.String(); strings.Count(got, "\n") != 1 ||
				!strings.HasPrefix(got, "lambdalet-agent: announce: cannot resolve activators.test: ") {
				t.Errorf("logged %q", got)
			}
			n.withdraw(time.Second) // nothing resolved: nothing to withdraw, and no error
		})
	}
}

func TestWithoutURLNothingIsAnnounced(t *testing.T) {
	cfg, err := ConfigFromEnv(map[string]string{"LAMBDALET_POD_IP": "10.1.2.3", "LAMBDALET_POD_NAME": "p"}, noFile)
	if err != nil {
		t.Fatal(err)
	}
	n := newAnnouncer(cfg, &logger{w: io.Discard})
	if n != nil {
		t.Fatalf("announcer %+v without LAMBDALET_ANNOUNCE_URL", n)
	}
	n.announce()            // a nil announcer does nothing,
	n.withdraw(time.Second) // and does not panic
}

func TestWithdrawDeletesWhereAnnounced(t *testing.T) {
	one := startActivator(t, "127.0.0.1", "0", status(http.StatusNoContent))
	two := startActivator(t, "127.0.0.2", one.port, status(http.StatusNoContent))
	n, logs, _ := testAnnouncer(t, "http://activators.test:"+one.port+"/v1/announce", resolveTo("127.0.0.1", "127.0.0.2"))

	n.announce()
	finished(t, n)
	one.next(t)
	two.next(t)
	n.withdraw(time.Second)

	for _, a := range []*activator{one, two} {
		got := a.next(t)
		if got.method != "DELETE" || got.auth != "Bearer first" || got.body != wantBody {
			t.Errorf("got %+v", got)
		}
		a.none(t)
	}
	if logs.String() != "" {
		t.Errorf("logged %q", logs)
	}
}

func TestWithdrawBeforeAnnounceSendsNothing(t *testing.T) {
	a := startActivator(t, "127.0.0.1", "0", status(http.StatusNoContent))
	n, _, _ := testAnnouncer(t, "http://127.0.0.1:"+a.port+"/", nil)

	n.withdraw(time.Second)
	n.announce() // the agent is stopping: too late

	time.Sleep(50 * time.Millisecond) // a request sent by mistake would have arrived by now
	a.none(t)
}

func TestAnnounceNeverBlocksAndWithdrawKeepsItsBudget(t *testing.T) {
	release := make(chan struct{})
	a := startActivator(t, "127.0.0.1", "0", func(int, http.ResponseWriter) {
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
	})
	defer close(release)
	n, logs, _ := testAnnouncer(t, "http://127.0.0.1:"+a.port+"/", nil)

	began := time.Now()
	n.announce()
	if d := time.Since(began); d > 50*time.Millisecond {
		t.Errorf("announce took %v", d)
	}
	a.next(t) // the POST hangs
	began = time.Now()
	n.withdraw(200 * time.Millisecond)
	if d := time.Since(began); d > 400*time.Millisecond {
		t.Errorf("withdraw took %v with a budget of 200 ms", d)
	}
	finished(t, n)
	if got := a.next(t); got.method != "DELETE" {
		t.Errorf("got %+v", got)
	}
	if got := logs.String(); !strings.Contains(got, "announce: 127.0.0.1: delete: ") {
		t.Errorf("logged %q", got)
	}
}

func TestAnnounceFollowsNoRedirect(t *testing.T) {
	elsewhere := startActivator(t, "127.0.0.1", "0", status(http.StatusNoContent))
	a := startActivator(t, "127.0.0.1", "0", func(_ int, w http.ResponseWriter) {
		w.Header().Set("Location", "http://127.0.0.1:"+elsewhere.port+"/")
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	n, logs, _ := testAnnouncer(t, "http://127.0.0.1:"+a.port+"/", nil)

	n.announce()
	finished(t, n)

	a.next(t)
	a.none(t)
	elsewhere.none(t) // the token goes to the activators only
	if got := logs.String(); !strings.Contains(got, "post: HTTP 307") {
		t.Errorf("logged %q", got)
	}
}

func TestInitErrorsAreReportedBesideTheAnnouncement(t *testing.T) {
	type report struct {
		path string
		auth string
		body initErrorReport
	}
	got := make(chan report, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body initErrorReport
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Errorf("body %q: %v", raw, err)
		}
		got <- report{r.URL.Path, r.Header.Get("Authorization"), body}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	n, logs, _ := testAnnouncer(t, srv.URL+"/v1/announce", nil)

	doc := errorDoc("Runtime.ImportModuleError", "Unable to import module 'app': No module named 'app'")
	n.reportInitError(initError{"Runtime.ImportModuleError", doc})
	long := strings.Repeat("é", maxInitErrorReport)
	n.reportInitError(initError{codeErrorType, errorDoc(codeErrorType, long)})

	for i := 0; i < 2; i++ {
		var r report
		select {
		case r = <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("no report within 5 s")
		}
		if r.path != "/v1/init-error" || r.auth != "Bearer first" || r.body.announcement != wantBody {
			t.Errorf("report %+v", r)
		}
		var e struct{ ErrorType, ErrorMessage string }
		if err := json.Unmarshal(r.body.Error, &e); err != nil {
			t.Fatal(err)
		}
		switch r.body.ErrorType {
		case "Runtime.ImportModuleError":
			if string(r.body.Error) != string(doc) {
				t.Errorf("error %s, want the runtime's document %s", r.body.Error, doc)
			}
		case codeErrorType:
			if !strings.HasSuffix(e.ErrorMessage, " …") || len(e.ErrorMessage) > maxInitErrorReport/2+4 {
				t.Errorf("a long message is cut: %d bytes", len(e.ErrorMessage))
			}
		default:
			t.Errorf("error type %q", r.body.ErrorType)
		}
	}
	if logs.String() != "" {
		t.Errorf("logged %q", logs)
	}
}

func TestInitErrorURL(t *testing.T) {
	for raw, want := range map[string]string{
		"http://a.svc:8081/v1/announce": "http://a.svc:8081/v1/init-error",
		"https://a/announce":            "https://a/init-error",
		"http://a/x/y/":                 "http://a/x/y/init-error",
	} {
		u, _ := url.Parse(raw)
		if got := initErrorURL(u).String(); got != want {
			t.Errorf("%s: %s, want %s", raw, got, want)
		}
	}
}
