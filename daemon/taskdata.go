package daemon

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/cache"
	"fxd.dev/fxd/runtimes"
)

// maxTaskData bounds the data files of one task.
const maxTaskData = 64

// checkTaskData refuses, before a task is accepted, data refs that no run
// could show it: bad names, refs that are neither a digest, an absolute
// path nor a URL, and digests of entries the caller may not read.
// Sources are staged when the task runs.
func (d *Daemon) checkTaskData(c caller, refs []api.DataRef) error {
	if len(refs) > maxTaskData {
		return fmt.Errorf("%d data files: at most %d a task; put them in fewer, larger files: %w", len(refs), maxTaskData, api.ErrTooLarge)
	}
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = r.Path
		switch {
		case api.IsDigest(r.Ref):
			if _, err := d.cache.Get(r.Ref, c.acct.Name); err != nil {
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
// It resolves once: a task placed again (requeued) reads the same bytes.
func (d *Daemon) resolveData(ctx context.Context, j *job) ([]api.NodeData, error) {
	if j.data != nil {
		return j.data, nil
	}
	data := make([]api.NodeData, 0, len(j.task.Data))
	for i, r := range j.task.Data {
		var e cache.Entry
		var err error
		if api.IsDigest(r.Ref) {
			e, err = d.cache.Get(r.Ref, j.acct.Name)
		} else {
			e, err = d.stager.stage(ctx, j.acct, d.cacheQuota(j.acct.Name), r.Ref, "")
		}
		if err != nil {
			return nil, fmt.Errorf("data[%d] %s: %w", i, r.Ref, err)
		}
		data = append(data, api.NodeData{Digest: e.Digest, Size: e.Size, Name: r.Path})
	}
	j.data = data
	return data, nil
}

// taskData pins the entries j reads for a run on the daemon's node;
// release unpins them.
func (d *Daemon) taskData(ctx context.Context, j *job) (files []runtimes.DataFile, release func(), err error) {
	data, err := d.resolveData(ctx, j)
	if err != nil {
		return nil, nil, err
	}
	var pins []func()
	release = func() {
		for _, p := range pins {
			p()
		}
	}
	for i, e := range data {
		path, unpin, err := d.cache.Pin(e.Digest, j.acct.Name)
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("data[%d] %s: %w; stage it again (fx data put, fx data stage)", i, e.Digest, err)
		}
		pins = append(pins, unpin)
		files = append(files, runtimes.DataFile{Source: path, Name: e.Name})
	}
	return files, release, nil
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
		Source: "output of task " + id, MaxSize: int64(len(output)), Quota: d.cacheQuota(account),
	})
	return e.Digest, err
}
