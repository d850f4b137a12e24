package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCodeFromEnv(t *testing.T) {
	sha := strings.Repeat("Ab", 32)
	cases := []struct {
		env  map[string]string
		want *CodeSource
	}{
		{map[string]string{}, nil},
		{map[string]string{"LAMBDALET_CODE_SHA256": sha}, nil},
		{
			map[string]string{"LAMBDALET_CODE_URL": "https://example.com/f.zip"},
			&CodeSource{URL: "https://example.com/f.zip", MaxFiles: 50_000},
		},
		{
			map[string]string{"LAMBDALET_CODE_URL": "http://10.0.0.1:8000/f.zip", "LAMBDALET_CODE_SHA256": " " + sha + " ",
				"LAMBDALET_CODE_MAX_FILES": "7"},
			&CodeSource{URL: "http://10.0.0.1:8000/f.zip", SHA256: strings.ToLower(sha), MaxFiles: 7},
		},
		{
			map[string]string{"LAMBDALET_CODE_S3_BUCKET": "code", "LAMBDALET_CODE_S3_KEY": "f.zip"},
			&CodeSource{S3: &S3Object{Bucket: "code", Key: "f.zip", Region: "us-east-1"}, MaxFiles: 50_000},
		},
	}
	for _, tc := range cases {
		got, err := codeFromEnv(tc.env)
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: %+v, want %+v", tc.env, got, tc.want)
		}
	}
}

func TestCodeFromEnvErrors(t *testing.T) {
	cases := []struct {
		env     map[string]string
		mention string
	}{
		{map[string]string{"LAMBDALET_CODE_URL": "ftp://example.com/f.zip"}, "http:// or https://"},
		{map[string]string{"LAMBDALET_CODE_URL": "example.com/f.zip"}, "http:// or https://"},
		{map[string]string{"LAMBDALET_CODE_URL": "https:///f.zip"}, "http:// or https://"},
		{map[string]string{"LAMBDALET_CODE_URL": "ftp://h/f.zip?sig=secret"}, "ftp://h/f.zip?…"},
		{map[string]string{"LAMBDALET_CODE_URL": "https://h/f.zip", "LAMBDALET_CODE_SHA256": "abc"}, "64 hex digits"},
		{map[string]string{"LAMBDALET_CODE_URL": "https://h/f.zip", "LAMBDALET_CODE_SHA256": strings.Repeat("g", 64)}, "64 hex digits"},
		{map[string]string{"LAMBDALET_CODE_URL": "https://h/f.zip", "LAMBDALET_CODE_MAX_FILES": "0"}, "LAMBDALET_CODE_MAX_FILES"},
		{map[string]string{"LAMBDALET_CODE_URL": "https://h/f.zip", "LAMBDALET_CODE_S3_BUCKET": "b",
			"LAMBDALET_CODE_S3_KEY": "k"}, "both set"},
		{map[string]string{"LAMBDALET_CODE_S3_BUCKET": "b"}, "LAMBDALET_CODE_S3_KEY"},
		{map[string]string{"LAMBDALET_CODE_S3_BUCKET": "b/c", "LAMBDALET_CODE_S3_KEY": "k"}, "not a bucket name"},
		{map[string]string{"LAMBDALET_CODE_S3_BUCKET": "b", "LAMBDALET_CODE_S3_KEY": "k",
			"LAMBDALET_CODE_S3_ACCESS_KEY_ID": "AKID"}, "must be set together"},
		{map[string]string{"LAMBDALET_CODE_S3_BUCKET": "b", "LAMBDALET_CODE_S3_KEY": "k",
			"LAMBDALET_CODE_S3_ENDPOINT": "minio:9000"}, "http:// or https://"},
		{map[string]string{"LAMBDALET_CODE_S3_BUCKET": "b", "LAMBDALET_CODE_S3_KEY": "k",
			"LAMBDALET_CODE_S3_ENDPOINT": "ftp://u:secret@minio:9000"}, "ftp://minio:9000"},
	}
	for _, tc := range cases {
		_, err := codeFromEnv(tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%v: error %v, want one mentioning %q", tc.env, err, tc.mention)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%v: the error shows the query: %v", tc.env, err)
		}
	}
}

func TestConfigCarriesTheCodeSource(t *testing.T) {
	c, err := ConfigFromEnv(map[string]string{"LAMBDALET_RUNTIME": "provided", "LAMBDALET_CODE_URL": "https://h/f.zip"}, noFile)
	if err != nil {
		t.Fatal(err)
	}
	if c.Code == nil || c.Code.URL != "https://h/f.zip" {
		t.Errorf("code %+v", c.Code)
	}
	own := func(path string) bool { return path == "/var/task/bootstrap" }
	if got := strings.Join(BootstrapCommand(map[string]string{}, "provided", "/var/task", own), " "); got != "/var/task/bootstrap" {
		t.Errorf("bootstrap once unpacked: %q", got)
	}
}

func TestRedactURL(t *testing.T) {
	cases := map[string]string{
		"https://example.com/code/f.zip":                                 "https://example.com/code/f.zip",
		"https://user:pw@example.com/f.zip":                              "https://example.com/f.zip",
		"https://b.s3.amazonaws.com/f.zip?X-Amz-Signature=abc&X-Amz-D=1": "https://b.s3.amazonaws.com/f.zip?…",
		"http://h:8080/f.zip#part":                                       "http://h:8080/f.zip",
		"http://h/%zz":                                                   "(a malformed URL)",
	}
	for in, want := range cases {
		if got := redactURL(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func TestTransientStatus(t *testing.T) {
	for status, want := range map[int]bool{
		200: false, 403: false, 404: false, 410: false,
		408: true, 429: true, 500: true, 502: true, 503: true, 504: true,
	} {
		if got := transientStatus(status); got != want {
			t.Errorf("%d: %v, want %v", status, got, want)
		}
	}
}

func TestRetryPause(t *testing.T) {
	// Attempts that fail at once start at 0, 1, 3, 7, 15 and 31 s; a seventh would start at 63 s.
	cases := []struct {
		n       int
		elapsed time.Duration
		pause   time.Duration
		again   bool
	}{
		{1, 0, time.Second, true},
		{2, time.Second, 2 * time.Second, true},
		{5, 15 * time.Second, 16 * time.Second, true},
		{6, 31 * time.Second, 32 * time.Second, false},
		{1, 59 * time.Second, time.Second, true},
		{1, 59*time.Second + 1, time.Second, false},
		{30, 0, 60 * time.Second, true},
	}
	for _, tc := range cases {
		pause, again := retryPause(tc.n, tc.elapsed)
		if pause != tc.pause || again != tc.again {
			t.Errorf("attempt %d after %v: %v %v, want %v %v", tc.n, tc.elapsed, pause, again, tc.pause, tc.again)
		}
	}
}

func TestBackoffBetweenRounds(t *testing.T) {
	cases := []struct {
		round int
		want  time.Duration
	}{
		{0, 0},
		{1, time.Second},
		{2, 2 * time.Second},
		{9, 256 * time.Second},
		{10, 5 * time.Minute},
		{1 << 30, 5 * time.Minute},
	}
	for _, tc := range cases {
		if got := backoff(roundPauseBase, roundPauseMax, tc.round); got != tc.want {
			t.Errorf("round %d: %v, want %v", tc.round, got, tc.want)
		}
	}
}
