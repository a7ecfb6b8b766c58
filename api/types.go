package api

import (
	"encoding/json"
	"fmt"
	"time"
)

// Version is the API version; every path but /healthz and /metrics starts
// with "/" + Version.
const Version = "v1"

// Kind is how a function runs.
type Kind string

const (
	// KindCommand runs one process per task: input on stdin, output from stdout.
	KindCommand Kind = "command"
	// KindServable is a long-lived process that answers framed requests on
	// stdin/stdout (see docs/servable.md).
	KindServable Kind = "servable"
)

// RuntimeHost is the runtime that runs functions on the node's own
// filesystem, with no container.
const RuntimeHost = "host"

// State is where a task is in its life.
type State string

// Task states. A task moves received → queued → running → one final state;
// a running task whose daemon died goes back to queued on restart.
const (
	StateReceived  State = "received" // accepted, not yet durable (synchronous run path only)
	StateQueued    State = "queued"
	StateRunning   State = "running"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
	StateTimedOut  State = "timed_out"
)

// States lists every state in life order.
var States = []State{StateReceived, StateQueued, StateRunning, StateSucceeded, StateFailed, StateCancelled, StateTimedOut}

// Final reports whether no further transition can happen.
func (s State) Final() bool {
	switch s {
	case StateSucceeded, StateFailed, StateCancelled, StateTimedOut:
		return true
	}
	return false
}

// Duration is a time.Duration that reads and writes as a Go duration
// string ("30s", "1m30s") in JSON.
type Duration time.Duration

// MarshalText writes the duration as "1m30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a number with a unit, like \"30s\" or \"5m\": %w", b, ErrInvalid)
	}
	if v < 0 {
		return fmt.Errorf("duration %q: must not be negative: %w", b, ErrInvalid)
	}
	*d = Duration(v)
	return nil
}

// Limits bound what one worker of a function may use. Zero fields take the
// tenant's quota; larger values are capped by it.
type Limits struct {
	MemoryBytes int64    `json:"memory_bytes,omitempty"`
	CPUs        float64  `json:"cpus,omitempty"`
	Pids        int64    `json:"pids,omitempty"`
	Timeout     Duration `json:"timeout,omitempty"` // per task; 0 takes the site default
}

// FunctionSpec is what a user registers.
type FunctionSpec struct {
	Name    string `json:"name"`              // [a-z0-9][a-z0-9._-]{0,63}
	Runtime string `json:"runtime,omitempty"` // "host" (default) or a runtime name
	Kind    Kind   `json:"kind,omitempty"`    // "command" (default) or "servable"
	// Command is the argv. For a command function it is a template:
	// "{task_id}" and "{attempt}" are replaced per task. For a servable it
	// starts the long-lived process.
	Command    []string          `json:"command"`
	Env        map[string]string `json:"env,omitempty"`
	Limits     Limits            `json:"limits,omitzero"`
	SharedWith []string          `json:"shared_with,omitempty"` // accounts that may invoke it
	// Federated offers the function to the site's federation: peers list
	// it, and any caller a peer forwards (an identity "user@peer" that
	// [[auth.map]] maps here) may invoke it as "owner/name".
	Federated   bool   `json:"federated,omitempty"`
	Description string `json:"description,omitempty"`
}

// Function is a registered function as stored and listed.
type Function struct {
	FunctionSpec
	Owner     string    `json:"owner"`   // account that registered it
	Version   int       `json:"version"` // bumped on every re-register
	CreatedAt time.Time `json:"created_at"`
}

// Ref names the function as "owner/name", the form other tenants use.
func (f Function) Ref() string { return f.Owner + "/" + f.Name }

// TaskSpec is one invocation. Input is either a JSON value (the function
// receives its text) or raw bytes in InputBase64; not both.
type TaskSpec struct {
	// Function is "name" for the caller's own function or "owner/name" for
	// one shared with the caller.
	Function    string          `json:"function"`
	Input       json.RawMessage `json:"input,omitempty"`
	InputBase64 []byte          `json:"input_base64,omitempty"`
	Timeout     Duration        `json:"timeout,omitempty"`
	// Data are cache entries (or sources to stage) the task reads: fxd
	// stages them before it starts and shows them, read-only, at
	// $FXD_DATA/<path>.
	Data []DataRef `json:"data,omitempty"`
	// Site runs the task at a federated peer: its name, or "any" to let
	// this site choose one that offers Function. "" runs it here. At the
	// peer, Function is named as that site knows it.
	Site string `json:"site,omitempty"`
}

// InputBytes returns the bytes the function will read on stdin.
func (s TaskSpec) InputBytes() []byte {
	if len(s.InputBase64) > 0 {
		return s.InputBase64
	}
	return s.Input
}

// SubmitRequest is the body of POST /v1/tasks.
type SubmitRequest struct {
	Tasks []TaskSpec `json:"tasks"`
}

// SubmitResponse answers POST /v1/tasks once every task is durable; IDs are
// in request order.
type SubmitResponse struct {
	IDs []string `json:"ids"`
}

// TasksRequest is the body of POST /v1/tasks/query: status of many tasks,
// optionally waiting until all are final or Wait has passed.
type TasksRequest struct {
	IDs  []string `json:"ids"`
	Wait Duration `json:"wait,omitempty"`
	// Output asks for outputs to be included; without it only states and
	// metadata come back.
	Output bool `json:"output,omitempty"`
}

// TasksResponse answers POST /v1/tasks/query, in request order.
type TasksResponse struct {
	Tasks []Task `json:"tasks"`
}

// Task is the status and result of one invocation.
type Task struct {
	ID              string `json:"id"`
	Function        string `json:"function"` // "owner/name"
	FunctionVersion int    `json:"function_version"`
	Owner           string `json:"owner"` // account the task runs as
	State           State  `json:"state"`
	Attempts        int    `json:"attempts"` // runs started; >1 after a restart (at-least-once)
	ExitCode        int    `json:"exit_code"`
	Output          []byte `json:"output,omitempty"` // base64 in JSON
	// OutputRef is the cache entry that holds an output larger than the
	// site's limits.max_result_bytes (Output is then empty), OutputSize
	// its bytes: GET /v1/tasks/{id}/output, fx result and fx data get
	// read it.
	OutputRef  string   `json:"output_ref,omitempty"`
	OutputSize int64    `json:"output_size,omitempty"`
	Error      string   `json:"error,omitempty"`  // why it did not succeed
	Stderr     string   `json:"stderr,omitempty"` // last bytes of stderr
	Cold       bool     `json:"cold,omitempty"`   // its worker was started for it
	Worker     string   `json:"worker,omitempty"` // worker that ran it
	Timeout    Duration `json:"timeout,omitempty"`
	// Data are the data files the task reads (TaskSpec.Data).
	Data []DataRef `json:"data,omitempty"`
	// Site is the peer a forwarded task runs at, RemoteID its ID there;
	// both empty for a task run at this site.
	Site     string `json:"site,omitempty"`
	RemoteID string `json:"remote_id,omitempty"`
	// Origin is, for a task a peer forwarded here, that site and the
	// task's ID there ("site/id").
	Origin string `json:"origin,omitempty"`

	// ReceivedAt is when the daemon accepted the task.
	ReceivedAt time.Time `json:"received_at,omitzero"`
	// DispatchedAt is when the task left the queue and the daemon began to
	// find or start a worker for it (its latest attempt). Zero while it is
	// queued, and for a task cancelled before it left the queue.
	DispatchedAt time.Time `json:"dispatched_at,omitzero"`
	// StartedAt is when the task began on its worker, after any cold start.
	// Zero for a task that ended before it began (its worker did not start)
	// and, while it runs, until the daemon learns it from the worker.
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"` // when the result is deleted
}

// Phase is the length of one phase of a task's life. Known is false when
// one of its ends is not known: not reached yet, or the task ended before
// it. A known phase whose end is before its start (the wall clock stepped
// back) has D 0.
type Phase struct {
	D     time.Duration
	Known bool
}

// PhaseBetween is the phase from a to b: unknown when either is zero.
func PhaseBetween(a, b time.Time) Phase {
	if a.IsZero() || b.IsZero() {
		return Phase{}
	}
	return Phase{D: max(b.Sub(a), 0), Known: true}
}

// Timings splits the task's life into three phases:
//
//   - queue: ReceivedAt to DispatchedAt, waiting for the tenant's quota
//     (max_running) to let it go;
//   - start: DispatchedAt to StartedAt, the cold start of its worker when
//     Cold is set, else the wait for a warm worker to be free;
//   - run: StartedAt to FinishedAt, the task on its worker.
//
// A task in progress does not know its current phase yet, nor the later
// ones; one that ended before it began on a worker knows no start or run.
func (t Task) Timings() (queue, start, run Phase) {
	return PhaseBetween(t.ReceivedAt, t.DispatchedAt), PhaseBetween(t.DispatchedAt, t.StartedAt), PhaseBetween(t.StartedAt, t.FinishedAt)
}

// RegisterResponse is the Function as stored.
type RegisterResponse = Function

// FunctionsResponse answers GET /v1/functions: the caller's own functions,
// then those shared with it.
type FunctionsResponse struct {
	Functions []Function `json:"functions"`
}

// SiteInfo answers GET /v1/site: the site and who the caller is there.
type SiteInfo struct {
	Site     string     `json:"site"`
	Version  string     `json:"version"`
	Identity string     `json:"identity"`
	Account  string     `json:"account"`
	Runtimes []string   `json:"runtimes"`
	Limits   SiteLimits `json:"limits"`
}

// SiteLimits are the limits the caller's requests must respect.
type SiteLimits struct {
	MaxInputBytes  int64    `json:"max_input_bytes"`
	MaxResultBytes int64    `json:"max_result_bytes"`
	MaxBatch       int      `json:"max_batch"`
	Retention      Duration `json:"retention"`
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
