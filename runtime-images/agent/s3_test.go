package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestS3FromEnv(t *testing.T) {
	got, err := s3FromEnv(map[string]string{
		"LAMBDALET_CODE_S3_ENDPOINT":          "http://minio.storage:9000/",
		"LAMBDALET_CODE_S3_BUCKET":            "code",
		"LAMBDALET_CODE_S3_KEY":               "/fn/v1.zip",
		"AWS_REGION":                          "eu-west-1",
		"LAMBDALET_CODE_S3_ACCESS_KEY_ID":     "AKID",
		"LAMBDALET_CODE_S3_SECRET_ACCESS_KEY": "SECRET",
		"LAMBDALET_CODE_S3_SESSION_TOKEN":     "TOKEN",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := S3Object{Endpoint: "http://minio.storage:9000", Bucket: "code", Key: "fn/v1.zip", Region: "eu-west-1",
		Credentials: aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "SECRET", SessionToken: "TOKEN"}}
	if *got != want {
		t.Errorf("%+v, want %+v", *got, want)
	}
	if got.String() != "s3://code/fn/v1.zip at http://minio.storage:9000" {
		t.Errorf("shown as %q", got.String())
	}
	own, _ := s3FromEnv(map[string]string{"LAMBDALET_CODE_S3_BUCKET": "b", "LAMBDALET_CODE_S3_KEY": "k",
		"LAMBDALET_CODE_S3_REGION": "ap-south-1", "AWS_REGION": "eu-west-1"})
	if own.Region != "ap-south-1" {
		t.Errorf("region %q: the code's own region comes first", own.Region)
	}
}

func TestS3URL(t *testing.T) {
	cases := []struct {
		object S3Object
		want   string
	}{
		{S3Object{Endpoint: "http://127.0.0.1:9000", Bucket: "code", Key: "fn.zip"}, "http://127.0.0.1:9000/code/fn.zip"},
		{S3Object{Endpoint: "https://s3.example/base", Bucket: "code", Key: "a/b c+d=é.zip"},
			"https://s3.example/base/code/a/b%20c%2Bd%3D%C3%A9.zip"},
		{S3Object{Bucket: "code", Key: "fn.zip", Region: "eu-west-1"}, "https://code.s3.eu-west-1.amazonaws.com/fn.zip"},
		{S3Object{Bucket: "my.code", Key: "fn.zip", Region: "us-east-1"}, "https://s3.us-east-1.amazonaws.com/my.code/fn.zip"},
	}
	for _, tc := range cases {
		if got := tc.object.URL().String(); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.object, got, tc.want)
		}
	}
}

func TestAWSEscape(t *testing.T) {
	if got := awsEscape("a-z_0.9~/ !*'()&$@=;:+,?%"); got != "a-z_0.9~/%20%21%2A%27%28%29%26%24%40%3D%3B%3A%2B%2C%3F%25" {
		t.Errorf("%s", got)
	}
}

func TestS3RequestIsSignedOnlyWithCredentials(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	anonymous := S3Object{Endpoint: "http://127.0.0.1:9000", Bucket: "code", Key: "fn.zip", Region: "us-east-1"}
	req, err := anonymous.newRequest(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if req.Header.Get("Authorization") != "" || req.Method != "GET" {
		t.Errorf("anonymous request: %s %v", req.Method, req.Header)
	}

	signed := anonymous
	signed.Credentials = aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "SECRET", SessionToken: "TOKEN"}
	req, err = signed.newRequest(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	auth := req.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/s3/aws4_request, SignedHeaders=") {
		t.Errorf("Authorization %q", auth)
	}
	for header, want := range map[string]string{
		"X-Amz-Date": "20261122T120000Z", "X-Amz-Content-Sha256": emptyPayloadSHA256, "X-Amz-Security-Token": "TOKEN"} {
		if got := req.Header.Get(header); got != want {
			t.Errorf("%s: %q, want %q", header, got, want)
		}
	}
	if strings.Contains(auth, "SECRET") {
		t.Errorf("the secret key is in the request: %q", auth)
	}
}

func TestS3ErrorDetail(t *testing.T) {
	cases := map[string]string{
		`<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>fn.zip</Key></Error>`: ": NoSuchKey: The specified key does not exist.",
		`<Error><Code>AccessDenied</Code></Error>`: ": AccessDenied",
		`not xml`:       "",
		`<html></html>`: "",
		"":              "",
	}
	for body, want := range cases {
		if got := s3ErrorDetail(strings.NewReader(body)); got != want {
			t.Errorf("%q: %q, want %q", body, got, want)
		}
	}
}
