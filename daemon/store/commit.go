package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"fxd.dev/fxd/api"
)

// maxBatchTasks bounds the tasks the committer gathers into one
// transaction; a single larger call still goes whole, on its own.
const maxBatchTasks = 10000

// commitInterval is the least time from one commit's start to the next
// under load. An op that finds the committer idle commits at once (a lone
// writer never waits); when ops queued up during a commit, the next one
// gathers them for the rest of the interval so that many share one fsync,
// which costs the daemon about as much CPU as running a small command task.
const commitInterval = 4 * time.Millisecond

// lingerGap ends the gathering early when no op came for this long.
const lingerGap = 500 * time.Microsecond

// fillPercent packs pages fuller than bbolt's default: task IDs and expiry
// keys grow in time order, so most inserts append.
const fillPercent = 0.9

// op is one CreateTasks or UpdateTasks call on its way to the committer.
// The committer sets err, then closes done.
type op struct {
	create []encodedRecord // CreateTasks
	update []encodedTask   // UpdateTasks
	// once skips the created tasks whose ID exists and sets existed for
	// them, instead of refusing the op (CreateTasksOnce).
	once    bool
	existed []bool
	err     error
	done    chan struct{}
}

// encodedRecord is a validated Record encoded by its caller.
type encodedRecord struct {
	task  encodedTask
	value []byte // the whole record, header included
	input []byte
}

func (o *op) size() int { return len(o.create) + len(o.update) }

// CreateTasks stores new tasks. When it returns nil every task is on disk
// (fsync'd). A task in a final state is stored without its input and
// indexed for expiry. Nothing of the call is stored if any task is
// invalid (api.ErrInvalid) or its ID already exists (api.ErrConflict).
// If ctx ends first it returns ctx.Err(); the tasks may still be stored.
func (s *Store) CreateTasks(ctx context.Context, recs []Record) error {
	o, err := newCreate(recs)
	if err != nil || o == nil {
		return err
	}
	return s.submit(ctx, o)
}

// CreateTasksOnce is CreateTasks for tasks that may have been stored
// before (a peer sending a batch again): those whose ID exists are left
// as they are and reported in existed, in recs' order; the others are
// stored. It is atomic against other writers: of two calls with one ID,
// one stores it and the other finds it.
func (s *Store) CreateTasksOnce(ctx context.Context, recs []Record) (existed []bool, err error) {
	o, err := newCreate(recs)
	if err != nil || o == nil {
		return make([]bool, len(recs)), err
	}
	o.once, o.existed = true, make([]bool, len(recs))
	if err := s.submit(ctx, o); err != nil {
		return nil, err
	}
	return o.existed, nil
}

// newCreate validates and encodes recs as a create op; nil for none.
func newCreate(recs []Record) (*op, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	o := &op{create: make([]encodedRecord, len(recs)), done: make(chan struct{})}
	for i := range recs {
		r := &recs[i]
		t, err := encodeTask(&r.Task)
		if err != nil {
			return nil, fmt.Errorf("create tasks: %w", err)
		}
		o.create[i] = encodedRecord{
			task:  t,
			value: encodeRecord(t.state, t.expires, r.Identity, t.body),
			input: append([]byte{}, r.Input...), // the caller may reuse its buffer once ctx ends
		}
	}
	return o, nil
}

// UpdateTasks replaces stored tasks by ID with the given ones (callers pass
// the whole task; the stored identity is kept). When it returns nil the
// changes are on disk. A task turning final drops its input and is
// indexed for expiry. Unknown IDs (never stored, or expired) are skipped.
// A final task may only be replaced by a final one: nothing of the call is
// stored if it tries to move a final task back (api.ErrConflict) or holds
// an invalid task (api.ErrInvalid). If ctx ends first it returns
// ctx.Err(); the changes may still be stored.
func (s *Store) UpdateTasks(ctx context.Context, tasks []api.Task) error {
	if len(tasks) == 0 {
		return nil
	}
	o := &op{update: make([]encodedTask, len(tasks)), done: make(chan struct{})}
	for i := range tasks {
		t, err := encodeTask(&tasks[i])
		if err != nil {
			return fmt.Errorf("update tasks: %w", err)
		}
		o.update[i] = t
	}
	return s.submit(ctx, o)
}

// submit hands o to the committer and waits for its commit.
func (s *Store) submit(ctx context.Context, o *op) error {
	select {
	case s.ops <- o:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return fmt.Errorf("write tasks: store closed: %w", api.ErrUnavailable)
	}
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitLoop is the committer: it takes one op, adds every op already
// waiting (up to maxBatchTasks tasks), commits them in one transaction and
// answers each. An op that finds the committer idle commits at once; when
// ops arrived during a commit (many writers), the next commit starts no
// sooner than commitInterval after the last and takes all that came.
func (s *Store) commitLoop() {
	defer close(s.stopped)
	var batch []*op
	var last time.Time // start of the last commit
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		busy := true // an op came during the last commit: writers are many
		select {
		case o := <-s.ops:
			batch = append(batch[:0], o)
		default:
			busy = false
			select {
			case o := <-s.ops:
				batch = append(batch[:0], o)
			case <-s.quit:
				return
			}
		}
		n := batch[0].size()
		batch, n = s.gather(batch, n, nil)
		// Under load, gather more while they keep coming: until the
		// interval is over or none came for lingerGap (every writer may
		// already be waiting in this batch).
		deadline := last.Add(commitInterval)
		for busy && n < maxBatchTasks {
			wait := min(time.Until(deadline), lingerGap)
			if wait <= 0 {
				break
			}
			linger.Reset(wait)
			had := len(batch)
			batch, n = s.gather(batch, n, linger.C)
			linger.Stop()
			if len(batch) == had {
				break
			}
		}
		last = time.Now()
		s.commit(batch)
		for i, o := range batch {
			close(o.done)
			batch[i] = nil
		}
	}
}

// gather adds ops to batch until it holds maxBatchTasks tasks: those
// already waiting and, if until is not nil, those arriving before it fires.
func (s *Store) gather(batch []*op, n int, until <-chan time.Time) ([]*op, int) {
	for n < maxBatchTasks {
		select {
		case o := <-s.ops:
			batch, n = append(batch, o), n+o.size()
			continue
		default:
		}
		if until == nil {
			break
		}
		select {
		case o := <-s.ops:
			batch, n = append(batch, o), n+o.size()
		case <-until:
			return batch, n
		}
	}
	return batch, n
}

// commit applies a batch of ops in one transaction. An op refused inside
// the transaction (conflict) changes nothing and gets its own error; a
// failed commit fails every op.
func (s *Store) commit(batch []*op) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		w := newWriter(tx)
		for _, o := range batch {
			if o.create != nil {
				o.err = w.create(o.create, o.existed)
			} else {
				o.err = w.update(o.update)
			}
		}
		return w.flushCounts()
	})
	s.commits.Add(1)
	if err != nil {
		for _, o := range batch {
			if o.err == nil {
				o.err = fmt.Errorf("commit tasks: %w", err)
			}
		}
	}
}

// writer applies ops inside one write transaction.
type writer struct {
	tasks, inputs, active, expiry, meta *bolt.Bucket
	counts                              [16]int // delta per state code
}

func newWriter(tx *bolt.Tx) *writer {
	w := &writer{
		tasks:  tx.Bucket(bucketTasks),
		inputs: tx.Bucket(bucketInputs),
		active: tx.Bucket(bucketActive),
		expiry: tx.Bucket(bucketExpiry),
		meta:   tx.Bucket(bucketMeta),
	}
	for _, b := range []*bolt.Bucket{w.tasks, w.inputs, w.active, w.expiry} {
		b.FillPercent = fillPercent
	}
	return w
}

// create stores recs. With existed (CreateTasksOnce) it skips and marks
// those whose ID exists, else it refuses them all.
func (w *writer) create(recs []encodedRecord, existed []bool) error {
	var seen map[string]bool
	if len(recs) > 1 {
		seen = make(map[string]bool, len(recs))
	}
	for i := range recs {
		id := recs[i].task.id
		if w.tasks.Get(id) != nil || seen[string(id)] {
			if existed == nil {
				return fmt.Errorf("create task %s: id already exists: %w", id, api.ErrConflict)
			}
			existed[i] = true
		}
		if seen != nil {
			seen[string(id)] = true
		}
	}
	for i := range recs {
		if existed != nil && existed[i] {
			continue
		}
		r := &recs[i]
		id := r.task.id
		if err := w.tasks.Put(id, r.value); err != nil {
			return fmt.Errorf("put task %s: %w", id, err)
		}
		if r.task.state.Final() {
			if err := w.expiry.Put(expiryKey(r.task.expires, id), nil); err != nil {
				return fmt.Errorf("index task %s for expiry: %w", id, err)
			}
		} else {
			if err := w.inputs.Put(id, r.input); err != nil {
				return fmt.Errorf("put input of task %s: %w", id, err)
			}
			if err := w.active.Put(id, nil); err != nil {
				return fmt.Errorf("index active task %s: %w", id, err)
			}
		}
		w.counts[stateCode(r.task.state)]++
	}
	return nil
}

func (w *writer) update(tasks []encodedTask) error {
	// Check first, so a refused op changes nothing.
	var final map[string]bool // for IDs repeated within the op
	if len(tasks) > 1 {
		final = make(map[string]bool, len(tasks))
	}
	for i := range tasks {
		t := &tasks[i]
		v := w.tasks.Get(t.id)
		if v == nil {
			continue
		}
		h, err := decodeHeader(v)
		if err != nil {
			return fmt.Errorf("update task %s: %w", t.id, err)
		}
		wasFinal := h.state.Final()
		if f, ok := final[string(t.id)]; ok {
			wasFinal = f
		}
		if wasFinal && !t.state.Final() {
			return fmt.Errorf("update task %s: it is already %s and cannot become %s: %w", t.id, h.state, t.state, api.ErrConflict)
		}
		if final != nil {
			final[string(t.id)] = t.state.Final()
		}
	}
	for i := range tasks {
		if err := w.updateOne(&tasks[i]); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) updateOne(t *encodedTask) error {
	v := w.tasks.Get(t.id)
	if v == nil {
		return nil // unknown or expired: skipped
	}
	h, err := decodeHeader(v)
	if err != nil {
		return fmt.Errorf("update task %s: %w", t.id, err)
	}
	wasFinal := h.state.Final()
	if wasFinal && h.expires != t.expires {
		if err := w.expiry.Delete(expiryKey(h.expires, t.id)); err != nil {
			return fmt.Errorf("unindex task %s: %w", t.id, err)
		}
	}
	// encodeRecord copies the identity before Put can touch the page it is on.
	if err := w.tasks.Put(t.id, encodeRecord(t.state, t.expires, string(h.identity), t.body)); err != nil {
		return fmt.Errorf("put task %s: %w", t.id, err)
	}
	if t.state.Final() && (!wasFinal || h.expires != t.expires) {
		if err := w.expiry.Put(expiryKey(t.expires, t.id), nil); err != nil {
			return fmt.Errorf("index task %s for expiry: %w", t.id, err)
		}
	}
	if t.state.Final() && !wasFinal {
		if err := w.inputs.Delete(t.id); err != nil {
			return fmt.Errorf("drop input of task %s: %w", t.id, err)
		}
		if err := w.active.Delete(t.id); err != nil {
			return fmt.Errorf("unindex active task %s: %w", t.id, err)
		}
	}
	w.counts[stateCode(h.state)]--
	w.counts[stateCode(t.state)]++
	return nil
}

// flushCounts adds the transaction's per-state deltas to the counters in meta.
func (w *writer) flushCounts() error {
	return addCounts(w.meta, &w.counts)
}

func addCounts(meta *bolt.Bucket, delta *[16]int) error {
	for code, d := range delta {
		if d == 0 || code == 0 || code > len(api.States) {
			continue
		}
		key := countKey(api.States[code-1])
		n := int64(0)
		if v := meta.Get(key); len(v) == 8 {
			n = int64(binary.BigEndian.Uint64(v))
		}
		n = max(n+int64(d), 0)
		if err := meta.Put(key, binary.BigEndian.AppendUint64(nil, uint64(n))); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
	}
	return nil
}

func countKey(s api.State) []byte { return []byte("count/" + string(s)) }
