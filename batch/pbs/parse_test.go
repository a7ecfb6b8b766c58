package pbs

import (
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/batch"
)

// Every job_state letter PBS has maps to a state, with PBS's comment,
// or words for the state, and for ended jobs how they ended.
func TestJobStates(t *testing.T) {
	for _, tc := range []struct {
		name, job string
		want      batch.Status
	}{
		{"queued", `"job_state":"Q","comment":"Not Running: Insufficient amount of resource: ncpus"`,
			batch.Status{State: batch.StatePending, Reason: "Not Running: Insufficient amount of resource: ncpus"}},
		{"queued, no comment", `"job_state":"Q"`, batch.Status{State: batch.StatePending, Reason: "queued"}},
		{"held", `"job_state":"H","comment":"job held, too many failed attempts to run","Exit_status":-3`,
			batch.Status{State: batch.StatePending, Reason: "job held, too many failed attempts to run"}},
		{"waiting", `"job_state":"W"`, batch.Status{State: batch.StatePending, Reason: "waiting for its start time"}},
		{"in transit", `"job_state":"T"`, batch.Status{State: batch.StatePending, Reason: "in transit"}},
		{"suspended", `"job_state":"S","exec_host":"cn001/0"`, batch.Status{State: batch.StatePending, Reason: "suspended"}},
		{"workstation busy", `"job_state":"U"`, batch.Status{State: batch.StatePending, Reason: "suspended while its workstation is busy"}},
		{"array begun", `"job_state":"B"`, batch.Status{State: batch.StatePending, Reason: "begun"}},
		{"running", `"job_state":"R","exec_host":"cn001/0*128+cn002/0*128","exec_vnode":"(cn001:ncpus=128)+(cn002:ncpus=128)"`,
			batch.Status{State: batch.StateRunning, Nodes: []string{"cn001", "cn002"}}},
		{"running, exec_host2", `"job_state":"R","exec_host":"zenon41.cerit-sc.cz:15002/12+zenon41.cerit-sc.cz:15002/13"`,
			batch.Status{State: batch.StateRunning, Nodes: []string{"zenon41.cerit-sc.cz"}}},
		{"running, vnodes only", `"job_state":"R","exec_vnode":"(bigmem[0]:ncpus=64+bigmem[1]:mem=1gb)+(cn003:ncpus=1)"`,
			batch.Status{State: batch.StateRunning, Nodes: []string{"bigmem[0]", "bigmem[1]", "cn003"}}},
		{"exiting", `"job_state":"E","exec_host":"cn001/0","Exit_status":0`,
			batch.Status{State: batch.StateDone, Nodes: []string{"cn001"}, Reason: "exit 0"}},
		{"finished", `"job_state":"F","exec_host":"cn001/0","Exit_status":1,"comment":"Job run at Mon Jun 03 at 10:00 on (cn001:ncpus=1) and finished"`,
			batch.Status{State: batch.StateDone, Nodes: []string{"cn001"}, Reason: "exit 1: Job run at Mon Jun 03 at 10:00 on (cn001:ncpus=1) and finished"}},
		{"killed", `"job_state":"F","Exit_status":271`, batch.Status{State: batch.StateDone, Reason: "exit 271 (signal 15)"}},
		{"never ran", `"job_state":"F","Exit_status":-1`, batch.Status{State: batch.StateDone, Reason: "exit -1 (PBS could not run the job; see tracejob)"}},
		{"deleted queued", `"job_state":"F"`, batch.Status{State: batch.StateDone, Reason: "finished"}},
		{"subjob finished", `"job_state":"X","Exit_status":"0"`, batch.Status{State: batch.StateDone, Reason: "exit 0"}},
		{"moved", `"job_state":"M","comment":"Job moved to pbs02"`, batch.Status{State: batch.StateDone, Reason: "moved to another server: Job moved to pbs02"}},
		{"a letter new to fxd", `"job_state":"Z"`, batch.Status{State: batch.StatePending, Reason: "job_state Z, new to fxd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := `{"Jobs":{"7.pbs01":{` + tc.job + `}}}`
			got, err := parseQstat([]byte(out))
			if g := got["7.pbs01"]; err != nil || g.State != tc.want.State || g.Reason != tc.want.Reason || !slices.Equal(g.Nodes, tc.want.Nodes) {
				t.Errorf("parseQstat(%q) = %+v, %v; want %+v", out, g, err, tc.want)
			}
		})
	}
}

// The recorded outputs read as what they show.
func TestParseQstatRecorded(t *testing.T) {
	for file, want := range map[string]map[string]batch.Status{
		"testdata/qstat/polaris-2022.1.json": {
			"359322.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov": {State: batch.StatePending, Reason: "Not Running: Job is requesting an exclusive node and node is in use"},
			"412020.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov": {State: batch.StatePending, Reason: "job held, too many failed attempts to run"},
			"1147579.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov": {State: batch.StateRunning,
				Nodes: []string{"x3006c0s31b1n0", "x3006c0s37b0n0", "x3006c0s37b1n0", "x3006c0s7b0n0"}},
		},
		"testdata/qstat/finished-2022.0.json": {
			"2154.edtb-01.mcp.alcf.anl.gov": {State: batch.StateDone, Nodes: []string{"edtb-01"},
				Reason: "exit 0: Job run at Mon Jan 24 at 08:39 on (edtb-01[0]:ncpus=1) and finished"},
			"2160.edtb-01.mcp.alcf.anl.gov": {State: batch.StateDone, Nodes: []string{"edtb-02", "edtb-03"},
				Reason: "exit 271 (signal 15): Job run at Mon Jan 24 at 09:02 on (edtb-02:ncpus=2)+(edtb-03:ncpus=2) and terminated"},
		},
		// \' and \, in values and a bare 005: repaired, then read.
		"testdata/qstat/quirks-19.1.json": {
			"4.scheduler": {State: batch.StateRunning, Nodes: []string{"execute-2"}},
		},
	} {
		out, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseQstat(out)
		if err != nil {
			t.Errorf("parseQstat(%s) = %v", file, err)
			continue
		}
		if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
			t.Errorf("parseQstat(%s) lists %v, want %v", file, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
		}
		for id, w := range want {
			if g := got[id]; g.State != w.State || g.Reason != w.Reason || !slices.Equal(g.Nodes, w.Nodes) {
				t.Errorf("parseQstat(%s): %s = %+v, want %+v", file, id, g, w)
			}
		}
	}
}

func TestParseQstatBad(t *testing.T) {
	for name, out := range map[string]string{
		"nothing":             "",
		"words":               "qstat: cannot connect to server pbs01 (errno=15010)\n",
		"html":                "<html><body>maintenance</body></html>",
		"cut short":           `{"timestamp":1717405200,"Jobs":{"7.pbs01":{"job_state":"R","exec_h`,
		"no state":            `{"Jobs":{"7.pbs01":{"exec_host":"cn001/0"}}}`,
		"a word for a state":  `{"Jobs":{"7.pbs01":{"job_state":"Running"}}}`,
		"a number for state":  `{"Jobs":{"7.pbs01":{"job_state":5}}}`,
		"jobs as a list":      `{"Jobs":["7.pbs01"]}`,
		"a job as a string":   `{"Jobs":{"7.pbs01":"R"}}`,
		"exit not a number":   `{"Jobs":{"7.pbs01":{"job_state":"F","Exit_status":"killed"}}}`,
		"exit a fraction":     `{"Jobs":{"7.pbs01":{"job_state":"F","Exit_status":1.5}}}`,
		"a job of null":       `{"Jobs":{"7.pbs01":null}}`,
		"two documents glued": `{"Jobs":{}}{"Jobs":{}}`,
	} {
		if got, err := parseQstat([]byte(out)); !errors.Is(err, batch.ErrBadOutput) {
			t.Errorf("parseQstat(%s: %q) = %v, %v; want batch.ErrBadOutput", name, out, got, err)
		}
	}
	if got, err := parseQstat([]byte("{\n    \"timestamp\":1717405200,\n    \"pbs_version\":\"2023.1.1\",\n    \"pbs_server\":\"pbs01\"\n}")); err != nil || len(got) != 0 {
		t.Errorf("parseQstat(the header alone) = %v, %v; want no jobs", got, err)
	}
}

// pbsnodes -a shows hosts; the free ones are those a block of the queue
// could have whole, with the reservations booked on them.
func TestFreeHosts(t *testing.T) {
	cluster := map[string][]string{"cn001": nil, "cn002": nil, "fat": nil, "cn011": {"R5310.pbs01"},
		"cn012": {"R5310.pbs01", "M5320.pbs01"}, "cn013": {"M5320.pbs01"}}
	gpu := maps.Clone(cluster)
	gpu["cn008"] = nil
	for _, tc := range []struct {
		file, queue string
		want        map[string][]string
	}{
		{"testdata/pbsnodes/cluster-2023.1.json", "", cluster},
		{"testdata/pbsnodes/cluster-2023.1.json", "workq", cluster},
		{"testdata/pbsnodes/cluster-2023.1.json", "gpu", gpu},
		{"testdata/pbsnodes/polaris-2022.1.json", "", map[string][]string{
			"x3006c0s13b1n0": {"M1150389.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov"}}},
		// An unescaped quote in a comment, \, and \': repaired, then read.
		{"testdata/pbsnodes/quirks-19.1.json", "", map[string][]string{"zenon1": nil, "zenon2": nil}},
	} {
		out, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := freeHosts(out, tc.queue)
		if err != nil || !maps.EqualFunc(got, tc.want, slices.Equal) {
			t.Errorf("freeHosts(%s, queue %q) = %v, %v; want %v", tc.file, tc.queue, got, err, tc.want)
		}
	}
	// Entries of one host (pbsnodes -av) are one host, free when all are.
	vnodes := `{"nodes":{
		"big[0]":{"state":"free","resources_available":{"host":"big"},"resources_assigned":{}},
		"big[1]":{"state":"job-busy","jobs":["9.pbs01"],"resources_available":{"host":"big"},"resources_assigned":{"ncpus":64}},
		"two[0]":{"state":"free","resources_available":{"host":"two"},"resources_assigned":{"ncpus":"0"}},
		"two[1]":{"state":"free","resv":"","resources_available":{"host":"two"}}}}`
	if got, err := freeHosts([]byte(vnodes), ""); err != nil || !maps.EqualFunc(got, map[string][]string{"two": nil}, slices.Equal) {
		t.Errorf("freeHosts(vnodes) = %v, %v; want two alone", got, err)
	}
	for name, out := range map[string]string{
		"nothing":         "",
		"no nodes":        `{"timestamp":1717405200,"pbs_version":"2023.1.1","pbs_server":"pbs01"}`,
		"no state":        `{"nodes":{"cn001":{"resources_available":{"host":"cn001"}}}}`,
		"state of null":   `{"nodes":{"cn001":{"state":null}}}`,
		"jobs a number":   `{"nodes":{"cn001":{"state":"free","jobs":5}}}`,
		"nodes a list":    `{"nodes":["cn001"]}`,
		"ncpus a word":    `{"nodes":{"cn001":{"state":"free","resources_assigned":{"ncpus":"many"}}}}`,
		"cut short":       `{"nodes":{"cn001":{"state":"fr`,
		"a wrapper's say": "Welcome to the cluster!\n{\"nodes\":{}}",
	} {
		if got, err := freeHosts([]byte(out), ""); !errors.Is(err, batch.ErrBadOutput) {
			t.Errorf("freeHosts(%s: %q) = %v, %v; want batch.ErrBadOutput", name, out, got, err)
		}
	}
}

// rstatAt is the pbs_rstat recording with its times set around now, as
// testdata/bin/pbs_rstat sets them.
func rstatAt(t *testing.T, now time.Time) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/pbs_rstat/cluster-2023.1.txt")
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) string { return now.Add(d).Format(rstatTime) }
	return []byte(strings.NewReplacer(
		"@RUNNING_START@", at(-time.Hour), "@RUNNING_END@", at(time.Hour),
		"@SOON_START@", at(40*time.Minute), "@SOON_END@", at(100*time.Minute),
		"@MAINT_START@", at(72*time.Hour), "@MAINT_END@", at(80*time.Hour),
	).Replace(string(b)))
}

func TestParseRstat(t *testing.T) {
	now := time.Date(2024, 6, 3, 10, 0, 0, 0, time.Local)
	got, err := parseRstat(rstatAt(t, now))
	want := map[string]time.Time{"R5290.pbs01": now.Add(-time.Hour), "R5310.pbs01": now.Add(40 * time.Minute), "M5320.pbs01": now.Add(72 * time.Hour)}
	if err != nil || !maps.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("parseRstat = %v, %v; want %v", got, err, want)
	}
	if got, err := parseRstat(nil); err != nil || len(got) != 0 {
		t.Errorf("parseRstat(no reservations) = %v, %v; want none", got, err)
	}
	for name, out := range map[string]string{
		"not a time":      "Resv ID: R1.pbs01\nreserve_start = tomorrow\n",
		"no start":        "Resv ID: R1.pbs01\nqueue = R1\n\nResv ID: R2.pbs01\nreserve_start = Mon Jun 03 12:00:00 2024\n",
		"no start at end": "Resv ID: R1.pbs01\nqueue = R1\n",
		"no id first":     "reserve_start = Mon Jun 03 12:00:00 2024\n",
		"words":           "pbs_rstat: cannot connect to server\n",
		"twice":           "Resv ID: R1.pbs01\nreserve_start = Mon Jun 03 12:00:00 2024\nResv ID: R1.pbs01\nreserve_start = Mon Jun 03 12:00:00 2024\n",
		"empty id":        "Resv ID: \nreserve_start = Mon Jun 03 12:00:00 2024\n",
	} {
		if got, err := parseRstat([]byte(out)); !errors.Is(err, batch.ErrBadOutput) {
			t.Errorf("parseRstat(%s: %q) = %v, %v; want batch.ErrBadOutput", name, out, got, err)
		}
	}
}

// Hosts stay free until resvSlack before their first reservation; the
// windows give all of them for the shortest time, fewer for longer.
func TestWindows(t *testing.T) {
	now := time.Date(2024, 6, 3, 10, 0, 0, 0, time.Local)
	starts, err := parseRstat(rstatAt(t, now))
	if err != nil {
		t.Fatal(err)
	}
	free := map[string][]string{"a": nil, "b": nil, "soon": {"R5310.pbs01"}, "soon2": {"M5320.pbs01", "R5310"},
		"later": {"M5320.pbs01"}, "running": {"R5290.pbs01"}, "unknown": {"R9999.pbs01"}, "various": {"<various>"}}
	soon := 38 * time.Minute
	for _, tc := range []struct {
		name string
		like batch.Block
		want []batch.Window
	}{
		{"an hour", batch.Block{Nodes: 10, Walltime: time.Hour}, []batch.Window{{Nodes: 3}, {Nodes: 5, Duration: soon}}},
		{"a week", batch.Block{Nodes: 10, Walltime: 7 * 24 * time.Hour},
			[]batch.Window{{Nodes: 2}, {Nodes: 3, Duration: 72*time.Hour - resvSlack}, {Nodes: 5, Duration: soon}}},
		{"38 minutes", batch.Block{Nodes: 10, Walltime: soon}, []batch.Window{{Nodes: 5}}},
		{"three nodes", batch.Block{Nodes: 3, Walltime: time.Hour}, []batch.Window{{Nodes: 3}}},
		{"four nodes", batch.Block{Nodes: 4, Walltime: time.Hour}, []batch.Window{{Nodes: 3}, {Nodes: 4, Duration: soon}}},
		{"one node", batch.Block{Nodes: 1, Walltime: time.Hour}, []batch.Window{{Nodes: 1}}},
	} {
		if got := windows(free, starts, now, tc.like); !slices.Equal(got, tc.want) {
			t.Errorf("windows(%s) = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if got := windows(map[string][]string{"soon": {"R5310.pbs01"}, "running": {"R5290.pbs01"}}, starts, now,
		batch.Block{Nodes: 2, Walltime: time.Hour}); !slices.Equal(got, []batch.Window{{Nodes: 1, Duration: soon}}) {
		t.Errorf("windows(one host booked soon) = %+v, want 1 node for %v", got, soon)
	}
	if got := windows(nil, nil, now, batch.Block{Nodes: 2, Walltime: time.Hour}); len(got) != 0 {
		t.Errorf("windows(no free host) = %+v, want none", got)
	}
}

func TestParseSubmit(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      batch.JobID
	}{
		{"plain", "1234.pbs01\n", "1234.pbs01"},
		{"long server", "359322.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov\n", "359322.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov"},
		{"a wrapper's notice first", "Job submitted to the debug queue; see the site docs\n77.pbs01\n", "77.pbs01"},
		{"empty", "", ""},
		{"words", "qsub: Unknown queue\n", ""},
		{"an array", "12[].pbs01\n", ""},
	} {
		id, err := parseSubmit([]byte(tc.out))
		if id != tc.want || (tc.want == "") != errors.Is(err, batch.ErrBadOutput) {
			t.Errorf("parseSubmit(%s: %q) = %q, %v; want %q", tc.name, tc.out, id, err, tc.want)
		}
	}
}

func FuzzQstat(f *testing.F) {
	// Small seeds: the fuzzer minimizes each input it finds, slowly when
	// they are large; TestParseQstatRecorded reads the large recordings.
	b, err := os.ReadFile("testdata/qstat/quirks-19.1.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"timestamp":1717405200,"Jobs":{"2160.edtb-01":{"job_state":"F","exec_host":"edtb-02/0*2+edtb-03/0*2","Exit_status":271,"comment":"Job run at Mon Jan 24 and terminated"}}}`))
	f.Add([]byte(`{"Jobs":{"7.pbs01":{"job_state":"R","exec_host":"a/0+b:15002/1","exec_vnode":"(a:ncpus=1)","Exit_status":+5,"x":"\q\"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		listed, err := parseQstat(b)
		if err != nil && !errors.Is(err, batch.ErrBadOutput) {
			t.Fatalf("parseQstat = %v, not batch.ErrBadOutput", err)
		}
		for id, st := range listed {
			if st.State != batch.StatePending && st.State != batch.StateRunning && st.State != batch.StateDone {
				t.Fatalf("parseQstat: job %q in state %q", id, st.State)
			}
		}
		repair(b)
	})
}

func FuzzPbsnodes(f *testing.F) {
	b, err := os.ReadFile("testdata/pbsnodes/quirks-19.1.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"nodes":{"fat":{"state":"free","jobs":["5304.pbs01"],"resv":"R1.pbs01, M2.pbs01","queue":"gpu","resources_available":{"host":"fat"},"resources_assigned":{"ncpus":64}}}}`))
	f.Add([]byte("Resv ID: R1.pbs01\nreserve_start = Mon Jun 03 12:00:00 2024\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		now := time.Date(2024, 6, 3, 10, 0, 0, 0, time.Local)
		free, err := freeHosts(b, "")
		if err != nil && !errors.Is(err, batch.ErrBadOutput) {
			t.Fatalf("freeHosts = %v, not batch.ErrBadOutput", err)
		}
		starts, err := parseRstat(b)
		if err != nil && !errors.Is(err, batch.ErrBadOutput) {
			t.Fatalf("parseRstat = %v, not batch.ErrBadOutput", err)
		}
		like := batch.Block{Nodes: 4, Walltime: time.Hour}
		for _, w := range windows(free, starts, now, like) {
			if w.Nodes < 1 || w.Nodes > like.Nodes || w.Duration < 0 || w.Duration >= like.Walltime {
				t.Fatalf("windows: %+v outside 1..4 nodes, 0..1h", w)
			}
		}
	})
}

// Find's reading of a listing of the server's jobs (recorded in the shape
// OpenPBS 2023.1 prints): the jobs of the name, of the owner, that have
// not ended (held and queued ones pend; an exiting one has ended).
func TestParseFind(t *testing.T) {
	out, err := os.ReadFile("testdata/qstat/find-2023.1.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, job, owner string
		want             []batch.JobID
	}{
		{"ours", "fxd-cpu-7", "fxd", []batch.JobID{"2001.pbs01", "2002.pbs01", "2007.pbs01"}},
		{"another user's", "fxd-cpu-7", "alice", []batch.JobID{"2003.pbs01"}},
		{"a longer name", "fxd-cpu-70", "fxd", []batch.JobID{"2004.pbs01"}},
		{"a prefix of names", "fxd-cpu", "fxd", nil},
		{"another user's name", "vasp-relax", "fxd", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFind(out, tc.job, tc.owner)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("parseFind(%s, %s) = %q, %v; want %q", tc.job, tc.owner, got, err, tc.want)
			}
		})
	}
	for name, bad := range map[string]string{
		"not JSON":      "<html>maintenance</html>",
		"cut short":     `{"Jobs":{"1.pbs01":{"Job_Name":"fxd-cpu-7"`,
		"no state":      `{"Jobs":{"1.pbs01":{"Job_Name":"fxd-cpu-7","Job_Owner":"fxd@login01"}}}`,
		"a state word":  `{"Jobs":{"1.pbs01":{"Job_Name":"fxd-cpu-7","Job_Owner":"fxd@login01","job_state":"Running"}}}`,
		"a name number": `{"Jobs":{"1.pbs01":{"Job_Name":7,"Job_Owner":"fxd@login01","job_state":"Q"}}}`,
		"not an id":     `{"Jobs":{"x.pbs01":{"Job_Name":"fxd-cpu-7","Job_Owner":"fxd@login01","job_state":"Q"}}}`,
		"an array":      `{"Jobs":{"12[].pbs01":{"Job_Name":"fxd-cpu-7","Job_Owner":"fxd@login01","job_state":"B"}}}`,
	} {
		if got, err := parseFind([]byte(bad), "fxd-cpu-7", "fxd"); !errors.Is(err, batch.ErrBadOutput) {
			t.Errorf("parseFind(%s) = %q, %v; want batch.ErrBadOutput", name, got, err)
		}
	}
	// by sequence number, not as strings; another user's malformed id is
	// none of Find's business
	order := `{"Jobs":{"1000.pbs01":{"Job_Name":"fxd-cpu-7","Job_Owner":"fxd@login01","job_state":"R"},` +
		`"999.pbs01":{"Job_Name":"fxd-cpu-7","Job_Owner":"fxd@login01","job_state":"Q"},` +
		`"12[].pbs01":{"Job_Name":"array","Job_Owner":"alice@login01","job_state":"B"}}}`
	if got, err := parseFind([]byte(order), "fxd-cpu-7", "fxd"); err != nil || !slices.Equal(got, []batch.JobID{"999.pbs01", "1000.pbs01"}) {
		t.Errorf("parseFind(999 and 1000) = %q, %v; want [999.pbs01 1000.pbs01], oldest first", got, err)
	}
	if got, err := parseFind([]byte("{\n    \"timestamp\":1717408931,\n    \"pbs_version\":\"2023.1.1\",\n    \"pbs_server\":\"pbs01\"\n}"), "fxd-cpu-7", "fxd"); err != nil || got != nil {
		t.Errorf("parseFind(header alone) = %q, %v; want none", got, err)
	}
}

// Find's reading of qstat -f -F json never panics and returns only job
// ids that Poll and Cancel take, oldest first, or batch.ErrBadOutput.
func FuzzFind(f *testing.F) {
	b, err := os.ReadFile("testdata/qstat/find-2023.1.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, "fxd-cpu-7", "fxd")
	f.Add([]byte(`{"Jobs":{"1000.pbs01":{"Job_Name":"fxd-cpu-7","Job_Owner":"fxd@login01","job_state":"R"},"999.pbs01":{"Job_Name":"fxd-cpu-7","Job_Owner":"fxd@login01","job_state":"Q"}}}`), "fxd-cpu-7", "fxd")
	f.Add([]byte(`{"Jobs":{"12[].pbs01":{"Job_Name":"fxd-cpu-7","Job_Owner":"fxd@login01","job_state":"B"},"x":{"Job_Name":"fxd-cpu-7","Job_Owner":"fxd","job_state":"Q"}}}`), "fxd-cpu-7", "fxd")
	f.Add([]byte("{\n    \"timestamp\":1717408931,\n    \"pbs_version\":\"2023.1.1\",\n    \"pbs_server\":\"pbs01\"\n}"), "fxd-cpu-7", "fxd")
	f.Fuzz(func(t *testing.T, out []byte, name, owner string) {
		ids, err := parseFind(out, name, owner)
		if err != nil {
			if !errors.Is(err, batch.ErrBadOutput) || ids != nil {
				t.Fatalf("parseFind = %q, %v; want no ids and batch.ErrBadOutput", ids, err)
			}
			return
		}
		for _, id := range ids {
			if !jobIDRE.MatchString(string(id)) {
				t.Fatalf("parseFind = %q: %q is not a PBS job id", ids, id)
			}
		}
		if !slices.IsSortedFunc(ids, batch.CompareJobIDs) {
			t.Fatalf("parseFind = %q, not oldest first", ids)
		}
	})
}
