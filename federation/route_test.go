package federation

import (
	"errors"
	"strings"
	"testing"

	"fxd.dev/fxd/api"
)

func offering(fns []string, data []string, c api.Capacity) *api.Offers {
	o := &api.Offers{Data: data, Capacity: c}
	for _, f := range fns {
		o.Functions = append(o.Functions, api.OfferedFunction{Ref: f})
	}
	return o
}

// Route prefers the peer that holds the most of the task's data, then the
// least loaded, then the first by name, among healthy peers that offer
// the function.
func TestRoute(t *testing.T) {
	idle := api.Capacity{Slots: 4}
	busy := api.Capacity{Slots: 4, Running: 4, Queued: 8}
	const fn, d1, d2 = "bob/analyse", "sha256:11", "sha256:22"
	tests := []struct {
		name       string
		candidates []Candidate
		data       []string
		want       string
		wantErr    error
	}{
		{"by name when equal", []Candidate{
			{Name: "c", Healthy: true, Offers: offering([]string{fn}, nil, idle)},
			{Name: "b", Healthy: true, Offers: offering([]string{fn}, nil, idle)},
		}, nil, "b", nil},
		{"least loaded", []Candidate{
			{Name: "b", Healthy: true, Offers: offering([]string{fn}, nil, busy)},
			{Name: "c", Healthy: true, Offers: offering([]string{fn}, nil, idle)},
		}, nil, "c", nil},
		{"a peer with no slots counts as one", []Candidate{
			{Name: "b", Healthy: true, Offers: offering([]string{fn}, nil, api.Capacity{Queued: 2})},
			{Name: "c", Healthy: true, Offers: offering([]string{fn}, nil, api.Capacity{Slots: 1, Queued: 1})},
		}, nil, "c", nil},
		{"data over load", []Candidate{
			{Name: "b", Healthy: true, Offers: offering([]string{fn}, nil, idle)},
			{Name: "c", Healthy: true, Offers: offering([]string{fn}, []string{d1}, busy)},
		}, []string{d1}, "c", nil},
		{"most of the data", []Candidate{
			{Name: "b", Healthy: true, Offers: offering([]string{fn}, []string{d1}, idle)},
			{Name: "c", Healthy: true, Offers: offering([]string{fn}, []string{d1, d2}, busy)},
		}, []string{d1, d2}, "c", nil},
		{"only who offers the function", []Candidate{
			{Name: "b", Healthy: true, Offers: offering([]string{"bob/other"}, []string{d1}, idle)},
			{Name: "c", Healthy: true, Offers: offering([]string{fn}, nil, busy)},
		}, []string{d1}, "c", nil},
		{"not a down peer", []Candidate{
			{Name: "b", Healthy: false, Offers: offering([]string{fn}, []string{d1}, idle)},
			{Name: "c", Healthy: true, Offers: offering([]string{fn}, nil, busy)},
		}, []string{d1}, "c", nil},
		{"all that offer it are down", []Candidate{
			{Name: "b", Healthy: false, Offers: offering([]string{fn}, nil, idle)},
			{Name: "c", Healthy: true, Offers: nil},
		}, nil, "", api.ErrUnavailable},
		{"nobody offers it", []Candidate{
			{Name: "b", Healthy: true, Offers: offering([]string{"bob/other"}, nil, idle)},
		}, nil, "", api.ErrNotFound},
		{"no peers", nil, nil, "", api.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Route(tt.candidates, fn, tt.data)
			if got != tt.want || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Route = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), fn) {
				t.Errorf("error %q does not name the function", err)
			}
		})
	}
}
