package slurm

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"fxd.dev/fxd/batch"
	"fxd.dev/fxd/batch/batchtest"
	"fxd.dev/fxd/conf"
	"fxd.dev/fxd/internal/testenv"
)

// newProvider is a provider for the local cluster's partition.
func newProvider(t *testing.T) *Provider {
	t.Helper()
	part := testenv.RequireSlurm(t)
	p, err := New(conf.SlurmPool{Partition: part}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: submits Slurm jobs")
	}
	batchtest.Run(t, func(t *testing.T) batch.Provider { return newProvider(t) },
		batchtest.Options{Runs: true, UnknownID: "999999", Idle: true})
}

// A reservation due on the node in a few minutes ends the window, and a
// block shaped to the window starts at once and ends before it.
func TestWindowBeforeReservation(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: submits Slurm jobs")
	}
	p := newProvider(t)
	node := strings.TrimSpace(mustRun(t, "sinfo", "--noheader", "--partition="+p.c.Partition, "--format=%N"))
	name := "fxd-test-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	mustRun(t, "scontrol", "create", "reservation", "ReservationName="+name, "StartTime=now+12minutes", "Duration=30",
		"Nodes="+node, "Users=root", "Flags=ignore_jobs")
	t.Cleanup(func() { exec.Command("scontrol", "delete", "ReservationName="+name).Run() })
	resv := reservationStart(t, name)

	like := batch.Block{Name: "fxd-test-window", Nodes: 1, Walltime: time.Hour, Command: []string{"/bin/sleep", "600"}}
	ws, err := p.Windows(t.Context(), like)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws[0].Nodes != 1 || ws[0].Duration < 9*time.Minute || ws[0].Duration > 11*time.Minute {
		t.Fatalf("Windows = %+v, want one of 1 node for 9 to 11 minutes (the reservation starts in 12)", ws)
	}
	nodes, wall, fits := batch.Shape(batch.Bounds{Nodes: 1, Walltime: time.Hour, MinNodes: 1, MaxNodes: 1, MinWalltime: time.Minute}, ws, 1)
	if !fits || nodes != 1 || wall != ws[0].Duration {
		t.Fatalf("Shape = %d nodes, %v, fits %v; want the window", nodes, wall, fits)
	}
	like.Nodes, like.Walltime = nodes, wall
	id, err := p.Submit(t.Context(), like)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Cancel(context.Background(), id) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := p.Poll(t.Context(), []batch.JobID{id})
		if err != nil {
			t.Fatal(err)
		}
		if st[id].State == batch.StateRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shaped block is %+v after 30 s, want it running at once (backfilled)", st[id])
		}
		time.Sleep(200 * time.Millisecond)
	}
	end := mustRun(t, "squeue", "--noheader", "--jobs="+string(id), "--format=%e")
	ends, err := time.ParseInLocation("2006-01-02T15:04:05", strings.TrimSpace(end), time.Local)
	if err != nil {
		t.Fatalf("squeue end time %q: %v", end, err)
	}
	if !ends.Before(resv) {
		t.Errorf("the block ends at %v, not before the reservation at %v", ends, resv)
	}
	// Without room before the reservation's end, a long block does not fit
	// now: only the shaped one does.
	long := like
	long.Walltime = time.Hour
	if ok, err := p.startsNow(t.Context(), long, 1, long.Minutes()); err != nil || ok {
		t.Errorf("startsNow(1 h, with the node taken and a reservation due) = %v, %v; want false", ok, err)
	}
}

// reservationStart is the start time of reservation name.
func reservationStart(t *testing.T, name string) time.Time {
	out := mustRun(t, "scontrol", "show", "reservation", name, "--oneliner")
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "StartTime="); ok {
			ts, err := time.ParseInLocation("2006-01-02T15:04:05", v, time.Local)
			if err != nil {
				t.Fatalf("reservation start %q: %v", v, err)
			}
			return ts
		}
	}
	t.Fatalf("scontrol show reservation: no StartTime in %q", out)
	return time.Time{}
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return string(out)
}
