// Code in an S3-compatible bucket (a Function's spec.code.s3): the object named by
// LAMBDALET_CODE_S3_BUCKET and LAMBDALET_CODE_S3_KEY, at LAMBDALET_CODE_S3_ENDPOINT (MinIO and
// other S3-compatible servers, path-style addressing) or at AWS S3 when that is unset
// (virtual-hosted addressing in the region of LAMBDALET_CODE_S3_REGION, else AWS_REGION).
// With LAMBDALET_CODE_S3_ACCESS_KEY_ID and LAMBDALET_CODE_S3_SECRET_ACCESS_KEY (and
// LAMBDALET_CODE_S3_SESSION_TOKEN for temporary credentials) each GET is signed with AWS
// Signature Version 4, by the AWS SDK's signer, anew for every attempt; without them the GET is
// anonymous (a public bucket). The download itself, its limits and retries are code.go's.

package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// emptyPayloadSHA256 is the SHA-256 of an empty body, the payload hash of a signed GET.
const emptyPayloadSHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// maxErrorBody is how much of an S3 error response is read for its code and message.
const maxErrorBody = 8 << 10

// S3Object is where in S3 the code archive is, and how to ask for it.
type S3Object struct {
	Endpoint    string // "" for AWS S3; else the base URL of an S3-compatible server
	Bucket      string
	Key         string
	Region      string
	Credentials aws.Credentials // no access key: anonymous requests
}

// s3FromEnv reads the S3 location; nil when LAMBDALET_CODE_S3_BUCKET is unset.
func s3FromEnv(env map[string]string) (*S3Object, error) {
	o := &S3Object{
		Endpoint: strings.TrimRight(env["LAMBDALET_CODE_S3_ENDPOINT"], "/"),
		Bucket:   env["LAMBDALET_CODE_S3_BUCKET"],
		Key:      strings.TrimPrefix(env["LAMBDALET_CODE_S3_KEY"], "/"),
		Region:   firstSet(env["LAMBDALET_CODE_S3_REGION"], env["AWS_REGION"], defaultRegion),
		Credentials: aws.Credentials{
			AccessKeyID:     env["LAMBDALET_CODE_S3_ACCESS_KEY_ID"],
			SecretAccessKey: env["LAMBDALET_CODE_S3_SECRET_ACCESS_KEY"],
			SessionToken:    env["LAMBDALET_CODE_S3_SESSION_TOKEN"],
		},
	}
	if o.Bucket == "" {
		return nil, nil
	}
	switch {
	case o.Key == "":
		return nil, fmt.Errorf("LAMBDALET_CODE_S3_KEY must name the archive in bucket %q", o.Bucket)
	case strings.ContainsAny(o.Bucket, "/?#") || strings.TrimSpace(o.Bucket) != o.Bucket:
		return nil, fmt.Errorf("LAMBDALET_CODE_S3_BUCKET %q is not a bucket name", o.Bucket)
	case (o.Credentials.AccessKeyID == "") != (o.Credentials.SecretAccessKey == ""):
		return nil, fmt.Errorf("LAMBDALET_CODE_S3_ACCESS_KEY_ID and LAMBDALET_CODE_S3_SECRET_ACCESS_KEY " +
			"must be set together (the Secret needs both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("LAMBDALET_CODE_S3_ENDPOINT must be an http:// or https:// URL, not %q",
				redactURL(o.Endpoint))
		}
	}
	return o, nil
}

func firstSet(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// String names the object in logs and errors: s3://bucket/key, and the endpoint when not AWS.
func (o *S3Object) String() string {
	if o.Endpoint != "" {
		return fmt.Sprintf("s3://%s/%s at %s", o.Bucket, o.Key, redactURL(o.Endpoint))
	}
	return fmt.Sprintf("s3://%s/%s", o.Bucket, o.Key)
}

// URL is the object's address: path-style under an endpoint of its own; on AWS virtual-hosted
// (https://bucket.s3.region.amazonaws.com/key), or path-style for a bucket name with dots, which
// a wildcard certificate does not cover.
func (o *S3Object) URL() *url.URL {
	var u *url.URL
	var prefix string
	switch {
	case o.Endpoint != "":
		u, _ = url.Parse(o.Endpoint) // checked by s3FromEnv
		prefix = strings.TrimRight(u.Path, "/") + "/" + o.Bucket
	case strings.Contains(o.Bucket, "."):
		u = &url.URL{Scheme: "https", Host: "s3." + o.Region + ".amazonaws.com"}
		prefix = "/" + o.Bucket
	default:
		u = &url.URL{Scheme: "https", Host: o.Bucket + ".s3." + o.Region + ".amazonaws.com"}
	}
	u.Path = prefix + "/" + o.Key
	u.RawPath = awsEscape(prefix) + "/" + awsEscape(o.Key)
	return u
}

// awsEscape percent-encodes a path as SigV4 canonicalises an S3 object key: every byte but the
// unreserved ones (A-Z a-z 0-9 - . _ ~) and '/'. The request line carries the same form, so the
// server sees the path that was signed.
func awsEscape(path string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// newRequest is a GET of the object, signed at now when there are credentials.
func (o *S3Object) newRequest(ctx context.Context, now time.Time) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL().String(), nil)
	if err != nil {
		return nil, err
	}
	if o.Credentials.AccessKeyID == "" {
		return req, nil
	}
	req.Header.Set("X-Amz-Content-Sha256", emptyPayloadSHA256)
	signer := v4.NewSigner(func(opts *v4.SignerOptions) { opts.DisableURIPathEscaping = true })
	if err := signer.SignHTTP(ctx, o.Credentials, req, emptyPayloadSHA256, "s3", o.Region, now); err != nil {
		return nil, err
	}
	return req, nil
}

// s3Error is the body of an S3 error response.
type s3Error struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// s3ErrorDetail is ": Code: Message" from an S3 error response's body, or "" when it has none.
func s3ErrorDetail(body io.Reader) string {
	var e s3Error
	if err := xml.NewDecoder(io.LimitReader(body, maxErrorBody)).Decode(&e); err != nil || e.Code == "" {
		return ""
	}
	if e.Message == "" {
		return ": " + e.Code
	}
	return ": " + e.Code + ": " + e.Message
}
