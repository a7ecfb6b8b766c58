package api

import "errors"

// Error kinds. Every package wraps one of these with context
// (fmt.Errorf("get task %s: %w", id, api.ErrNotFound)); the daemon maps them
// to HTTP status codes in one place and the client maps them back, so
// errors.Is works on both sides of the wire.
var (
	// ErrInvalid means the request or input is malformed (HTTP 400).
	ErrInvalid = errors.New("invalid")
	// ErrUnauthenticated means no valid credential was presented (HTTP 401).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrDenied means the caller is known but may not do this (HTTP 403).
	ErrDenied = errors.New("denied")
	// ErrNotFound means the named object does not exist or is not visible
	// to the caller (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrConflict means the request conflicts with current state (HTTP 409).
	ErrConflict = errors.New("conflict")
	// ErrTooLarge means a body, input or output exceeds a configured limit (HTTP 413).
	ErrTooLarge = errors.New("too large")
	// ErrUnavailable means the service cannot take the request now, for
	// example while draining or when a quota is full (HTTP 503).
	ErrUnavailable = errors.New("unavailable")
)

// Error codes as they appear in ErrorBody.Code.
const (
	CodeInvalid         = "invalid"
	CodeUnauthenticated = "unauthenticated"
	CodeDenied          = "denied"
	CodeNotFound        = "not_found"
	CodeConflict        = "conflict"
	CodeTooLarge        = "too_large"
	CodeUnavailable     = "unavailable"
	CodeInternal        = "internal"
)

var kinds = []struct {
	err    error
	code   string
	status int
}{
	{ErrInvalid, CodeInvalid, 400},
	{ErrUnauthenticated, CodeUnauthenticated, 401},
	{ErrDenied, CodeDenied, 403},
	{ErrNotFound, CodeNotFound, 404},
	{ErrConflict, CodeConflict, 409},
	{ErrTooLarge, CodeTooLarge, 413},
	{ErrUnavailable, CodeUnavailable, 503},
}

// StatusOf returns the HTTP status and error code for err, by its kind;
// errors of no kind are internal (500).
func StatusOf(err error) (status int, code string) {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.status, k.code
		}
	}
	return 500, CodeInternal
}

// KindOf returns the error kind for a code from ErrorBody, or nil for an
// unknown or internal code.
func KindOf(code string) error {
	for _, k := range kinds {
		if k.code == code {
			return k.err
		}
	}
	return nil
}

// ErrorBody is the JSON body of every error answer:
// {"error": {"code": "not_found", "message": "task 01H…: not found"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries a machine-readable code and a message for people that
// says what was wrong and how to fix it.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// RemoteError is an error answered by the endpoint. It unwraps to the kind
// named by its code, so errors.Is(err, api.ErrNotFound) works in clients.
type RemoteError struct {
	Status  int
	Code    string
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the error kind of the code, if any.
func (e *RemoteError) Unwrap() error { return KindOf(e.Code) }
