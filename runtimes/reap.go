package runtimes

import (
	"context"
	"time"
)

// Reap stops workers idle for longer than workers.idle_timeout until ctx is
// done; then it returns nil. With no idle timeout it only waits for ctx.
func (p *Pools) Reap(ctx context.Context) error {
	idle := p.cfg.IdleTimeout.D()
	if idle <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(min(max(idle/4, 10*time.Millisecond), 10*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			p.reap(now)
		}
	}
}

// reap stops the workers idle since before now minus the idle timeout and
// returns how many it stopped.
func (p *Pools) reap(now time.Time) int {
	cutoff := now.Add(-p.cfg.IdleTimeout.D())
	var stale []*worker
	p.mu.Lock()
	for _, a := range p.accounts {
		kept := a.idle[:0]
		for _, w := range a.idle {
			if w.idleSince.Before(cutoff) {
				stale = append(stale, w)
				a.n--
				a.wakeFirst() // its room is free
			} else {
				kept = append(kept, w)
			}
		}
		clear(a.idle[len(kept):])
		a.idle = kept
	}
	p.mu.Unlock()
	for _, w := range stale {
		if err := w.stop(); err != nil {
			p.log.Warn().Err(err).Str("worker", w.id).Msg("stop idle worker")
		} else {
			p.log.Debug().Str("worker", w.id).Msg("idle worker stopped")
		}
	}
	return len(stale)
}
