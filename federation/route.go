package federation

import (
	"fmt"
	"slices"
	"strings"

	"fxd.dev/fxd/api"
)

// Candidate is a peer as routing sees it: whether it answered lately and
// what it offered then.
type Candidate struct {
	Name    string
	Healthy bool
	Offers  *api.Offers // nil: never answered, or may not discover
}

// Route picks the peer a task for function (as "owner/name") that reads
// the data digests should run at, among candidates: a healthy peer that
// offers the function; of those, the one whose cache holds the most of
// the data, then the least loaded (running and queued tasks per slot),
// then by name, so that equal peers get the same choice. The error says
// why no peer fits and what would.
func Route(candidates []Candidate, function string, data []string) (string, error) {
	best, bestHeld, bestLoad := "", -1, 0.0
	var down []string
	for _, c := range candidates {
		if c.Offers == nil || !offers(c.Offers, function) {
			continue
		}
		if !c.Healthy {
			down = append(down, c.Name)
			continue
		}
		held := 0
		for _, d := range data {
			if slices.Contains(c.Offers.Data, d) {
				held++
			}
		}
		load := loadOf(c.Offers.Capacity)
		if held > bestHeld || held == bestHeld && (load < bestLoad || load == bestLoad && c.Name < best) {
			best, bestHeld, bestLoad = c.Name, held, load
		}
	}
	if best != "" {
		return best, nil
	}
	if len(down) > 0 {
		return "", fmt.Errorf("site any: the peers that offer %s (%s) cannot be reached now; retry later, or fx sites shows their health: %w",
			function, strings.Join(down, ", "), api.ErrUnavailable)
	}
	return "", fmt.Errorf("site any: no peer offers function %s (give it as owner/name; fx sites lists what each peer offers): %w", function, api.ErrNotFound)
}

func offers(o *api.Offers, function string) bool {
	return slices.ContainsFunc(o.Functions, func(f api.OfferedFunction) bool { return f.Ref == function })
}

// loadOf is a peer's tasks per slot; a peer with no slots now (its pools
// scale from zero) counts as if it had one.
func loadOf(c api.Capacity) float64 {
	return float64(c.Running+c.Queued) / float64(max(c.Slots, 1))
}
