package runtimes

import (
	"os/exec"
	"testing"

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
