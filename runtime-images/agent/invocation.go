// One invocation from accept to answer, and the outcomes it can end with: the runtime's response
// or error, a timeout, a runtime that exited, an init error. Whoever finishes an invocation first
// wins; later attempts (a late response after a timeout, say) are refused.

package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Lambda's payload limits for synchronous invocations.
const (
	maxRequestBytes  = 6291456 // 6 MiB
	maxResponseBytes = 6291556 // 6 MiB + 100 bytes, as Lambda counts it
)

// outcome is what the caller of an invocation gets.
type outcome struct {
	status    int    // HTTP status: 200, or 502 when the runtime could not be initialised
	body      []byte // the payload, or the error document
	errorType string // non-empty for a function error (X-Amz-Function-Error: Unhandled)
	logLine   string // a line for the function's log, e.g. the timeout notice
}

type invocation struct {
	id              string
	event           []byte
	traceID         string
	clientContext   string // JSON (as ASCII), decoded from the caller's base64
	cognitoIdentity string // JSON (as ASCII)
	accepted        time.Time
	deadline        time.Time

	mu           sync.Mutex
	finished     bool
	out          outcome
	done         chan struct{} // closed when finished
	runtime      *runtimeSlot  // set when handed to a runtime
	proc         *process      // the runtime process it was handed to
	dispatchedAt time.Time
	finishedAt   time.Time
	initDuration time.Duration // > 0 for the first invocation after an init
}

func newInvocation(id string, event []byte, accepted time.Time, timeout time.Duration) *invocation {
	return &invocation{
		id:       id,
		event:    event,
		accepted: accepted,
		deadline: accepted.Add(timeout),
		done:     make(chan struct{}),
	}
}

// dispatch records that process p of runtime r took the invocation; false if it already ended.
func (inv *invocation) dispatch(r *runtimeSlot, p *process, now time.Time, initDuration time.Duration) bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.finished {
		return false
	}
	inv.runtime, inv.proc, inv.dispatchedAt, inv.initDuration = r, p, now, initDuration
	return true
}

// finish ends the invocation with o; false if it had already ended.
func (inv *invocation) finish(o outcome, now time.Time) bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.finished {
		return false
	}
	inv.finished, inv.out, inv.finishedAt = true, o, now
	close(inv.done)
	return true
}

func (inv *invocation) isFinished() bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.finished
}

// handedTo is the runtime and process the invocation was dispatched to (nil if none).
func (inv *invocation) handedTo() (*runtimeSlot, *process) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.runtime, inv.proc
}

// errorDoc is the JSON error document of Lambda's APIs and runtimes.
func errorDoc(errorType, message string) []byte {
	b, _ := json.Marshal(struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}{message, errorType})
	return b
}

func functionError(errorType, message, logLine string) outcome {
	return outcome{status: http.StatusOK, body: errorDoc(errorType, message), errorType: errorType, logLine: logLine}
}

// timeoutOutcome is Lambda's timeout error, e.g.
// "2024-05-01T10:00:03.004Z 8476a536-e9f4-11e8-9739-2dfe598c3fcd Task timed out after 3.00 seconds".
func timeoutOutcome(id string, timeout time.Duration, now time.Time) outcome {
	msg := fmt.Sprintf("%s %s Task timed out after %.2f seconds",
		now.UTC().Format("2006-01-02T15:04:05.000Z07:00"), id, timeout.Seconds())
	return functionError("Sandbox.Timedout", msg, msg)
}

// outOfMemory is the error type of a runtime the kernel's OOM killer ended (see oom.go).
const outOfMemory = "Runtime.OutOfMemory"

// exitOutcome is the error of an invocation whose runtime process exited under it: errorType
// Runtime.ExitError, or Runtime.OutOfMemory for an OOM kill, e.g. "RequestId: 8476a536-…
// Error: Runtime exited with error: signal: killed", as Lambda words both.
func exitOutcome(id, status, errorType string) outcome {
	msg := "RequestId: " + id + " Error: " + exitReason(status)
	return functionError(errorType, msg, msg+"\n"+errorType)
}

func exitReason(status string) string {
	if status == "exit status 0" {
		return "Runtime exited without providing a reason"
	}
	return "Runtime exited with error: " + status
}

func responseTooLargeOutcome(size int64) outcome {
	msg := fmt.Sprintf("Response payload size (%d bytes) exceeded maximum allowed payload size (%d bytes).",
		size, maxResponseBytes)
	return functionError("Function.ResponseSizeTooLarge", msg, msg)
}

// initError is a runtime's failure to initialise: posted to /runtime/init/error, or inferred.
type initError struct {
	errorType string
	body      []byte // the error document the runtime posted (or one made for it)
}

func (e initError) outcome() outcome {
	return outcome{status: http.StatusBadGateway, body: e.body, errorType: e.errorType}
}

// runtimeErrorDoc is the error document a runtime posted, kept as it is when it is a JSON object
// (Lambda passes it through); otherwise one is made from the error type header.
func runtimeErrorDoc(body []byte, headerType string) (doc []byte, errorType string) {
	var fields struct {
		ErrorType string `json:"errorType"`
	}
	var object map[string]json.RawMessage
	if json.Unmarshal(body, &object) == nil && object != nil {
		_ = json.Unmarshal(body, &fields)
		errorType = headerType
		if errorType == "" {
			errorType = fields.ErrorType
		}
		if errorType == "" {
			errorType = "Runtime.Unknown"
		}
		return body, errorType
	}
	if headerType == "" {
		headerType = "Runtime.Unknown"
	}
	return errorDoc(headerType, "The runtime reported an error without a JSON error document"), headerType
}

// newRequestID is a random (version 4) UUID.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newTraceID is an X-Ray trace header for an invocation that came without one, e.g.
// "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Sampled=0" (epoch seconds in hex, then 96 random bits).
func newTraceID(now time.Time) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("Root=1-%08x-%s;Sampled=0", now.Unix(), hex.EncodeToString(b[:]))
}
