package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/cache"
	"fxd.dev/fxd/isolation"
	"fxd.dev/fxd/runtimes"
)

// maxTaskData bounds the data files of one task.
const maxTaskData = 64

// checkTaskData refuses, before a task is accepted, data refs that no run
// could show it: bad names, refs that are neither a digest, an absolute
// path nor a URL, and digests of entries the caller may not read.
// Sources are staged when the task runs.
func (d *Daemon) checkTaskData(ctx context.Context, c caller, refs []api.DataRef) error {
	if len(refs) > maxTaskData {
		return fmt.Errorf("%d data files: at most %d a task; put them in fewer, larger files: %w", len(refs), maxTaskData, api.ErrTooLarge)
	}
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.Path
		switch {
		case api.IsDigest(r.Ref):
			if err := d.readable(ctx, c.acct, r.Ref); err != nil {
				return fmt.Errorf("data[%d]: %w", i, err)
			}
		case cache.IsURL(r.Ref), filepath.IsAbs(r.Ref):
		default:
			return fmt.Errorf("data[%d].ref %q: give a digest that fx data ls lists, an absolute path under the site's data paths, or an http(s) URL: %w",
				i, r.Ref, api.ErrInvalid)
		}
	}
	if err := runtimes.CheckDataNames(names); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	return nil
}

// resolveData stages the sources j names in the daemon's cache, as j's
// account, and returns the entries j reads, which the account may read.
// It pins them until j is final (releaseData), so that neither eviction
// nor a remove takes them before j has run, here or on a node that
// fetches them. It resolves once: a task placed again (requeued) reads
// the same bytes, and a task whose data failed to resolve fails with the
// same error wherever it goes.
func (d *Daemon) resolveData(ctx context.Context, j *job) ([]api.NodeData, error) {
	if j.data != nil || j.dataErr != nil {
		return j.data, j.dataErr
	}
	var data []api.NodeData
	for i, r := range j.task.Data {
		files, err := d.resolveRef(ctx, j, r)
		if err != nil {
			j.releaseData()
			if ctx.Err() == nil { // a cancel is not the data's fault: try again if it runs again
				j.dataErr = fmt.Errorf("data[%d] %s: %w", i, r.Ref, err)
			}
			return nil, fmt.Errorf("data[%d] %s: %w", i, r.Ref, err)
		}
		data = append(data, files...)
		if len(data) > maxTreeFiles {
			j.releaseData()
			j.dataErr = fmt.Errorf("the task's data holds more than %d files; name fewer or smaller trees: %w", maxTreeFiles, api.ErrTooLarge)
			return nil, j.dataErr
		}
	}
	j.data = data
	return data, nil
}

// resolveRef pins the entry r names, and for a tree every file it lists,
// as j's account (who must read each), and returns them as the files j
// sees: r.Path, or r.Path/<file> for a tree.
func (d *Daemon) resolveRef(ctx context.Context, j *job, r api.DataRef) ([]api.NodeData, error) {
	e, path, unpin, err := d.pinRef(ctx, j, r.Ref)
	if err != nil {
		return nil, err
	}
	j.dataPins = append(j.dataPins, unpin)
	files, tree, err := d.trees.read(e.Digest, path)
	if err != nil {
		return nil, err
	}
	if !tree {
		j.dataPaths = append(j.dataPaths, path)
		return []api.NodeData{{Digest: e.Digest, Size: e.Size, Name: r.Path}}, nil
	}
	out := make([]api.NodeData, 0, len(files))
	for _, f := range files {
		path, unpin, err := d.cache.Pin(f.Digest, j.acct.Name)
		if err != nil {
			return nil, fmt.Errorf("file %s of the tree: %w; stage the directory again", f.Path, err)
		}
		j.dataPins = append(j.dataPins, unpin)
		j.dataPaths = append(j.dataPaths, path)
		out = append(out, api.NodeData{Digest: f.Digest, Size: f.Size, Name: r.Path + "/" + f.Path})
	}
	return out, nil
}

// pinRef returns the entry ref names for j's account, staged first if it
// is a source, and pinned.
func (d *Daemon) pinRef(ctx context.Context, j *job, ref string) (cache.Entry, string, func(), error) {
	digest := ref
	if !api.IsDigest(ref) {
		e, err := d.stager.stage(ctx, j.acct, d.cacheQuota(j.acct.Name), ref, "")
		if err != nil {
			return cache.Entry{}, "", nil, err
		}
		digest = e.Digest
	}
	path, unpin, err := d.cache.Pin(digest, j.acct.Name)
	if errors.Is(err, api.ErrNotFound) && api.IsDigest(ref) {
		// Evicted here, maybe still on a node: bring it back from there.
		if rerr := d.recoverEntry(ctx, j.acct, digest); rerr == nil {
			path, unpin, err = d.cache.Pin(digest, j.acct.Name)
		}
	}
	if err != nil {
		return cache.Entry{}, "", nil, fmt.Errorf("%w; stage it again (fx data put, fx data stage)", err)
	}
	e, err := d.cache.Get(digest, j.acct.Name)
	if err != nil {
		unpin()
		return cache.Entry{}, "", nil, err
	}
	return e, path, unpin, nil
}

// releaseData unpins the entries j reads. Called by j's run goroutine
// once j is final, or dropped.
func (j *job) releaseData() {
	for _, unpin := range j.dataPins {
		unpin()
	}
	j.dataPins, j.dataPaths, j.data = nil, nil, nil
}

// taskData gives the entries j reads, pinned by resolveData until j is
// final, for a run on the daemon's node.
func (d *dispatcher) taskData(ctx context.Context, j *job) ([]runtimes.DataFile, error) {
	data, err := d.resolveData(ctx, j)
	if err != nil {
		return nil, err
	}
	files := make([]runtimes.DataFile, len(data))
	for i, e := range data {
		files[i] = runtimes.DataFile{Source: j.dataPaths[i], Name: e.Name}
	}
	return files, nil
}

// readable checks that a reads the entry digest: in the daemon's cache,
// or, evicted here, in the cache of a node that holds it, which then
// sends it back (for a alone: the node checks a reads it there).
func (d *Daemon) readable(ctx context.Context, a isolation.Account, digest string) error {
	_, err := d.cache.Get(digest, a.Name)
	if errors.Is(err, api.ErrNotFound) && d.nodes.holdsAnywhere(digest) {
		if rerr := d.recoverEntry(ctx, a, digest); rerr == nil {
			_, err = d.cache.Get(digest, a.Name)
		}
	}
	return err
}

// maxOutput is the largest output a task may return: the result limit,
// or the larger limit of outputs kept in the data cache.
func (d *dispatcher) maxOutput() int64 {
	return max(int64(d.limits.MaxResultBytes), int64(d.limits.MaxCachedResultBytes))
}

// keepLargeOutput moves an output past limits.max_result_bytes into the
// data cache, where the task's account reads it by the ref the task
// records; a task whose output cannot be kept there fails, saying why.
func (d *dispatcher) keepLargeOutput(j *job, res runtimes.Result) runtimes.Result {
	if int64(len(res.Output)) <= int64(d.limits.MaxResultBytes) || d.keepOutput == nil {
		return res
	}
	ref, err := d.keepOutput(j.acct.Name, j.task.ID, res.Output)
	if err != nil {
		res.State, res.ExitCode = api.StateFailed, -1
		res.Error = fmt.Sprintf("output of %d bytes is more than limits.max_result_bytes, and keeping it in the data cache failed: %v", len(res.Output), err)
	} else {
		j.outputRef, j.outputSize = ref, int64(len(res.Output))
	}
	res.Output = nil
	return res
}

// keepOutput puts output, task id's, in the cache for account.
func (d *Daemon) keepOutput(account, id string, output []byte) (string, error) {
	e, err := d.cache.Put(context.Background(), account, bytes.NewReader(output), cache.PutOptions{
		Source: "output of task " + id, Size: int64(len(output)), MaxSize: int64(len(output)), Quota: d.cacheQuota(account),
		KeepUntil: time.Now().Add(d.cfg.Limits.ResultRetention.D()), // as long as the task's result
	})
	return e.Digest, err
}
