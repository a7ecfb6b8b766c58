package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/internal/testenv"
)

func TestSnapshotVersion(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	for _, c := range []struct {
		name string
		c    *commit
		want string
	}{
		{"no git", nil, "0.2.0"},
		{"tagged, clean", &commit{sha: "abc1234", time: at, tags: []string{"v0.2.0"}}, "0.2.0"},
		{"tagged, dirty", &commit{sha: "abc1234", time: at, tags: []string{"v0.2.0"}, dirty: true}, "0.2.0~git20260102020405.abc1234.dirty"},
		{"another tag", &commit{sha: "abc1234", time: at, tags: []string{"v0.1.0", "latest"}}, "0.2.0~git20260102020405.abc1234"},
		{"untagged", &commit{sha: "abc1234", time: at}, "0.2.0~git20260102020405.abc1234"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := snapshotVersion("0.2.0", c.c)
			if got != c.want {
				t.Errorf("snapshotVersion(0.2.0, %+v) = %q, want %q", c.c, got, c.want)
			}
			if err := checkVersion(got); err != nil {
				t.Errorf("checkVersion(%q) = %v", got, err)
			}
		})
	}
}

func TestCheckVersion(t *testing.T) {
	for v, ok := range map[string]bool{
		"1.2.0": true, "1.2.0~rc1": true, "0.1.0+ci1": true, "0.1.0~git20260102030405.abc1234.dirty": true,
		"": false, "v1.2.0": false, "1.2.0-1": false, "1:1.2.0": false, "1.2_0": false, "1.2.0 ": false, "~1": false,
	} {
		if err := checkVersion(v); (err == nil) != ok {
			t.Errorf("checkVersion(%q) = %v, want ok %v", v, err, ok)
		}
	}
}

// The versions sort as doc.go says, in dpkg and in rpm alike: a snapshot
// before its release and after the release before, later commits later,
// and the CI's override (VERSION+ci1) after both.
func TestVersionOrder(t *testing.T) {
	dpkg := testenv.RequireCommand(t, "dpkg")
	rpm := testenv.RequireCommand(t, "rpm")
	ordered := []string{
		"0.1.0",
		"0.2.0~git20260102030405.abc1234",
		"0.2.0~git20260102030405.abc1234.dirty",
		"0.2.0~git20260103000000.0123456",
		"0.2.0",
		"0.2.0+ci1",
		"0.2.1~git20260104000000.fedcba9",
	}
	for i := 1; i < len(ordered); i++ {
		lo, hi := ordered[i-1], ordered[i]
		if err := exec.Command(dpkg, "--compare-versions", hi, "gt", lo).Run(); err != nil {
			t.Errorf("dpkg: %s is not newer than %s", hi, lo)
		}
		out, err := exec.Command(rpm, "--eval", "%{lua: print(rpm.vercmp('"+hi+"', '"+lo+"'))}").Output()
		if err != nil || strings.TrimSpace(string(out)) != "1" {
			t.Errorf("rpm: vercmp(%s, %s) = %q, %v; want 1 (newer)", hi, lo, out, err)
		}
	}
}

func TestRoff(t *testing.T) {
	for in, want := range map[string]string{
		"-config file":       `\-config file`,
		`.dot first`:         `\&.dot first`,
		`'quote first`:       `\&'quote first`,
		`back\slash`:         `back\eslash`,
		"4 × slots":          `4 \[u00D7] slots`,
		"tab\tseparated":     "tab\tseparated",
		"usage: fxd COMMAND": "usage: fxd COMMAND",
	} {
		if got := roffLine(in); got != want {
			t.Errorf("roffLine(%q) = %q, want %q", in, got, want)
		}
	}
	usage := "usage: fxd COMMAND\n\ncommands:\n  serve     run\n  config    check\n    more text\n  version   print\n\nend\n"
	if got := strings.Join(commandsOf(usage, "commands:"), " "); got != "serve config version" {
		t.Errorf("commandsOf = %q, want serve config version", got)
	}
}
