// Configuration of the agent, read once from the environment the operator sets on the function
// pod, and the environment the agent builds for the language runtime processes it starts.

package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Defaults of the optional variables; the names and values are fixed by the operator's contract.
const (
	defaultVersion        = "$LATEST"
	defaultMemoryMiB      = 128
	defaultTimeoutSeconds = 3
	defaultConcurrency    = 1
	defaultPort           = 8080
	defaultRuntimeAPIPort = 9001
	defaultTaskRoot       = "/var/task"
	defaultRegion         = "us-east-1"
	runtimeDir            = "/var/runtime"
	pythonBootstrap       = "python3 /opt/lambdalet/python/bootstrap.py"
	nodeBootstrap         = "node /opt/lambdalet/nodejs/bootstrap.js"
	defaultPath           = "/usr/local/bin:/usr/bin/:/bin:/opt/bin"
	defaultLang           = "en_US.UTF-8"
)

// Config is the agent's frozen configuration.
type Config struct {
	FunctionName    string
	FunctionVersion string
	MemoryMiB       int
	Handler         string
	Runtime         string // python3.11, python3.12, nodejs20, nodejs22 or provided
	Namespace       string
	Timeout         time.Duration
	Concurrency     int // runtime processes, each taking one invocation at a time
	Port            int // invocations from the activator, on all interfaces
	RuntimeAPIPort  int // Runtime API of runtime i on 127.0.0.1:RuntimeAPIPort+i; 0 picks free ports
	TaskRoot        string
	Bootstrap       []string // the runtime command: program and arguments
	Region          string
	Code            *CodeSource     // where to fetch the code from; nil when it is in place
	Announce        *AnnounceConfig // where to announce the pod once ready; nil for nowhere
}

// FunctionARN is the ARN a runtime sees in Lambda-Runtime-Invoked-Function-Arn.
func (c Config) FunctionARN() string {
	return fmt.Sprintf("arn:aws:lambda:%s:000000000000:function:%s", c.Region, c.FunctionName)
}

// ConfigFromEnv builds the configuration from an environment mapping. exists reports whether a
// file exists; it decides the default bootstrap of a `provided` runtime.
func ConfigFromEnv(env map[string]string, exists func(string) bool) (Config, error) {
	get := func(name, def string) string {
		if v, ok := env[name]; ok && v != "" {
			return v
		}
		return def
	}
	c := Config{
		FunctionName:    get("AWS_LAMBDA_FUNCTION_NAME", "function"),
		FunctionVersion: get("AWS_LAMBDA_FUNCTION_VERSION", defaultVersion),
		Handler:         env["_HANDLER"],
		Runtime:         get("LAMBDALET_RUNTIME", "provided"),
		Namespace:       get("LAMBDALET_NAMESPACE", "default"),
		TaskRoot:        get("LAMBDA_TASK_ROOT", defaultTaskRoot),
		Region:          get("AWS_REGION", defaultRegion),
	}
	var err error
	ints := []struct {
		name        string
		def, lo, hi int
		into        *int
	}{
		{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE", defaultMemoryMiB, 1, 1 << 20, &c.MemoryMiB},
		{"LAMBDALET_CONCURRENCY", defaultConcurrency, 1, 1000, &c.Concurrency},
		{"LAMBDALET_PORT_NUMBER", defaultPort, 1, 65535, &c.Port},
		{"LAMBDALET_RUNTIME_API_PORT_NUMBER", defaultRuntimeAPIPort, 0, 65535, &c.RuntimeAPIPort},
	}
	for _, v := range ints {
		if *v.into, err = intVar(env, v.name, v.def, v.lo, v.hi); err != nil {
			return Config{}, err
		}
	}
	if c.RuntimeAPIPort != 0 && c.RuntimeAPIPort+c.Concurrency-1 > 65535 {
		return Config{}, fmt.Errorf("LAMBDALET_RUNTIME_API_PORT_NUMBER %d leaves no room for %d runtimes",
			c.RuntimeAPIPort, c.Concurrency)
	}
	seconds, err := strconv.ParseFloat(get("LAMBDALET_TIMEOUT_SECONDS", strconv.Itoa(defaultTimeoutSeconds)), 64)
	if err != nil || !(seconds > 0 && seconds <= 86400) {
		return Config{}, fmt.Errorf("LAMBDALET_TIMEOUT_SECONDS must be a positive number of seconds, not %q",
			env["LAMBDALET_TIMEOUT_SECONDS"])
	}
	c.Timeout = time.Duration(seconds * float64(time.Second))

	switch c.Runtime {
	case "python3.11", "python3.12", "nodejs20", "nodejs22", "provided":
	default:
		return Config{}, fmt.Errorf("LAMBDALET_RUNTIME %q is not one of python3.11, python3.12, "+
			"nodejs20, nodejs22, provided", c.Runtime)
	}
	c.Bootstrap = BootstrapCommand(env, c.Runtime, c.TaskRoot, exists)
	if len(c.Bootstrap) == 0 {
		return Config{}, fmt.Errorf("LAMBDALET_BOOTSTRAP is blank")
	}
	if c.Code, err = codeFromEnv(env); err != nil {
		return Config{}, err
	}
	if c.Announce, err = announceFromEnv(env); err != nil {
		return Config{}, err
	}
	return c, nil
}

// BootstrapCommand is the runtime command: LAMBDALET_BOOTSTRAP, else the runtime's own, which
// for `provided` is $LAMBDA_TASK_ROOT/bootstrap if exists finds it there, else
// /var/runtime/bootstrap. With code from a URL it is asked again once the code is unpacked.
func BootstrapCommand(env map[string]string, runtime, taskRoot string, exists func(string) bool) []string {
	command := env["LAMBDALET_BOOTSTRAP"]
	if command == "" {
		switch {
		case strings.HasPrefix(runtime, "python3."):
			command = pythonBootstrap
		case strings.HasPrefix(runtime, "nodejs"):
			command = nodeBootstrap
		case runtime == "provided":
			command = runtimeDir + "/bootstrap"
			if own := strings.TrimRight(taskRoot, "/") + "/bootstrap"; exists(own) {
				command = own
			}
		}
	}
	// A plain split: the command is set by the platform, never by users, and needs no quoting.
	return strings.Fields(command)
}

func intVar(env map[string]string, name string, def, lo, hi int) (int, error) {
	raw, ok := env[name]
	if !ok || raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil && strings.Contains(raw, "://") {
		// <SVC>_PORT=tcp://10.96.0.7:80 and its kin, which the kubelet injects for every Service
		// of the namespace unless the pod sets enableServiceLinks: false.
		return 0, fmt.Errorf("%s is %q: Kubernetes injected it for a Service of the pod's "+
			"namespace (a Docker link); set enableServiceLinks: false on the pod", name, raw)
	}
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s must be an integer from %d to %d, not %q", name, lo, hi, raw)
	}
	return n, nil
}

// executionEnv is AWS_EXECUTION_ENV as Lambda spells it; Lambda sets none for OS-only runtimes.
func executionEnv(runtime string) string {
	switch {
	case runtime == "provided":
		return ""
	case strings.HasPrefix(runtime, "nodejs"):
		return "AWS_Lambda_" + runtime + ".x"
	default:
		return "AWS_Lambda_" + runtime
	}
}

// RuntimeEnv is the environment of a runtime process: the pod's own (the user's variables) without
// the agent's LAMBDALET_* settings, plus what Lambda sets. apiAddr is host:port of its Runtime API;
// logStream is AWS_LAMBDA_LOG_STREAM_NAME.
func RuntimeEnv(c Config, inherited map[string]string, apiAddr, logStream string) []string {
	env := map[string]string{}
	for k, v := range inherited {
		if !strings.HasPrefix(k, "LAMBDALET_") {
			env[k] = v
		}
	}
	if env["PATH"] == "" {
		env["PATH"] = defaultPath
	}
	if env["LANG"] == "" {
		env["LANG"] = defaultLang
	}
	set := map[string]string{
		"AWS_LAMBDA_RUNTIME_API":          apiAddr,
		"_HANDLER":                        c.Handler,
		"LAMBDA_TASK_ROOT":                c.TaskRoot,
		"LAMBDA_RUNTIME_DIR":              runtimeDir,
		"AWS_LAMBDA_FUNCTION_NAME":        c.FunctionName,
		"AWS_LAMBDA_FUNCTION_VERSION":     c.FunctionVersion,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(c.MemoryMiB),
		"AWS_REGION":                      c.Region,
		"AWS_DEFAULT_REGION":              c.Region,
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + c.FunctionName,
		"AWS_LAMBDA_LOG_STREAM_NAME":      logStream,
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"TZ":                              ":UTC",
	}
	for k, v := range set {
		env[k] = v
	}
	if e := executionEnv(c.Runtime); e != "" {
		env["AWS_EXECUTION_ENV"] = e
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// LogStreamName is AWS_LAMBDA_LOG_STREAM_NAME: the UTC date, the version and an instance id
// (the pod's hostname), e.g. "2024/05/01/[$LATEST]hello-5d8f7c9b4-x2x7q".
func LogStreamName(version, instance string, now time.Time) string {
	return now.UTC().Format("2006/01/02") + "/[" + version + "]" + instance
}

// envMap turns os.Environ() into a mapping (the last of repeated names wins, as getenv does not
// promise, but as every shell does).
func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}
