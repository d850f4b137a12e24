// Code delivered as a zip archive at a URL (a Function's spec.code.url) or in an S3-compatible
// bucket (spec.code.s3, see s3.go). Before it starts any runtime, the agent downloads the archive
// named by LAMBDALET_CODE_URL or LAMBDALET_CODE_S3_*, checks its SHA-256
// against LAMBDALET_CODE_SHA256 when that is set, and unpacks it into the task root, an empty
// directory of the pod's own (unzip.go does the unpacking). Until that has worked the function
// cannot initialise: /healthz answers 503 with the reason and invocations get it as a 502
// (Runtime.CodeDownloadError), as with any init error. The agent keeps trying, so a URL that is
// fixed later recovers without a new pod:
//
//	round:  attempt ─transient failure─▶ 1 s ─▶ attempt ─▶ 2 s ─▶ …   no new attempt after 60 s
//	rounds: round ─failed─▶ init error ─▶ pause 1 s, 2 s, 4 s … at most 5 min ─▶ round ─▶ …
//
// A transient failure is one that another attempt may not see (no connection, a stalled body,
// HTTP 408, 429 or 5xx); anything else (HTTP 404, a certificate that does not verify, a digest
// mismatch, an unsafe archive, S3's AccessDenied or NoSuchKey) ends the round at once.

package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"
)

const codeErrorType = "Runtime.CodeDownloadError"

// Bounds of getting the code.
const (
	maxArchiveBytes = maxUnzippedBytes // an archive bigger than what it may unpack to is refused
	defaultMaxFiles = 50_000
	connectTimeout  = 10 * time.Second // TCP connect, and the TLS handshake
	headerTimeout   = 30 * time.Second // from the request sent to the response's headers
	stallTimeout    = 30 * time.Second // between two reads of the body that bring bytes
	attemptTimeout  = 10 * time.Minute // one download, whole: 250 MiB at 3.5 Mbit/s
	roundBudget     = 60 * time.Second // no attempt of a round starts later than this
	retryBase       = time.Second      // first pause between attempts of a round, doubling
	roundPauseBase  = time.Second      // first pause between rounds, doubling …
	roundPauseMax   = 5 * time.Minute  // … up to this
)

// CodeSource is where the function's code comes from when the image does not hold it.
type CodeSource struct {
	URL      string    // http(s) URL of the zip archive, or
	S3       *S3Object // the archive's object in S3
	SHA256   string    // the archive's expected digest in lower-case hex; "" skips the check
	MaxFiles int       // entries the archive may hold (LAMBDALET_CODE_MAX_FILES)
}

// String names the archive in logs and errors, without secrets.
func (c CodeSource) String() string {
	if c.S3 != nil {
		return c.S3.String()
	}
	return redactURL(c.URL)
}

// newRequest is one attempt's GET of the archive.
func (c CodeSource) newRequest(ctx context.Context) (*http.Request, error) {
	if c.S3 != nil {
		return c.S3.newRequest(ctx, time.Now())
	}
	return http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
}

// codeFromEnv reads the code source from the environment; nil when the image holds the code.
func codeFromEnv(env map[string]string) (*CodeSource, error) {
	s3, err := s3FromEnv(env)
	if err != nil {
		return nil, err
	}
	c := &CodeSource{URL: env["LAMBDALET_CODE_URL"], S3: s3}
	switch {
	case c.URL == "" && c.S3 == nil:
		return nil, nil
	case c.URL != "" && c.S3 != nil:
		return nil, fmt.Errorf("LAMBDALET_CODE_URL and LAMBDALET_CODE_S3_BUCKET are both set; the code comes from one")
	}
	if c.MaxFiles, err = intVar(env, "LAMBDALET_CODE_MAX_FILES", defaultMaxFiles, 1, 1_000_000); err != nil {
		return nil, err
	}
	c.SHA256 = strings.ToLower(strings.TrimSpace(env["LAMBDALET_CODE_SHA256"]))
	if b, err := hex.DecodeString(c.SHA256); c.SHA256 != "" && (err != nil || len(b) != sha256.Size) {
		return nil, fmt.Errorf("LAMBDALET_CODE_SHA256 must be 64 hex digits, not %q", env["LAMBDALET_CODE_SHA256"])
	}
	if c.S3 == nil {
		u, err := url.Parse(c.URL)
		if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("LAMBDALET_CODE_URL must be an http:// or https:// URL, not %q", redactURL(c.URL))
		}
	}
	return c, nil
}

// codeError is why getting the code failed; a transient one is worth another attempt at once.
type codeError struct {
	msg       string
	transient bool
}

func (e *codeError) Error() string { return e.msg }

func permanentf(format string, args ...any) error {
	return &codeError{msg: fmt.Sprintf(format, args...)}
}

func transientf(format string, args ...any) error {
	return &codeError{msg: fmt.Sprintf(format, args...), transient: true}
}

func isTransient(err error) bool {
	var ce *codeError
	return errors.As(err, &ce) && ce.transient
}

// transientStatus reports whether an HTTP status may go away by itself.
func transientStatus(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// retryPause is the pause before attempt n+1 of a round whose first attempt began elapsed ago,
// and whether there is to be one: 1 s, 2 s, 4 s, … while the attempt would start within
// roundBudget. Failing at once, attempts start at 0, 1, 3, 7, 15 and 31 s; the next would be at
// 63 s, so the round ends.
func retryPause(n int, elapsed time.Duration) (time.Duration, bool) {
	pause := backoff(retryBase, roundBudget, n)
	return pause, elapsed+pause <= roundBudget
}

// redactURL drops what may be a secret from a URL before it is logged or shown: the user
// information and the query (a presigned URL's signature), e.g.
// "https://u:p@host/code.zip?X-Amz-Signature=…" -> "https://host/code.zip?…".
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a malformed URL)"
	}
	query := u.RawQuery != "" || u.ForceQuery
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	if query {
		return u.String() + "?…"
	}
	return u.String()
}

// codeClient is the HTTP client of downloads: bounded connect and header waits; the body is
// watched by download itself.
func codeClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   connectTimeout,
		ResponseHeaderTimeout: headerTimeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1,
		IdleConnTimeout:       10 * time.Second,
	}}
}

// download writes the body of a GET of the archive to into, at most maxArchiveBytes of it, and
// returns its size.
func download(ctx context.Context, client *http.Client, src CodeSource, into io.Writer) (int64, error) {
	shown := src.String()
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := src.newRequest(ctx)
	if err != nil {
		return 0, permanentf("GET %s: %v", shown, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a secret
		}
		var badCert *tls.CertificateVerificationError
		if errors.As(err, &badCert) {
			return 0, permanentf("GET %s: %v", shown, err)
		}
		return 0, transientf("GET %s: %v", shown, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		detail := ""
		if src.S3 != nil {
			detail = s3ErrorDetail(resp.Body) // e.g. ": NoSuchKey: The specified key does not exist."
		}
		return 0, &codeError{msg: fmt.Sprintf("GET %s: HTTP %s%s", shown, resp.Status, detail),
			transient: transientStatus(resp.StatusCode)}
	}
	if resp.ContentLength > maxArchiveBytes {
		return 0, permanentf("GET %s: the archive is %d bytes, more than %d", shown, resp.ContentLength, maxArchiveBytes)
	}
	var stalled atomic.Bool
	watchdog := time.AfterFunc(stallTimeout, func() { stalled.Store(true); cancel() })
	defer watchdog.Stop()
	body := &progressReader{r: resp.Body, onBytes: func() { watchdog.Reset(stallTimeout) }}
	n, err := io.Copy(into, io.LimitReader(body, maxArchiveBytes+1))
	switch {
	case n > maxArchiveBytes:
		return 0, permanentf("GET %s: the archive is more than %d bytes", shown, maxArchiveBytes)
	case err != nil && stalled.Load():
		return 0, transientf("GET %s: no data for %v", shown, stallTimeout)
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return 0, transientf("GET %s: not done after %v", shown, attemptTimeout)
	case err != nil:
		return 0, transientf("GET %s: reading the body: %v", shown, err)
	}
	return n, nil
}

// progressReader calls onBytes after each read that brought bytes.
type progressReader struct {
	r       io.Reader
	onBytes func()
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.onBytes()
	}
	return n, err
}

// fetched describes code that is in place.
type fetched struct {
	archiveBytes int64
	sha256       string
	unzipped
}

// fetchCode is one round: download the archive (with retries), check it, unpack it into root.
// The archive goes to an unnamed temporary file (in $TMPDIR, the pod's /tmp), gone when closed.
func fetchCode(ctx context.Context, client *http.Client, src CodeSource, root string,
	logf func(string, ...any)) (fetched, error) {
	tmp, err := os.CreateTemp("", "lambdalet-code-*.zip")
	if err != nil {
		return fetched{}, permanentf("a temporary file for the archive: %v", err)
	}
	_ = os.Remove(tmp.Name())
	defer tmp.Close()

	began := time.Now()
	var size int64
	digest := sha256.New()
	for n := 1; ; n++ {
		digest.Reset()
		if err = tmp.Truncate(0); err == nil {
			_, err = tmp.Seek(0, io.SeekStart)
		}
		if err != nil {
			return fetched{}, permanentf("temporary file: %v", err)
		}
		size, err = download(ctx, client, src, io.MultiWriter(tmp, digest))
		if err == nil || ctx.Err() != nil || !isTransient(err) {
			break
		}
		pause, again := retryPause(n, time.Since(began))
		if !again {
			break
		}
		logf("code: %v; attempt %d in %v", err, n+1, pause)
		select {
		case <-ctx.Done():
			return fetched{}, ctx.Err()
		case <-time.After(pause):
		}
	}
	if err != nil {
		return fetched{}, err
	}
	got := hex.EncodeToString(digest.Sum(nil))
	if src.SHA256 != "" && got != src.SHA256 {
		return fetched{}, permanentf("sha256 mismatch: want %s, got %s", src.SHA256, got)
	}
	if err := clearDir(root); err != nil {
		return fetched{}, permanentf("emptying the task root: %v", err)
	}
	u, err := unpack(tmp, size, root, unzipLimits{maxFiles: src.MaxFiles, maxBytes: maxUnzippedBytes})
	if err != nil {
		_ = clearDir(root) // no half of an archive for the next round, or a runtime, to find
		return fetched{}, err
	}
	return fetched{archiveBytes: size, sha256: got, unzipped: u}, nil
}

// loadCode gets the code into the task root, round after round, until it is there (true) or ctx
// ends (false). Each failed round is an init error until the next round succeeds.
func (a *agent) loadCode(ctx context.Context) bool {
	src := a.cfg.Code
	client := codeClient()
	defer client.CloseIdleConnections()
	for round := 1; ; round++ {
		began := time.Now()
		f, err := fetchCode(ctx, client, *src, a.cfg.TaskRoot, a.log.agent)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			a.log.agent("code: %s (%d bytes, sha256 %s) unpacked into %s: %d entries, %d bytes, in %v",
				src, f.archiveBytes, f.sha256, a.cfg.TaskRoot, f.entries, f.bytes,
				time.Since(began).Round(time.Millisecond))
			a.mu.Lock()
			a.lastInitErr = nil // "starting" again, until a runtime is ready
			a.mu.Unlock()
			debug.FreeOSMemory() // the archive's directory is garbage now; the pod's memory is the function's
			return true
		}
		pause := backoff(roundPauseBase, roundPauseMax, round)
		a.codeFailed(err, time.Since(began), pause)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(pause):
		}
	}
}

// codeFailed makes err the init error; pause is when the next round begins (0: none will).
func (a *agent) codeFailed(err error, d, pause time.Duration) {
	if pause > 0 {
		a.log.agent("code: %v; next try in %v", err, pause)
	} else {
		a.log.agent("code: %v", err)
	}
	a.initFailed(initError{codeErrorType, errorDoc(codeErrorType, err.Error())}, d)
}
