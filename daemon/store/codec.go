package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"fxd.dev/fxd/api"
)

// recordFormat is byte 0 of every task record (see doc.go).
const recordFormat = 1

// headerLen is the fixed part of a record header: format, state, ExpiresAt.
const headerLen = 10

// maxIDLen bounds task IDs, function owners and names (bbolt keys may be
// up to 32 KiB; nothing fxd makes comes near this).
const maxIDLen = 256

// header is the part of a record the committer reads without decoding
// the JSON.
type header struct {
	state    api.State
	expires  uint64 // Unix ns; 0 = unset
	identity []byte // aliases the record; valid only inside its transaction
	body     []byte // the task as JSON; same lifetime
}

// stateCode returns the header byte of s, or 0 if s is no known state.
func stateCode(s api.State) byte {
	for i, v := range api.States {
		if v == s {
			return byte(i + 1)
		}
	}
	return 0
}

// unixNano returns t as Unix nanoseconds clamped to uint64 (0 for the
// zero time or dates before 1970, the maximum for dates after 2262).
func unixNano(t time.Time) uint64 {
	switch {
	case t.IsZero() || t.Unix() < 0:
		return 0
	case t.Unix() >= math.MaxInt64/int64(time.Second):
		return math.MaxInt64
	}
	return uint64(t.UnixNano())
}

// encodeRecord builds a record from its parts.
func encodeRecord(state api.State, expires uint64, identity string, body []byte) []byte {
	b := make([]byte, headerLen, headerLen+binary.MaxVarintLen64+len(identity)+len(body))
	b[0] = recordFormat
	b[1] = stateCode(state)
	binary.BigEndian.PutUint64(b[2:], expires)
	b = binary.AppendUvarint(b, uint64(len(identity)))
	b = append(b, identity...)
	return append(b, body...)
}

// decodeHeader splits a record without decoding its JSON.
func decodeHeader(b []byte) (header, error) {
	if len(b) < headerLen+1 || b[0] != recordFormat {
		return header{}, fmt.Errorf("decode task record: unknown format (%d bytes); the store file may be damaged", len(b))
	}
	if b[1] == 0 || int(b[1]) > len(api.States) {
		return header{}, fmt.Errorf("decode task record: unknown state code %d; the store file may be damaged", b[1])
	}
	h := header{state: api.States[b[1]-1], expires: binary.BigEndian.Uint64(b[2:])}
	n, k := binary.Uvarint(b[headerLen:])
	rest := b[headerLen+max(k, 0):]
	if k <= 0 || n > uint64(len(rest)) {
		return header{}, fmt.Errorf("decode task record: bad identity length; the store file may be damaged")
	}
	h.identity, h.body = rest[:n], rest[n:]
	return h, nil
}

// decodeRecord returns the task and identity of a record; it copies what
// it keeps, so the result outlives the transaction.
func decodeRecord(b []byte) (api.Task, string, error) {
	h, err := decodeHeader(b)
	if err != nil {
		return api.Task{}, "", err
	}
	var t api.Task
	if err := json.Unmarshal(h.body, &t); err != nil {
		return api.Task{}, "", fmt.Errorf("decode task record: %w", err)
	}
	return t, string(h.identity), nil
}

// expiryKey is the expiry index key of a task: ExpiresAt then ID, so a
// cursor meets the earliest expiry first.
func expiryKey(expires uint64, id []byte) []byte {
	k := make([]byte, 8+len(id))
	binary.BigEndian.PutUint64(k, expires)
	copy(k[8:], id)
	return k
}

// checkTask validates what the store relies on in a task.
func checkTask(t *api.Task) error {
	switch {
	case t.ID == "":
		return fmt.Errorf("task has no id: %w", api.ErrInvalid)
	case len(t.ID) > maxIDLen:
		return fmt.Errorf("task id %.32q…: longer than %d bytes: %w", t.ID, maxIDLen, api.ErrInvalid)
	case stateCode(t.State) == 0:
		return fmt.Errorf("task %s: unknown state %q: %w", t.ID, t.State, api.ErrInvalid)
	case t.State.Final() && t.ExpiresAt.IsZero():
		return fmt.Errorf("task %s: final state %s without expires_at; set ExpiresAt from limits.result_retention: %w", t.ID, t.State, api.ErrInvalid)
	}
	return nil
}

// encodedTask is a validated task encoded by its caller, ready for the
// committer.
type encodedTask struct {
	id      []byte
	state   api.State
	expires uint64
	body    []byte // api.Task as JSON
}

func encodeTask(t *api.Task) (encodedTask, error) {
	if err := checkTask(t); err != nil {
		return encodedTask{}, err
	}
	body, err := json.Marshal(t)
	if err != nil {
		return encodedTask{}, fmt.Errorf("encode task %s: %v: %w", t.ID, err, api.ErrInvalid)
	}
	return encodedTask{id: []byte(t.ID), state: t.State, expires: unixNano(t.ExpiresAt), body: body}, nil
}
