// The stub backend (loadgen -serve 127.0.0.2:8080): a pod that answers every invocation at once,
// the way the function agent answers a successful one of a handler returning
// {"statusCode": 200, "body": "ok"}, so that a benchmark of the activator measures the activator
// and not the agents and runtimes behind it. It also answers the readiness probe.
//
// Once it listens it writes "listening on ADDR" to stdout (port 0 picks a free one).

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
)

const invokePath = "/2015-03-31/functions/function/invocations"

// The payload the Python runtime sends for {"statusCode": 200, "body": "ok"} (json.dumps).
var (
	stubPayload = []byte(`{"statusCode": 200, "body": "ok"}`)
	stubReady   = []byte(`{"status":"ready"}`)
)

func stubHandler() http.Handler {
	var ids atomic.Uint64
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+invokePath, func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body) // a keep-alive connection needs the body read
		id := req.Header.Get("Lambdalet-Request-Id")
		if id == "" { // the agent makes one up too; the activator always sends its own
			id = "stub-" + strconv.FormatUint(ids.Add(1), 10)
		}
		h := w.Header()
		h.Set("Lambdalet-Request-Id", id)
		h.Set("X-Amz-Executed-Version", "$LATEST")
		stubJSON(w, http.StatusOK, stubPayload)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		stubJSON(w, http.StatusOK, stubReady)
	})
	return mux
}

func stubJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// serve runs the stub on addr until the process is killed.
func serve(addr string) error {
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(os.Stdout, "listening on", listener.Addr()); err != nil {
		return err
	}
	return http.Serve(listener, stubHandler())
}
