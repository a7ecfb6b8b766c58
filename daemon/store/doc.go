// Package store is the daemon's durable task and function store: one bbolt
// file in the state directory (<state_dir>/tasks.db).
//
// A task is written before the daemon answers its submission, so once
// accepted it is never lost. Writes from many goroutines share bbolt
// transactions and fsyncs through one committer goroutine (group commit):
// a lone caller commits at once, with no added delay; callers that arrive
// while a commit is on disk go together in the next one, which then starts
// no sooner than 4 ms after the last (so a busy store fsyncs at most about
// 250 times a second, each fsync shared by every write of its interval).
//
// It imports api and conf only (plus third-party packages), never another
// fxd package.
//
// # Schema version 1
//
// The bucket tree (keys → values). A change to it changes schemaVersion and
// comes with a migration in Open; an fxd refuses a file with a newer
// schema than it knows.
//
//	meta
//	├── "schema"              → uint64 big-endian (1)
//	└── "count/<state>"       → uint64 big-endian: tasks in that state
//	tasks
//	└── <task id>             → record (see below)
//	inputs
//	└── <task id>             → input bytes; only while the task is not final
//	active
//	└── <task id>             → empty; every non-final task (recovery at start)
//	expiry
//	└── <expires ns><task id> → empty; every final task, ns = ExpiresAt as
//	                            uint64 big-endian Unix nanoseconds
//	functions
//	└── <owner>\x00<name>     → api.Function as JSON
//	fnversions
//	└── <owner>\x00<name>     → uint64 big-endian: last version given, kept
//	                            after a delete so versions are never reused
//
// Task IDs are time-sortable strings, so the key order of tasks and active
// is submission order.
//
// A record is a small binary header followed by the task as JSON:
//
//	byte 0      record format (1)
//	byte 1      state: 1 + index in api.States
//	bytes 2-9   ExpiresAt, uint64 big-endian Unix nanoseconds (0 = unset)
//	uvarint n   then n bytes: identity that submitted the task
//	rest        api.Task as JSON (output included; its size is bounded by
//	            the daemon's limits.max_result_bytes)
//
// The header lets the committer keep the indexes and counters right
// without decoding the JSON.
package store
