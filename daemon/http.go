package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"fxd.dev/fxd/api"
)

// routes builds the endpoint's handler; docs/api.md describes every route.
func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", d.healthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}))
	v := "/" + api.Version
	mux.HandleFunc("GET "+v+"/site", d.authed(d.handleSite))
	mux.HandleFunc("POST "+v+"/functions", d.authed(d.handleRegister))
	mux.HandleFunc("GET "+v+"/functions", d.authed(d.handleFunctions))
	mux.HandleFunc("GET "+v+"/functions/{name}", d.authed(d.handleFunction))
	mux.HandleFunc("DELETE "+v+"/functions/{name}", d.authed(d.handleDeleteFunction))
	mux.HandleFunc("POST "+v+"/functions/{name}/run", d.authed(d.handleRun))
	mux.HandleFunc("POST "+v+"/tasks", d.authed(d.handleSubmit))
	mux.HandleFunc("POST "+v+"/tasks/query", d.authed(d.handleQuery))
	mux.HandleFunc("GET "+v+"/tasks/{id}", d.authed(d.handleTask))
	mux.HandleFunc("GET "+v+"/tasks/{id}/output", d.authed(d.handleOutput))
	mux.HandleFunc("POST "+v+"/tasks/{id}/cancel", d.authed(d.handleCancel))
	mux.HandleFunc("GET "+v+"/sites", d.authed(d.handleSites))
	mux.HandleFunc("GET "+v+"/runtimes", d.authed(d.handleRuntimes))
	mux.HandleFunc("POST "+v+"/runtimes", d.authed(d.handleAddRuntime))
	mux.HandleFunc("DELETE "+v+"/runtimes/{ref}", d.authed(d.handleDeleteRuntime))
	mux.HandleFunc("POST "+v+"/data", d.authed(d.handlePutData))
	mux.HandleFunc("POST "+v+"/data/stage", d.authed(d.handleStageData))
	mux.HandleFunc("GET "+v+"/data", d.authed(d.handleData))
	mux.HandleFunc("GET "+v+"/data/{digest}", d.authed(d.handleDataEntry))
	mux.HandleFunc("GET "+v+"/data/{digest}/content", d.authed(d.handleDataContent))
	mux.HandleFunc("DELETE "+v+"/data/{digest}", d.authed(d.handleDeleteData))
	mux.HandleFunc("GET "+v+"/admin/data", d.adminOnly(d.handleAdminData))
	mux.HandleFunc("GET "+v+"/admin/runtimes", d.adminOnly(d.handleAdminRuntimes))
	mux.HandleFunc("POST "+v+"/admin/runtimes", d.adminOnly(d.handleAdminAddRuntime))
	mux.HandleFunc("DELETE "+v+"/admin/runtimes/{ref}", d.adminOnly(d.handleAdminDeleteRuntime))
	mux.HandleFunc("POST "+v+"/admin/nodes/credentials", d.adminOnly(d.handleNodeCredential))
	mux.HandleFunc("DELETE "+v+"/admin/nodes/credentials/{block}", d.adminOnly(d.handleRevokeNodeCredentials))
	mux.HandleFunc("GET "+v+"/admin/nodes", d.adminOnly(d.handleNodes))
	mux.HandleFunc("GET "+v+"/admin/blocks", d.adminOnly(d.handleBlocks))
	mux.HandleFunc("POST "+api.LinkPath, d.counted(d.handleLink))
	mux.HandleFunc("GET "+api.NodeImagePath+"{digest}", d.counted(d.handleNodeImage))
	mux.HandleFunc("GET "+api.NodeDataPath+"{digest}", d.counted(d.handleNodeData))
	mux.HandleFunc("PUT "+api.NodeDataPath+"{digest}", d.counted(d.handleNodeUpload))
	mux.HandleFunc("/", d.counted(func(w http.ResponseWriter, r *http.Request) {
		d.writeError(w, r, fmt.Errorf("no route %s %s; see docs/api.md: %w", r.Method, r.URL.Path, api.ErrNotFound))
	}))
	return mux
}

// authed authenticates the caller, runs h and answers its error; the
// answer is counted.
func (d *Daemon) authed(h func(http.ResponseWriter, *http.Request, caller) error) http.HandlerFunc {
	return d.counted(func(w http.ResponseWriter, r *http.Request) {
		c, err := d.authenticate(r)
		if err == nil {
			err = h(w, r, c)
		}
		if err != nil {
			d.writeError(w, r, err)
		}
	})
}

// counted runs h and counts its answer in fxd_http_requests_total by the
// status it sent.
func (d *Daemon) counted(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK // what net/http sends for a handler that wrote nothing
		}
		d.metrics.requests.WithLabelValues(strconv.Itoa(sw.status)).Inc()
	}
}

// statusWriter records the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the server's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// limitBody is http.MaxBytesReader on the server's own writer, which a
// statusWriter would hide from it: net/http then closes the connection
// of a request whose body went over limit instead of reading the rest.
func limitBody(w http.ResponseWriter, r *http.Request, limit int64) io.ReadCloser {
	if sw, ok := w.(*statusWriter); ok {
		w = sw.ResponseWriter
	}
	return http.MaxBytesReader(w, r.Body, limit)
}

func (d *Daemon) healthz(w http.ResponseWriter, r *http.Request) {
	if d.draining.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}

func (d *Daemon) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := api.StatusOf(err)
	if status >= 500 && status != http.StatusServiceUnavailable {
		d.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("request failed")
	}
	writeJSON(w, status, api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: err.Error()}})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// decodeJSON reads a JSON body into v: bounded in size, unknown fields
// refused, one value only.
func (d *Daemon) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body := limitBody(w, r, int64(d.cfg.Limits.MaxRequestBytes))
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err, int64(d.cfg.Limits.MaxRequestBytes))
	}
	if dec.More() {
		return fmt.Errorf("request body: more than one JSON value: %w", api.ErrInvalid)
	}
	return nil
}

func bodyError(err error, limit int64) error {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return fmt.Errorf("request body exceeds limits.max_request_bytes (%d bytes); split it into smaller requests: %w", limit, api.ErrTooLarge)
	case errors.As(err, &syntax):
		return fmt.Errorf("request body: malformed JSON at byte %d: %v: %w", syntax.Offset, syntax, api.ErrInvalid)
	case errors.As(err, &typeErr):
		return fmt.Errorf("request body: field %q: want %s, got JSON %s: %w", typeErr.Field, typeErr.Type, typeErr.Value, api.ErrInvalid)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("request body: empty; send a JSON object: %w", api.ErrInvalid)
	}
	return fmt.Errorf("request body: %v: %w", err, api.ErrInvalid)
}

// readRaw reads an octet-stream body of at most limit bytes.
func readRaw(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(limitBody(w, r, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, fmt.Errorf("input exceeds limits.max_input_bytes (%d bytes); stage large data in a file and pass its path: %w", limit, api.ErrTooLarge)
	}
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	return b, nil
}

func queryDuration(r *http.Request, key string) (time.Duration, error) {
	s := r.URL.Query().Get(key)
	if s == "" {
		return 0, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("query %s=%q: want a duration like 10s: %w", key, s, api.ErrInvalid)
	}
	return v, nil
}
