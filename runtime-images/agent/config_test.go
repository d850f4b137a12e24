package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func noFile(string) bool { return false }

func TestConfigDefaults(t *testing.T) {
	c, err := ConfigFromEnv(map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME": "hello",
		"_HANDLER":                 "app.handler",
		"LAMBDALET_RUNTIME":        "python3.12",
	}, noFile)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		FunctionName:    "hello",
		FunctionVersion: "$LATEST",
		MemoryMiB:       128,
		Handler:         "app.handler",
		Runtime:         "python3.12",
		Namespace:       "default",
		Timeout:         3 * time.Second,
		Concurrency:     1,
		Port:            8080,
		RuntimeAPIPort:  9001,
		TaskRoot:        "/var/task",
		Bootstrap:       []string{"python3", "/opt/lambdalet/python/bootstrap.py"},
		Region:          "us-east-1",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
	if arn := c.FunctionARN(); arn != "arn:aws:lambda:us-east-1:000000000000:function:hello" {
		t.Errorf("ARN %q", arn)
	}
}

func TestConfigOverrides(t *testing.T) {
	c, err := ConfigFromEnv(map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME":          "fn",
		"AWS_LAMBDA_FUNCTION_VERSION":       "7",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE":   "1024",
		"LAMBDALET_RUNTIME":                 "nodejs22",
		"LAMBDALET_TIMEOUT_SECONDS":         "0.5",
		"LAMBDALET_CONCURRENCY":             "4",
		"LAMBDALET_PORT_NUMBER":             "9000",
		"LAMBDALET_RUNTIME_API_PORT_NUMBER": "0",
		"LAMBDA_TASK_ROOT":                  "/code",
		"LAMBDALET_BOOTSTRAP":               "  /usr/bin/node   /rt/index.js --flag ",
		"AWS_REGION":                        "eu-central-1",
	}, noFile)
	if err != nil {
		t.Fatal(err)
	}
	if c.FunctionVersion != "7" || c.MemoryMiB != 1024 || c.Timeout != 500*time.Millisecond ||
		c.Concurrency != 4 || c.Port != 9000 || c.RuntimeAPIPort != 0 || c.TaskRoot != "/code" ||
		c.Region != "eu-central-1" {
		t.Errorf("got %+v", c)
	}
	if want := []string{"/usr/bin/node", "/rt/index.js", "--flag"}; !reflect.DeepEqual(c.Bootstrap, want) {
		t.Errorf("bootstrap %q", c.Bootstrap)
	}
}

func TestDefaultBootstrap(t *testing.T) {
	cases := []struct {
		runtime, taskRoot string
		ownBootstrap      bool
		want              string
	}{
		{"python3.11", "/var/task", false, "python3 /opt/lambdalet/python/bootstrap.py"},
		{"nodejs20", "/var/task", false, "node /opt/lambdalet/nodejs/bootstrap.js"},
		{"provided", "/var/task", true, "/var/task/bootstrap"},
		{"provided", "/code/", true, "/code/bootstrap"},
		{"provided", "/var/task", false, "/var/runtime/bootstrap"},
	}
	for _, tc := range cases {
		exists := func(path string) bool { return tc.ownBootstrap && strings.HasSuffix(path, "/bootstrap") }
		c, err := ConfigFromEnv(map[string]string{"LAMBDALET_RUNTIME": tc.runtime, "LAMBDA_TASK_ROOT": tc.taskRoot}, exists)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(c.Bootstrap, " "); got != tc.want {
			t.Errorf("%s (own bootstrap %v): %q, want %q", tc.runtime, tc.ownBootstrap, got, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, value, mention string
	}{
		{"LAMBDALET_RUNTIME", "ruby3.3", "LAMBDALET_RUNTIME"},
		{"LAMBDALET_TIMEOUT_SECONDS", "0", "LAMBDALET_TIMEOUT_SECONDS"},
		{"LAMBDALET_TIMEOUT_SECONDS", "soon", "LAMBDALET_TIMEOUT_SECONDS"},
		{"LAMBDALET_TIMEOUT_SECONDS", "NaN", "LAMBDALET_TIMEOUT_SECONDS"},
		{"LAMBDALET_CONCURRENCY", "0", "LAMBDALET_CONCURRENCY"},
		{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"},
		{"LAMBDALET_PORT_NUMBER", "70000", "LAMBDALET_PORT_NUMBER"},
		{"LAMBDALET_RUNTIME_API_PORT_NUMBER", "65535", "no room"}, // with LAMBDALET_CONCURRENCY=2
		{"LAMBDALET_PORT_NUMBER", "tcp://10.96.0.7:80", "enableServiceLinks: false"},
		{"LAMBDALET_BOOTSTRAP", "   ", "blank"},
	}
	for _, tc := range cases {
		env := map[string]string{"LAMBDALET_RUNTIME": "python3.12", "LAMBDALET_CONCURRENCY": "2", tc.name: tc.value}
		_, err := ConfigFromEnv(env, noFile)
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s=%q: error %v, want one mentioning %q", tc.name, tc.value, err, tc.mention)
		}
	}
}

func TestRuntimeEnv(t *testing.T) {
	c, err := ConfigFromEnv(map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME": "hello",
		"_HANDLER":                 "app.handler",
		"LAMBDALET_RUNTIME":        "nodejs20",
		"AWS_REGION":               "ap-south-1",
	}, noFile)
	if err != nil {
		t.Fatal(err)
	}
	inherited := map[string]string{
		"GREETING":               "hallo",
		"LAMBDALET_CODE_S3_KEY":  "secret-ish",
		"AWS_LAMBDA_RUNTIME_API": "overridden",
		"PATH":                   "/custom/bin",
	}
	got := envMap(RuntimeEnv(c, inherited, "127.0.0.1:9001", "2024/05/01/[$LATEST]pod-1"))
	want := map[string]string{
		"GREETING":                        "hallo",
		"PATH":                            "/custom/bin",
		"LANG":                            "en_US.UTF-8",
		"AWS_LAMBDA_RUNTIME_API":          "127.0.0.1:9001",
		"_HANDLER":                        "app.handler",
		"LAMBDA_TASK_ROOT":                "/var/task",
		"LAMBDA_RUNTIME_DIR":              "/var/runtime",
		"AWS_LAMBDA_FUNCTION_NAME":        "hello",
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
		"AWS_REGION":                      "ap-south-1",
		"AWS_DEFAULT_REGION":              "ap-south-1",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/hello",
		"AWS_LAMBDA_LOG_STREAM_NAME":      "2024/05/01/[$LATEST]pod-1",
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"AWS_EXECUTION_ENV":               "AWS_Lambda_nodejs20.x",
		"TZ":                              ":UTC",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestExecutionEnv(t *testing.T) {
	for runtime, want := range map[string]string{
		"python3.11": "AWS_Lambda_python3.11",
		"nodejs22":   "AWS_Lambda_nodejs22.x",
		"provided":   "",
	} {
		if got := executionEnv(runtime); got != want {
			t.Errorf("%s: %q, want %q", runtime, got, want)
		}
	}
}

func TestLogStreamName(t *testing.T) {
	at := time.Date(2024, 5, 1, 23, 30, 0, 0, time.FixedZone("CEST", 2*3600))
	if got := LogStreamName("$LATEST", "hello-5d8f-x2x7q", at); got != "2024/05/01/[$LATEST]hello-5d8f-x2x7q" {
		t.Errorf("got %q", got)
	}
}

func TestAnnounceConfig(t *testing.T) {
	base := map[string]string{
		"LAMBDALET_ANNOUNCE_URL": "http://lambdalet-activator-peers.lambdalet-system.svc:8081/v1/announce",
		"LAMBDALET_POD_IP":       "10.244.0.7",
		"LAMBDALET_POD_NAME":     "fn-hello-5d8f7c9b4-x2x7q",
	}
	c, err := ConfigFromEnv(base, noFile)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Announce
	if a == nil || a.URL.String() != base["LAMBDALET_ANNOUNCE_URL"] || a.PodIP != "10.244.0.7" ||
		a.PodName != "fn-hello-5d8f7c9b4-x2x7q" || a.TokenFile != "/var/run/lambdalet/announce/token" {
		t.Errorf("got %+v", a)
	}

	c, err = ConfigFromEnv(map[string]string{"LAMBDALET_ANNOUNCE_URL": base["LAMBDALET_ANNOUNCE_URL"],
		"LAMBDALET_POD_IP": "fd00::7", "LAMBDALET_POD_NAME": "p", "LAMBDALET_ANNOUNCE_TOKEN_FILE": "/t"}, noFile)
	if err != nil || c.Announce.TokenFile != "/t" || c.Announce.PodIP != "fd00::7" {
		t.Errorf("got %+v, %v", c.Announce, err)
	}

	// Without a URL the pod variables are not needed.
	if c, err := ConfigFromEnv(map[string]string{}, noFile); err != nil || c.Announce != nil {
		t.Errorf("no URL: %+v, %v", c.Announce, err)
	}

	cases := []struct {
		name, value, mention string
	}{
		{"LAMBDALET_ANNOUNCE_URL", "ftp://activators/", "LAMBDALET_ANNOUNCE_URL"},
		{"LAMBDALET_ANNOUNCE_URL", "http:///v1/announce", "LAMBDALET_ANNOUNCE_URL"},
		{"LAMBDALET_ANNOUNCE_URL", "http://user:pw@activators/", "LAMBDALET_ANNOUNCE_URL"},
		{"LAMBDALET_ANNOUNCE_URL", "://", "LAMBDALET_ANNOUNCE_URL"},
		{"LAMBDALET_POD_IP", "", "LAMBDALET_POD_IP"},
		{"LAMBDALET_POD_IP", "10.244.0", "LAMBDALET_POD_IP"},
		{"LAMBDALET_POD_NAME", "", "LAMBDALET_POD_NAME"},
	}
	for _, tc := range cases {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		env[tc.name] = tc.value
		_, err := ConfigFromEnv(env, noFile)
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s=%q: error %v, want one mentioning %q", tc.name, tc.value, err, tc.mention)
		}
	}
}
