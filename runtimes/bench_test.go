package runtimes

import (
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"fxd.dev/fxd/api"
	"fxd.dev/fxd/conf"
)

// BenchmarkServableRoundTrip is one task on a warm servable worker (the
// Python example of docs/servable.md).
func BenchmarkServableRoundTrip(b *testing.B) {
	f := newFixture(b, conf.Workers{})
	j := f.servable(python(b, "upper.py")...).with("hello")
	if res := f.pools.Run(b.Context(), j, 1); res.State != api.StateSucceeded {
		b.Fatalf("Run = %+v", res)
	}
	for b.Loop() {
		if res := f.pools.Run(b.Context(), j, 1); res.State != api.StateSucceeded || res.Cold {
			b.Fatalf("Run = %+v", res)
		}
	}
}

// BenchmarkCommandTask is one /bin/true task on a warm command worker:
// the shim's fork/exec plus the frames and the daemon's checks.
func BenchmarkCommandTask(b *testing.B) {
	f := newFixture(b, conf.Workers{})
	j := f.command("/bin/true")
	if res := f.pools.Run(b.Context(), j, 1); res.State != api.StateSucceeded {
		b.Fatalf("Run = %+v", res)
	}
	for b.Loop() {
		if res := f.pools.Run(b.Context(), j, 1); res.State != api.StateSucceeded || res.Cold {
			b.Fatalf("Run = %+v", res)
		}
	}
}

// BenchmarkForkExecTrue is the machine's reference: a plain fork/exec of
// /bin/true from Go.
func BenchmarkForkExecTrue(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRuntimes compares the host and the container runtimes, for one
// task on a warm worker (a /bin/true command, and the static upper
// servable that both run) and for a cold start (a /bin/true command task
// on a worker started for it, which the benchmark stops before the next).
// Cold reports the median too (p50-ms).
func BenchmarkRuntimes(b *testing.B) {
	upper := filepath.Join(binDir, "upper")
	b.Run("host", func(b *testing.B) {
		f := newFixture(b, conf.Workers{IdleTimeout: conf.Duration(time.Hour)})
		benchRuntime(b, f, f.command("/bin/true"), f.servable(upper).with("hello"))
	})
	for _, rt := range []string{"crun", "runc"} {
		b.Run(rt, func(b *testing.B) {
			f := newContainerFixture(b, rt, conf.Workers{IdleTimeout: conf.Duration(time.Hour)})
			benchRuntime(b, f.fixture, in(f.command("/bin/true")), in(f.servable("/usr/bin/upper")).with("hello"))
		})
	}
}

func benchRuntime(b *testing.B, f *fixture, command, servable Job) {
	b.Run("WarmCommand", func(b *testing.B) { benchWarm(b, f, command) })
	b.Run("WarmServable", func(b *testing.B) { benchWarm(b, f, servable) })
	b.Run("ColdCommand", func(b *testing.B) {
		var took []time.Duration
		for b.Loop() {
			start := time.Now()
			res := f.pools.Run(b.Context(), command, 1)
			took = append(took, time.Since(start))
			if res.State != api.StateSucceeded || !res.Cold {
				b.Fatalf("Run = %+v", res)
			}
			b.StopTimer()
			f.pools.reap(time.Now().Add(2 * time.Hour)) // stop the worker: the next task starts cold
			b.StartTimer()
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	})
}

func benchWarm(b *testing.B, f *fixture, j Job) {
	if res := f.pools.Run(b.Context(), j, 1); res.State != api.StateSucceeded {
		b.Fatalf("Run = %+v", res)
	}
	for b.Loop() {
		if res := f.pools.Run(b.Context(), j, 1); res.State != api.StateSucceeded || res.Cold {
			b.Fatalf("Run = %+v", res)
		}
	}
}
