package main

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestTimeoutOutcome(t *testing.T) {
	at := time.Date(2024, 5, 1, 10, 0, 3, 4_000_000, time.UTC)
	o := timeoutOutcome("8476a536", 3*time.Second, at)
	want := `{"errorMessage":"2024-05-01T10:00:03.004Z 8476a536 Task timed out after 3.00 seconds","errorType":"Sandbox.Timedout"}`
	if string(o.body) != want || o.status != http.StatusOK || o.errorType != "Sandbox.Timedout" {
		t.Errorf("got %d %s %s", o.status, o.errorType, o.body)
	}
	if o.logLine != "2024-05-01T10:00:03.004Z 8476a536 Task timed out after 3.00 seconds" {
		t.Errorf("log line %q", o.logLine)
	}
	if o := timeoutOutcome("x", 1500*time.Millisecond, at); !regexp.MustCompile(`after 1\.50 seconds`).Match(o.body) {
		t.Errorf("fractional timeout: %s", o.body)
	}
}

func TestExitOutcome(t *testing.T) {
	cases := map[string]string{
		"exit status 1":  "RequestId: r1 Error: Runtime exited with error: exit status 1",
		"signal: killed": "RequestId: r1 Error: Runtime exited with error: signal: killed",
		"exit status 0":  "RequestId: r1 Error: Runtime exited without providing a reason",
	}
	for status, want := range cases {
		var doc struct{ ErrorMessage, ErrorType string }
		if err := json.Unmarshal(exitOutcome("r1", status, "Runtime.ExitError").body, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.ErrorMessage != want || doc.ErrorType != "Runtime.ExitError" {
			t.Errorf("%s: %+v", status, doc)
		}
	}
}

func TestOutOfMemoryOutcome(t *testing.T) {
	o := exitOutcome("r1", "signal: killed", outOfMemory)
	want := `{"errorMessage":"RequestId: r1 Error: Runtime exited with error: signal: killed","errorType":"Runtime.OutOfMemory"}`
	if string(o.body) != want || o.errorType != "Runtime.OutOfMemory" || o.status != 200 {
		t.Errorf("got %d %s %q", o.status, o.body, o.errorType)
	}
	if o.logLine != "RequestId: r1 Error: Runtime exited with error: signal: killed\nRuntime.OutOfMemory" {
		t.Errorf("log line %q", o.logLine)
	}
}

func TestResponseTooLarge(t *testing.T) {
	want := `{"errorMessage":"Response payload size (9706999 bytes) exceeded maximum allowed payload size (6291556 bytes).","errorType":"Function.ResponseSizeTooLarge"}`
	if got := string(responseTooLargeOutcome(9706999).body); got != want {
		t.Errorf("got %s", got)
	}
}

func TestRuntimeErrorDoc(t *testing.T) {
	cases := []struct {
		body, header, wantType, wantBody string
	}{
		{`{"errorMessage":"boom","errorType":"ValueError","stackTrace":[]}`, "ValueError", "ValueError",
			`{"errorMessage":"boom","errorType":"ValueError","stackTrace":[]}`},
		{`{"errorMessage":"boom","errorType":"ValueError"}`, "", "ValueError",
			`{"errorMessage":"boom","errorType":"ValueError"}`},
		{`not json`, "Custom.Error", "Custom.Error",
			`{"errorMessage":"The runtime reported an error without a JSON error document","errorType":"Custom.Error"}`},
		{``, "", "Runtime.Unknown",
			`{"errorMessage":"The runtime reported an error without a JSON error document","errorType":"Runtime.Unknown"}`},
		{`["an array"]`, "", "Runtime.Unknown",
			`{"errorMessage":"The runtime reported an error without a JSON error document","errorType":"Runtime.Unknown"}`},
	}
	for _, tc := range cases {
		doc, typ := runtimeErrorDoc([]byte(tc.body), tc.header)
		if typ != tc.wantType || string(doc) != tc.wantBody {
			t.Errorf("%q/%q: got %s %s", tc.body, tc.header, typ, doc)
		}
	}
}

func TestFinishOnce(t *testing.T) {
	now := time.Now()
	inv := newInvocation("a", nil, now, time.Second)
	if !inv.deadline.Equal(now.Add(time.Second)) {
		t.Error("deadline")
	}
	if !inv.finish(outcome{status: 200, body: []byte(`1`)}, now) {
		t.Fatal("first finish refused")
	}
	if inv.finish(outcome{status: 200, body: []byte(`2`)}, now) {
		t.Error("second finish accepted")
	}
	if inv.dispatch(&runtimeSlot{}, &process{pid: 1}, now, 0) {
		t.Error("a finished invocation was dispatched")
	}
	<-inv.done
	if string(inv.out.body) != "1" {
		t.Errorf("outcome %s", inv.out.body)
	}
}

func TestIDs(t *testing.T) {
	if id := newRequestID(); !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("request id %q", id)
	}
	at := time.Unix(0x5bef4de7, 0)
	if tr := newTraceID(at); !regexp.MustCompile(`^Root=1-5bef4de7-[0-9a-f]{24};Sampled=0$`).MatchString(tr) {
		t.Errorf("trace id %q", tr)
	}
}

func TestHeaderJSON(t *testing.T) {
	cases := map[string]string{
		`{"t": "Café 🦙"}`:          `{"t": "Caf\u00e9 \ud83e\udd99"}`,
		"{\n\t\"a\": [1,\r\n2]\n}": `{  "a": [1,  2] }`,
		`{"plain": "ascii"}`:       `{"plain": "ascii"}`,
	}
	for in, want := range cases {
		got := headerJSON([]byte(in))
		if got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
		var a, b any
		if json.Unmarshal([]byte(in), &a) != nil || json.Unmarshal([]byte(got), &b) != nil {
			t.Fatalf("%q: not JSON", in)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%q: means %v, not %v", in, b, a)
		}
	}
}

func TestValidRequestID(t *testing.T) {
	for id, want := range map[string]bool{
		"8476a536-e9f4-11e8-9739-2dfe598c3fcd": true,
		"req_1.retry:2":                        true,
		"":                                     false,
		"a/b":                                  false,
		"with space":                           false,
		"ünïcode":                              false,
		strings.Repeat("x", 128):               true,
		strings.Repeat("x", 129):               false,
	} {
		if got := validRequestID(id); got != want {
			t.Errorf("%q: %v, want %v", id, got, want)
		}
	}
}
