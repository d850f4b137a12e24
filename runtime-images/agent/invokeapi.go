// The pod's side facing the activator: invocations on the path of AWS's Runtime Interface Emulator
// (POST /2015-03-31/functions/function/invocations, so RIE-style clients work) and the readiness
// probe GET /healthz. An invocation is admitted if one of the LAMBDALET_CONCURRENCY slots is free
// (else 429 at once), queued for the next runtime that asks, and answered with the runtime's
// payload or a Lambda-shaped error when it ends, times out or loses its runtime.

package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

func (a *agent) invokeAPI() http.Handler {
	mux := http.NewServeMux()
	// Any function name: AWS SDKs pointed at the pod put the real one in the path.
	mux.HandleFunc("POST /2015-03-31/functions/{name}/invocations", a.invoke)
	mux.HandleFunc("GET /healthz", a.healthz)
	return mux
}

func (a *agent) invoke(w http.ResponseWriter, req *http.Request) {
	accepted := time.Now()
	id := req.Header.Get("Lambdalet-Request-Id")
	if id == "" {
		id = newRequestID()
	} else if !validRequestID(id) {
		writeJSON(w, http.StatusBadRequest, errorDoc("InvalidRequestContentException",
			"Lambdalet-Request-Id must be 1 to 128 of the characters A-Z a-z 0-9 - _ . :"))
		return
	}
	w.Header().Set("Lambdalet-Request-Id", id)
	w.Header().Set("X-Amz-Executed-Version", a.cfg.FunctionVersion)

	event, size, err := readLimited(req.Body, maxRequestBytes)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorDoc("InvalidRequestContentException", "Could not read the request body"))
		return
	}
	if size > maxRequestBytes {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorDoc("RequestEntityTooLargeException",
			"Request must be smaller than "+strconv.Itoa(maxRequestBytes)+" bytes for the InvokeFunction operation"))
		return
	}
	inv := newInvocation(id, event, accepted, a.cfg.Timeout)
	if raw := req.Header.Get("X-Amz-Client-Context"); raw != "" {
		decoded, err := base64.StdEncoding.DecodeString(raw)
		if err != nil || !validJSONObject(decoded) {
			writeJSON(w, http.StatusBadRequest, errorDoc("InvalidRequestContentException",
				"Client context must be a valid Base64-encoded JSON object."))
			return
		}
		inv.clientContext = headerJSON(decoded)
	}
	if raw := req.Header.Get("Lambdalet-Cognito-Identity"); raw != "" {
		if !validJSONObject([]byte(raw)) {
			writeJSON(w, http.StatusBadRequest, errorDoc("InvalidRequestContentException",
				"Lambdalet-Cognito-Identity must be a JSON object."))
			return
		}
		inv.cognitoIdentity = headerJSON([]byte(raw))
	}
	inv.traceID = req.Header.Get("X-Amzn-Trace-Id")
	if inv.traceID == "" {
		inv.traceID = newTraceID(accepted)
	}

	select {
	case a.slots <- struct{}{}:
	default:
		writeJSON(w, http.StatusTooManyRequests, errorDoc("TooManyRequestsException",
			"Rate Exceeded: all "+strconv.Itoa(a.cfg.Concurrency)+" concurrent invocations of this instance are in use."))
		return
	}
	if o, refused := a.admit(inv); refused {
		<-a.slots
		respond(w, o)
		return
	}

	timer := time.NewTimer(time.Until(inv.deadline))
	defer timer.Stop()
	memMiB := -1
	select {
	case <-inv.done:
	case <-timer.C:
		now := time.Now()
		if inv.finish(timeoutOutcome(id, a.cfg.Timeout, now), now) {
			if r, p := inv.handedTo(); r != nil {
				memMiB = maxMemoryMiB(p.pid) // before the kill takes the process away
				r.kill(p, killTimeout, syscall.SIGKILL)
			}
		}
		<-inv.done
	}
	// The slot is free once the invocation has ended, before its caller hears of it: a caller
	// that sends the next request at once must not find it still taken.
	<-a.slots
	respond(w, inv.out) // the invocation has ended: out no longer changes
	if f, ok := w.(http.Flusher); ok {
		f.Flush() // the caller has its answer before the log lines are made
	}
	a.logEnd(inv, memMiB)
}

// validRequestID keeps caller-chosen ids to characters that are safe in a Runtime API path
// (/runtime/invocation/{id}/response) and in a log line.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("-_.:", c)) {
			return false
		}
	}
	return true
}

// admit queues inv, unless the agent is stopping or the runtime cannot initialise.
func (a *agent) admit(inv *invocation) (outcome, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopping {
		return outcome{status: http.StatusServiceUnavailable, body: errorDoc("ServiceException", "The function instance is stopping")}, true
	}
	if a.ready == 0 && a.lastInitErr != nil {
		return a.lastInitErr.outcome(), true
	}
	a.queue.push(inv)
	return outcome{}, false
}

func respond(w http.ResponseWriter, o outcome) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(o.body)))
	if o.errorType != "" {
		h.Set("X-Amz-Function-Error", "Unhandled")
	}
	w.WriteHeader(o.status)
	_, _ = w.Write(o.body)
}

// logEnd writes the lines that close an invocation, after its caller has the answer.
func (a *agent) logEnd(inv *invocation, memMiB int) {
	if inv.out.logLine != "" {
		a.log.line(inv.out.logLine)
	}
	r, p := inv.handedTo()
	if r == nil {
		return
	}
	if memMiB < 0 {
		memMiB = maxMemoryMiB(p.pid)
	}
	r.mu.Lock()
	if memMiB > 0 {
		r.memMiB = memMiB
	} else {
		memMiB = r.memMiB // the process is gone: its last reading
	}
	r.mu.Unlock()
	a.log.line(endLine(inv.id))
	a.log.line(report{
		id:           inv.id,
		duration:     inv.finishedAt.Sub(inv.dispatchedAt),
		memoryMiB:    a.cfg.MemoryMiB,
		maxMemoryMiB: memMiB,
		initDuration: inv.initDuration,
	}.String())
}

func (a *agent) healthz(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.stopping:
		writeJSON(w, http.StatusServiceUnavailable, []byte(`{"status":"stopping"}`))
	case a.ready > 0:
		writeJSON(w, http.StatusOK, []byte(`{"status":"ready"}`))
	case a.lastInitErr != nil:
		body := []byte(`{"status":"init_error","error":`)
		body = append(body, a.lastInitErr.body...)
		writeJSON(w, http.StatusServiceUnavailable, append(body, '}'))
	default:
		writeJSON(w, http.StatusServiceUnavailable, []byte(`{"status":"starting"}`))
	}
}

// validJSONObject reports whether b is a JSON object (client context must be one).
func validJSONObject(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}

// headerJSON makes a valid JSON text safe for an HTTP header: non-ASCII characters (which can only
// be inside strings) become \u escapes, UTF-16 pairs above U+FFFF, and the whitespace between
// tokens becomes spaces. `{"t": "Café 🦙"}` -> `{"t": "Caf\u00e9 \ud83e\udd99"}`.
func headerJSON(b []byte) string {
	var sb strings.Builder
	for _, r := range string(b) {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			sb.WriteByte(' ')
		case r < utf8.RuneSelf:
			sb.WriteRune(r)
		case r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			fmt.Fprintf(&sb, `\u%04x\u%04x`, hi, lo)
		default:
			fmt.Fprintf(&sb, `\u%04x`, r)
		}
	}
	return sb.String()
}
