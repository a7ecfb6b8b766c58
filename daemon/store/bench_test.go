package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"fxd.dev/fxd/api"
)

func benchInput() []byte {
	return []byte(`{"image":"s3://bucket/img-000123.png","width":640,"height":480}`)
}

// BenchmarkCreateTasks measures durable creation by one caller sending
// batches of 1000 tasks; one op is one batch.
func BenchmarkCreateTasks(b *testing.B) {
	s := newStore(b)
	const batch = 1000
	in := benchInput()
	n := 0
	b.ResetTimer()
	for b.Loop() {
		recs := make([]Record, batch)
		for i := range recs {
			recs[i] = Record{Task: queued(taskID("b", n)), Identity: "cn=alice", Input: in}
			n++
		}
		if err := s.CreateTasks(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkCreateTasksParallel measures many callers sending batches of
// 100 tasks at once.
func BenchmarkCreateTasksParallel(b *testing.B) {
	s := newStore(b)
	const batch = 100
	in := benchInput()
	var next, done atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			base := next.Add(batch) - batch
			recs := make([]Record, batch)
			for i := range recs {
				recs[i] = Record{Task: queued(taskID("p", int(base)+i)), Identity: "cn=alice", Input: in}
			}
			if err := s.CreateTasks(context.Background(), recs); err != nil {
				b.Error(err)
				return
			}
			done.Add(batch)
		}
	})
	b.ReportMetric(float64(done.Load())/b.Elapsed().Seconds(), "tasks/s")
	b.ReportMetric(float64(done.Load())/float64(s.commits.Load()), "tasks/commit")
}

// BenchmarkUpdateTasksParallel measures many goroutines (GOMAXPROCS*128)
// each updating one task per call, as the dispatcher does.
func BenchmarkUpdateTasksParallel(b *testing.B) {
	s := newStore(b)
	const tasks = 20000
	recs := make([]Record, tasks)
	for i := range recs {
		recs[i] = Record{Task: queued(taskID("u", i)), Input: benchInput()}
	}
	for i := 0; i < tasks; i += 1000 {
		mustCreate(b, s, recs[i:i+1000]...)
	}
	var next, done atomic.Int64
	b.SetParallelism(128)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			t := recs[i%tasks].Task
			t.State, t.Attempts, t.Worker = api.StateRunning, int(i/tasks)+1, fmt.Sprintf("w%d", i%64)
			if err := s.UpdateTasks(context.Background(), []api.Task{t}); err != nil {
				b.Error(err)
				return
			}
			done.Add(1)
		}
	})
	b.ReportMetric(float64(done.Load())/b.Elapsed().Seconds(), "tasks/s")
	b.ReportMetric(float64(done.Load())/float64(s.commits.Load()), "tasks/commit")
}

// BenchmarkUpdateTasksLone measures one caller updating one task per
// call: the latency of a lone commit (no added delay, one fsync).
func BenchmarkUpdateTasksLone(b *testing.B) {
	s := newStore(b)
	task := queued(taskID("l", 0))
	mustCreate(b, s, Record{Task: task})
	task.State = api.StateRunning
	for b.Loop() {
		task.Attempts++
		if err := s.UpdateTasks(context.Background(), []api.Task{task}); err != nil {
			b.Fatal(err)
		}
	}
}
