// The Lambda Runtime API (version 2018-06-01) that a runtime process speaks on 127.0.0.1: it asks
// for the next invocation (a long poll), then posts that invocation's response or error; a
// runtime that cannot initialise posts an init error. Each runtime slot serves it on its own
// address, so every request is known to come from that slot's process.

package main

import (
	"io"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

const maxInitErrorBytes = 1 << 20

func (r *runtimeSlot) runtimeAPI() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", r.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", r.response)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", r.invocationError)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", r.initError)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func accepted(w http.ResponseWriter) {
	writeJSON(w, http.StatusAccepted, []byte(`{"status":"OK"}`))
}

func invalidRequestID(w http.ResponseWriter) {
	writeJSON(w, http.StatusBadRequest, errorDoc("InvalidRequestID", "Invalid request ID"))
}

func invalidState(w http.ResponseWriter, message string) {
	writeJSON(w, http.StatusForbidden, errorDoc("InvalidStateTransition", message))
}

// next hands the runtime the next invocation; its first call marks the runtime initialised.
func (r *runtimeSlot) next(w http.ResponseWriter, req *http.Request) {
	a := r.agent
	now := time.Now()
	r.mu.Lock()
	p := r.proc
	busy := r.current != nil && !r.current.isFinished()
	failed := p == nil || p.initFailed || p.killed != ""
	first := !busy && !failed && !p.initialized
	if first {
		p.initialized, p.initDuration = true, now.Sub(p.started)
	}
	r.mu.Unlock()
	if busy {
		invalidState(w, "The runtime asked for the next invocation before answering the current one")
		return
	}
	if failed {
		invalidState(w, "This runtime process is being stopped")
		return
	}
	if first {
		a.runtimeReady()
	}

	for {
		inv, err := a.queue.next(req.Context())
		if err != nil {
			return // the runtime went away
		}
		now = time.Now()
		r.mu.Lock()
		p = r.proc
		gone := p == nil || p.killed != "" // ended or being ended while it waited
		var initDuration time.Duration
		if !gone && !p.initReported {
			initDuration = p.initDuration
		}
		ok := !gone && inv.dispatch(r, p, now, initDuration)
		if ok {
			r.current, p.initReported = inv, true
		}
		r.mu.Unlock()
		if gone {
			a.queue.requeue(inv)
			return
		}
		if !ok { // timed out while pending
			continue
		}
		a.log.line(startLine(inv.id, a.cfg.FunctionVersion))
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(inv.event)))
		h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", a.cfg.FunctionARN())
		h.Set("Lambda-Runtime-Trace-Id", inv.traceID)
		if inv.clientContext != "" {
			h.Set("Lambda-Runtime-Client-Context", inv.clientContext)
		}
		if inv.cognitoIdentity != "" {
			h.Set("Lambda-Runtime-Cognito-Identity", inv.cognitoIdentity)
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(inv.event)
		return
	}
}

// currentWithID is the slot's invocation if its id is id and it has not ended.
func (r *runtimeSlot) currentWithID(id string) *invocation {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current == nil || r.current.id != id || r.current.isFinished() {
		return nil
	}
	return r.current
}

// completed ends inv with o; false if something else (a timeout) ended it first.
func (r *runtimeSlot) completed(inv *invocation, o outcome) bool {
	if !inv.finish(o, time.Now()) {
		return false
	}
	r.mu.Lock()
	if r.current == inv {
		r.current = nil
	}
	r.failures = 0
	r.mu.Unlock()
	return true
}

func (r *runtimeSlot) response(w http.ResponseWriter, req *http.Request) {
	inv := r.currentWithID(req.PathValue("id"))
	if inv == nil {
		invalidRequestID(w)
		return
	}
	body, size, err := readLimited(req.Body, maxResponseBytes)
	if err != nil {
		return // the runtime went away mid-request; its exit fails the invocation
	}
	if size > maxResponseBytes {
		r.completed(inv, responseTooLargeOutcome(size))
		writeJSON(w, http.StatusRequestEntityTooLarge, errorDoc("RequestEntityTooLarge",
			"Exceeded maximum allowed payload size ("+strconv.Itoa(maxResponseBytes)+" bytes)."))
		return
	}
	if !r.completed(inv, outcome{status: http.StatusOK, body: body}) {
		invalidRequestID(w)
		return
	}
	accepted(w)
}

func (r *runtimeSlot) invocationError(w http.ResponseWriter, req *http.Request) {
	inv := r.currentWithID(req.PathValue("id"))
	if inv == nil {
		invalidRequestID(w)
		return
	}
	body, size, err := readLimited(req.Body, maxResponseBytes)
	if err != nil {
		return
	}
	if size > maxResponseBytes {
		body = nil
	}
	doc, errorType := runtimeErrorDoc(body, req.Header.Get("Lambda-Runtime-Function-Error-Type"))
	if !r.completed(inv, outcome{status: http.StatusOK, body: doc, errorType: errorType}) {
		invalidRequestID(w)
		return
	}
	accepted(w)
}

// initError records the runtime's init failure; the process is then ended and, after a backoff,
// started again.
func (r *runtimeSlot) initError(w http.ResponseWriter, req *http.Request) {
	body, _, err := readLimited(req.Body, maxInitErrorBytes)
	if err != nil {
		return
	}
	now := time.Now()
	r.mu.Lock()
	p := r.proc
	if p == nil || p.initialized || p.initFailed {
		r.mu.Unlock()
		invalidState(w, "An init error can only be reported once, before the first invocation")
		return
	}
	p.initFailed = true
	r.mu.Unlock()

	doc, errorType := runtimeErrorDoc(body, req.Header.Get("Lambda-Runtime-Function-Error-Type"))
	r.agent.initFailed(initError{errorType: errorType, body: doc}, now.Sub(p.started))
	accepted(w)
	// A runtime exits after reporting; one that lingers is ended.
	time.AfterFunc(time.Second, func() { r.kill(p, killInitError, syscall.SIGKILL) })
}

// readLimited reads up to limit bytes and counts (without keeping) the rest.
func readLimited(body io.Reader, limit int64) ([]byte, int64, error) {
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, 0, err
	}
	size := int64(len(b))
	if size > limit {
		rest, err := io.Copy(io.Discard, body)
		if err != nil {
			return nil, 0, err
		}
		return nil, size + rest, nil
	}
	return b, size, nil
}
