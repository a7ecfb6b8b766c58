package daemon

import (
	"fmt"
	"mime"
	"net/http"
	"os"
	"strconv"
	"time"

	"fxd.dev/fxd/api"
)

func (d *Daemon) handleSite(w http.ResponseWriter, r *http.Request, c caller) error {
	rts, err := d.runtimesFor(c.acct.Name)
	if err != nil {
		return err
	}
	names := make([]string, len(rts))
	for i, rt := range rts {
		names[i] = rt.Name
	}
	l := d.cfg.Limits
	return writeJSON(w, http.StatusOK, api.SiteInfo{
		Site: d.cfg.Site.Name, Version: d.version, Identity: c.identity, Account: c.acct.Name,
		Runtimes: names,
		Limits: api.SiteLimits{
			MaxInputBytes: int64(l.MaxInputBytes), MaxResultBytes: int64(l.MaxResultBytes),
			MaxBatch: l.MaxBatch, Retention: api.Duration(l.ResultRetention),
		},
	})
}

func (d *Daemon) handleRegister(w http.ResponseWriter, r *http.Request, c caller) error {
	var spec api.FunctionSpec
	if err := d.decodeJSON(w, r, &spec); err != nil {
		return err
	}
	f, err := d.registerFunction(r.Context(), c, spec)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, f)
}

func (d *Daemon) handleFunctions(w http.ResponseWriter, r *http.Request, c caller) error {
	fs, err := d.listFunctions(c)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.FunctionsResponse{Functions: fs})
}

func (d *Daemon) handleFunction(w http.ResponseWriter, r *http.Request, c caller) error {
	f, err := d.resolveFunction(c, r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, f)
}

func (d *Daemon) handleDeleteFunction(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := d.deleteFunction(r.Context(), c, r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d *Daemon) handleSubmit(w http.ResponseWriter, r *http.Request, c caller) error {
	var req api.SubmitRequest
	if err := d.decodeJSON(w, r, &req); err != nil {
		return err
	}
	ids, err := d.submit(r.Context(), c, req.Tasks)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, api.SubmitResponse{IDs: ids})
}

func (d *Daemon) handleQuery(w http.ResponseWriter, r *http.Request, c caller) error {
	var req api.TasksRequest
	if err := d.decodeJSON(w, r, &req); err != nil {
		return err
	}
	ts, err := d.waitTasks(r.Context(), c, req.IDs, req.Wait.D())
	if err != nil {
		return err
	}
	if !req.Output {
		for i := range ts {
			ts[i].Output = nil
		}
	}
	return writeJSON(w, http.StatusOK, api.TasksResponse{Tasks: ts})
}

func (d *Daemon) handleTask(w http.ResponseWriter, r *http.Request, c caller) error {
	wait, err := queryDuration(r, "wait")
	if err != nil {
		return err
	}
	ts, err := d.waitTasks(r.Context(), c, []string{r.PathValue("id")}, wait)
	if err != nil {
		return err
	}
	if r.URL.Query().Get("output") == "false" {
		ts[0].Output = nil
	}
	return writeJSON(w, http.StatusOK, ts[0])
}

func (d *Daemon) handleOutput(w http.ResponseWriter, r *http.Request, c caller) error {
	t, err := d.getTask(c, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !t.State.Final() {
		return fmt.Errorf("task %s is %s; wait for it to end (fx result --wait): %w", t.ID, t.State, api.ErrConflict)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if t.OutputRef == "" {
		_, err = w.Write(t.Output)
		return err
	}
	path, release, err := d.cache.Pin(t.OutputRef, c.acct.Name)
	if err != nil {
		return fmt.Errorf("output of task %s, kept in the data cache: %w (removed with fx data rm?)", t.ID, err)
	}
	defer release()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read the output of task %s: %w", t.ID, err)
	}
	defer f.Close()
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

func (d *Daemon) handleCancel(w http.ResponseWriter, r *http.Request, c caller) error {
	t, err := d.cancelTask(c, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t)
}

// handleRun is the synchronous low-latency path: a JSON TaskSpec or a raw
// octet-stream input; the answer is the finished task, as JSON or raw.
func (d *Daemon) handleRun(w http.ResponseWriter, r *http.Request, c caller) error {
	var spec api.TaskSpec
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/octet-stream" {
		b, err := readRaw(w, r, int64(d.cfg.Limits.MaxInputBytes))
		if err != nil {
			return err
		}
		spec.InputBase64 = b
	} else if err := d.decodeJSON(w, r, &spec); err != nil {
		return err
	}
	if spec.Function != "" && spec.Function != r.PathValue("name") {
		return fmt.Errorf("body names function %q but the path names %q; leave the body's function out: %w", spec.Function, r.PathValue("name"), api.ErrInvalid)
	}
	spec.Function = r.PathValue("name")
	if t, err := queryDuration(r, "timeout"); err != nil {
		return err
	} else if t > 0 {
		spec.Timeout = api.Duration(t)
	}
	t, err := d.runSync(r.Context(), c, spec)
	if err != nil {
		return err
	}
	accept, _, _ := mime.ParseMediaType(r.Header.Get("Accept"))
	if accept != "application/octet-stream" {
		return writeJSON(w, http.StatusOK, t)
	}
	h := w.Header()
	h.Set("Fxd-Task-Id", t.ID)
	h.Set("Fxd-State", string(t.State))
	h.Set("Fxd-Exit-Code", strconv.Itoa(t.ExitCode))
	if t.State != api.StateSucceeded {
		return writeJSON(w, http.StatusUnprocessableEntity, t)
	}
	h.Set("Content-Type", "application/octet-stream")
	_, err = w.Write(t.Output)
	return err
}
