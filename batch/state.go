package batch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"
)

// scalerState is what a Scaler keeps across restarts of the daemon: the
// scheduler knows the jobs, but only this says which are the pool's.
type scalerState struct {
	// Seq numbers the pool's blocks, so that no two share a name.
	Seq    int            `json:"seq"`
	Blocks []*blockRecord `json:"blocks"`
}

// blockRecord is one block of a pool.
type blockRecord struct {
	Name string `json:"name"`
	// Job is "" while State is submitting: the block is recorded before
	// its submit, and found by Name after a restart (Scaler.resolve).
	Job       JobID         `json:"job"`
	State     string        `json:"state"` // submitting, pending, running, draining, cancelling, done
	Nodes     int           `json:"nodes"`
	Walltime  time.Duration `json:"walltime"`
	Shaped    bool          `json:"shaped"`
	Submitted time.Time     `json:"submitted"`
	Started   time.Time     `json:"started,omitzero"`
	Ends      time.Time     `json:"ends,omitzero"`
	Ended     time.Time     `json:"ended,omitzero"`
	Hosts     []string      `json:"hosts,omitempty"`
	Reason    string        `json:"reason,omitempty"`
	Ran       int           `json:"ran"`
	// EverLinked is set once an agent of the block linked; Unlinked is
	// since when none is, after that.
	EverLinked bool      `json:"ever_linked"`
	Unlinked   time.Time `json:"unlinked,omitzero"`
	// unsettled is since when this daemon has failed to settle the block,
	// which has no job id (Scaler.trySettle); zero until it fails.
	unsettled time.Time
}

// live are the blocks that have not ended.
func (st *scalerState) live() []*blockRecord {
	var out []*blockRecord
	for _, b := range st.Blocks {
		if b.State != stateDone {
			out = append(out, b)
		}
	}
	return out
}

// forget drops the blocks that ended before t.
func (st *scalerState) forget(t time.Time) {
	st.Blocks = slices.DeleteFunc(st.Blocks, func(b *blockRecord) bool { return b.State == stateDone && b.Ended.Before(t) })
}

// loadState reads the state path holds; a missing file is a pool with no
// blocks yet.
func loadState(path string) (scalerState, error) {
	var st scalerState
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read its blocks: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("read its blocks from %s: %w; the file is not fxd's record: move it away (its jobs, if any, are then fxd's no longer; cancel them by hand)", path, err)
	}
	st.Blocks = slices.DeleteFunc(st.Blocks, func(b *blockRecord) bool { return b == nil })
	return st, nil
}

// encode is st as it is written to its file (whole, through
// atomicfile, so that a crash leaves the old record or the new one).
func (st *scalerState) encode() ([]byte, error) {
	return json.MarshalIndent(st, "", "  ")
}
