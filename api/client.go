package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultEndpoint is the endpoint of the local daemon's unix socket.
const DefaultEndpoint = "unix:///run/fxd/fxd.sock"

// maxErrorBody bounds how much of an error answer the client reads.
const maxErrorBody = 64 << 10

// ClientOptions are the credentials and limits of a Client. The zero value
// authenticates by the caller's UID on a unix socket.
type ClientOptions struct {
	// Token is sent as "Authorization: Bearer <token>" when not empty.
	Token string
	// CAFile is a PEM bundle that verifies the server's certificate; empty
	// uses the system roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key, sent
	// for mutual TLS; both or neither.
	CertFile, KeyFile string
	// TLS, when set, is the whole TLS config of an https endpoint (a
	// federation peer link) instead of CAFile, CertFile and KeyFile.
	TLS *tls.Config
	// MaxAnswer bounds the bytes of a JSON answer the client decodes (a
	// peer it need not trust with its memory); 0 bounds nothing.
	MaxAnswer int64
	// Timeout bounds each request, on top of any wait or task timeout the
	// request itself asks for; 0 means only ctx bounds it.
	Timeout time.Duration
}

// Client calls one fxd endpoint over HTTP/1.1 with keep-alive. It is safe
// for concurrent use; many goroutines may share one Client.
type Client struct {
	endpoint  string // as given, for messages
	base      string // "http://fxd" or "https://host:port"
	unix      bool
	token     string
	timeout   time.Duration
	maxAnswer int64
	http      *http.Client
}

// NewClient returns a client of endpoint: "unix:///path/fxd.sock", a plain
// absolute socket path, or "https://host:port".
func NewClient(endpoint string, o ClientOptions) (*Client, error) {
	c := &Client{endpoint: endpoint, token: o.Token, timeout: o.Timeout, maxAnswer: o.MaxAnswer}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DialContext:           dialer.DialContext,
	}
	switch {
	case strings.HasPrefix(endpoint, "unix://") || strings.HasPrefix(endpoint, "/"):
		path := strings.TrimPrefix(endpoint, "unix://")
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("endpoint %q: want an absolute socket path, like unix:///run/fxd/fxd.sock: %w", endpoint, ErrInvalid)
		}
		if o.CAFile != "" || o.CertFile != "" || o.KeyFile != "" {
			return nil, fmt.Errorf("endpoint %q: TLS files are for https endpoints; drop ca, cert and key for a unix socket: %w", endpoint, ErrInvalid)
		}
		c.base, c.unix = "http://fxd", true
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", path)
		}
	case strings.HasPrefix(endpoint, "https://"):
		u, err := url.Parse(endpoint)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, fmt.Errorf("endpoint %q: want https://host:port with no path: %w", endpoint, ErrInvalid)
		}
		cfg := o.TLS
		if cfg == nil {
			var err error
			if cfg, err = tlsConfig(o); err != nil {
				return nil, err
			}
		}
		c.base = "https://" + u.Host
		tr.TLSClientConfig = cfg
	default:
		return nil, fmt.Errorf("endpoint %q: want unix:///path/fxd.sock or https://host:port: %w", endpoint, ErrInvalid)
	}
	c.http = &http.Client{Transport: tr}
	return c, nil
}

func tlsConfig(o ClientOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it; give the site's CA bundle: %w", o.CAFile, ErrInvalid)
		}
		cfg.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, fmt.Errorf("client certificate: give both a cert file and a key file, or neither: %w", ErrInvalid)
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s: %v: %w", o.CertFile, err, ErrInvalid)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// CloseIdleConnections closes the kept-alive connections no request uses
// now; the next requests dial again.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Endpoint returns the endpoint the client calls, as given to NewClient.
func (c *Client) Endpoint() string { return c.endpoint }

// Site returns the site and who the caller is there.
func (c *Client) Site(ctx context.Context) (SiteInfo, error) {
	var s SiteInfo
	err := c.doJSON(ctx, http.MethodGet, "/site", nil, &s, 0)
	return s, err
}

// RegisterFunction registers spec, or re-registers it with a new version.
func (c *Client) RegisterFunction(ctx context.Context, spec FunctionSpec) (Function, error) {
	var f Function
	err := c.doJSON(ctx, http.MethodPost, "/functions", spec, &f, 0)
	return f, err
}

// Functions lists the caller's own functions, then those shared with it.
func (c *Client) Functions(ctx context.Context) ([]Function, error) {
	var r FunctionsResponse
	err := c.doJSON(ctx, http.MethodGet, "/functions", nil, &r, 0)
	return r.Functions, err
}

// Function returns one function by "name" or "owner/name".
func (c *Client) Function(ctx context.Context, name string) (Function, error) {
	var f Function
	err := c.doJSON(ctx, http.MethodGet, "/functions/"+url.PathEscape(name), nil, &f, 0)
	return f, err
}

// DeleteFunction deletes one of the caller's own functions.
func (c *Client) DeleteFunction(ctx context.Context, name string) error {
	return c.doJSON(ctx, http.MethodDelete, "/functions/"+url.PathEscape(name), nil, nil, 0)
}

// Submit queues tasks durably and returns their IDs in request order.
func (c *Client) Submit(ctx context.Context, tasks []TaskSpec) ([]string, error) {
	var r SubmitResponse
	if err := c.doJSON(ctx, http.MethodPost, "/tasks", SubmitRequest{Tasks: tasks}, &r, 0); err != nil {
		return nil, err
	}
	if len(r.IDs) != len(tasks) {
		return r.IDs, fmt.Errorf("submit %d tasks: the endpoint answered %d ids", len(tasks), len(r.IDs))
	}
	return r.IDs, nil
}

// Task returns one task with its output. A wait above zero long-polls until
// the task is final or wait has passed.
func (c *Client) Task(ctx context.Context, id string, wait time.Duration) (Task, error) {
	p := "/tasks/" + url.PathEscape(id)
	if wait > 0 {
		p += "?wait=" + url.QueryEscape(wait.String())
	}
	var t Task
	err := c.doJSON(ctx, http.MethodGet, p, nil, &t, wait)
	return t, err
}

// Tasks returns many tasks in request order, waiting up to r.Wait for all
// of them to be final.
func (c *Client) Tasks(ctx context.Context, r TasksRequest) ([]Task, error) {
	var resp TasksResponse
	if err := c.doJSON(ctx, http.MethodPost, "/tasks/query", r, &resp, r.Wait.D()); err != nil {
		return nil, err
	}
	if len(resp.Tasks) != len(r.IDs) {
		return resp.Tasks, fmt.Errorf("query %d tasks: the endpoint answered %d", len(r.IDs), len(resp.Tasks))
	}
	return resp.Tasks, nil
}

// Output returns the raw output of a final task.
func (c *Client) Output(ctx context.Context, id string) ([]byte, error) {
	resp, cancel, err := c.do(ctx, http.MethodGet, "/tasks/"+url.PathEscape(id)+"/output", "", nil, 0)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, c.transportError(http.MethodGet, "/tasks/"+id+"/output", err)
	}
	return b, nil
}

// Cancel cancels a task and returns it; a task that had already ended is
// an ErrConflict.
func (c *Client) Cancel(ctx context.Context, id string) (Task, error) {
	var t Task
	err := c.doJSON(ctx, http.MethodPost, "/tasks/"+url.PathEscape(id)+"/cancel", nil, &t, 0)
	return t, err
}

// Run runs one task synchronously and returns it once it has ended, in
// whatever final state. spec.Function may be left empty.
func (c *Client) Run(ctx context.Context, name string, spec TaskSpec) (Task, error) {
	var t Task
	err := c.doJSON(ctx, http.MethodPost, "/functions/"+url.PathEscape(name)+"/run", spec, &t, spec.Timeout.D())
	return t, err
}

// RunRaw runs one task synchronously with raw input bytes (sent as
// application/octet-stream); a timeout above zero overrides the function's.
func (c *Client) RunRaw(ctx context.Context, name string, input []byte, timeout time.Duration) (Task, error) {
	p := "/functions/" + url.PathEscape(name) + "/run"
	if timeout > 0 {
		p += "?timeout=" + url.QueryEscape(timeout.String())
	}
	resp, cancel, err := c.do(ctx, http.MethodPost, p, "application/octet-stream", input, timeout)
	if err != nil {
		return Task{}, err
	}
	defer cancel()
	var t Task
	return t, c.decode(resp, http.MethodPost, p, &t)
}

// doJSON sends in (if not nil) as JSON and decodes the answer into out (if
// not nil). extra lengthens the client timeout for requests that wait.
func (c *Client) doJSON(ctx context.Context, method, path string, in, out any, extra time.Duration) error {
	var body []byte
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body, ct = b, "application/json"
	}
	resp, cancel, err := c.do(ctx, method, path, ct, body, extra)
	if err != nil {
		return err
	}
	defer cancel()
	return c.decode(resp, method, path, out)
}

// do sends one request and returns a 2xx answer; any other status comes
// back as a *RemoteError. The caller closes the body, then calls cancel.
// extra lengthens the client's timeout.
func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte, extra time.Duration) (*http.Response, context.CancelFunc, error) {
	cancel := context.CancelFunc(func() {})
	if c.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.timeout+extra)
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	resp, err := c.send(ctx, method, path, contentType, r, int64(len(body)))
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return resp, cancel, nil
}

// doStream is do for a body of size bytes streamed from r (nil: none), or
// an answer streamed back, bounded by ctx alone: moving data takes as
// long as it takes.
func (c *Client) doStream(ctx context.Context, method, path, contentType string, r io.Reader, size int64) (*http.Response, context.CancelFunc, error) {
	ctx, cancel := context.WithCancel(ctx)
	resp, err := c.send(ctx, method, path, contentType, r, size)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return resp, cancel, nil
}

// send sends one request with the body r of size bytes (r nil: none).
func (c *Client) send(ctx context.Context, method, path, contentType string, r io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/"+Version+path, r)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %v: %w", method, path, err, ErrInvalid)
	}
	if r != nil {
		req.ContentLength = size
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, remoteError(resp)
	}
	return resp, nil
}

// decode reads a 2xx answer's JSON into out and closes the body, reading
// it to the end so the connection is reused.
func (c *Client) decode(resp *http.Response, method, path string, out any) error {
	defer resp.Body.Close()
	defer io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	if out == nil {
		return nil
	}
	var body io.Reader = resp.Body
	if c.maxAnswer > 0 {
		body = io.LimitReader(resp.Body, c.maxAnswer)
	}
	if err := json.NewDecoder(body).Decode(out); err != nil {
		if c.maxAnswer > 0 && errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("answer to %s %s from %s: longer than %d bytes, or cut short: %w", method, path, c.endpoint, c.maxAnswer, ErrTooLarge)
		}
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		if errors.As(err, &syn) || errors.As(err, &typ) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("decode answer to %s %s: %v; is %s an fxd endpoint of API %s?", method, path, err, c.endpoint, Version)
		}
		return c.transportError(method, path, err)
	}
	return nil
}

// transportError says which endpoint could not be reached and how to check.
func (c *Client) transportError(method, path string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s on %s: %w", method, path, c.endpoint, err)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		hint := "is fxd running? (systemctl status fxd)"
		if !c.unix {
			hint = "check the endpoint address and that fxd is running there"
		}
		return fmt.Errorf("connect to %s: %w; %s", c.endpoint, op, hint)
	}
	var cert *tls.CertificateVerificationError
	if errors.As(err, &cert) {
		return fmt.Errorf("connect to %s: %w; give the site's CA bundle with --ca or FX_CA", c.endpoint, cert)
	}
	return fmt.Errorf("%s %s on %s: %w", method, path, c.endpoint, err)
}

// remoteError turns a non-2xx answer into a *RemoteError, from its
// ErrorBody or, when the body is not one, from the status and text.
func remoteError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var eb ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
		msg := eb.Error.Message
		if msg == "" {
			msg = eb.Error.Code
		}
		return &RemoteError{Status: resp.StatusCode, Code: eb.Error.Code, Message: msg}
	}
	text := strings.TrimSpace(string(b))
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	msg := resp.Status
	if text != "" {
		msg += ": " + text
	}
	return &RemoteError{Status: resp.StatusCode, Code: codeOfStatus(resp.StatusCode), Message: msg}
}

// codeOfStatus maps an HTTP status to an error code, for answers that carry
// no ErrorBody (a proxy's error page, say).
func codeOfStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeInvalid
	case http.StatusUnauthorized:
		return CodeUnauthenticated
	case http.StatusForbidden:
		return CodeDenied
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeConflict
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return CodeUnavailable
	}
	return CodeInternal
}
