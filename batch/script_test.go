package batch

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"fxd.dev/fxd/api"
)

func testBlock() Block {
	return Block{Name: "fxd-cpu-1", Nodes: 2, Walltime: 90 * time.Second, Command: []string{"fxd", "node"}}
}

func TestBlockCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Block)
		says   string
	}{
		{"name with a space", func(b *Block) { b.Name = "fxd cpu" }, "block name"},
		{"empty name", func(b *Block) { b.Name = "" }, "block name"},
		{"no nodes", func(b *Block) { b.Nodes = 0 }, "0 nodes"},
		{"walltime under a minute", func(b *Block) { b.Walltime = 59 * time.Second }, "walltime"},
		{"no command", func(b *Block) { b.Command = nil }, "no command"},
		{"bad env name", func(b *Block) { b.Env = map[string]string{"A-B": "x"} }, "environment name"},
		{"NUL in an env value", func(b *Block) { b.Env = map[string]string{"A": "x\x00y"} }, "NUL"},
		{"NUL in an option", func(b *Block) { b.Options = []string{"--x=\x00"} }, "NUL"},
		{"newline in an init line", func(b *Block) { b.Init = []string{"a\nb"} }, "newline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBlock()
			tc.change(&b)
			if err := b.Check(); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("Check() = %v, want invalid saying %q", err, tc.says)
			}
		})
	}
	if err := testBlock().Check(); err != nil {
		t.Errorf("Check(good block) = %v", err)
	}
	if m := testBlock().Minutes(); m != 2 {
		t.Errorf("Minutes(90s) = %d, want 2 (rounded up)", m)
	}
}

// What Body exports reaches a shell unchanged, however strange.
func TestBody(t *testing.T) {
	b := testBlock()
	strange := "it's $HOME `id` \"q\" \\ \n new line; rm -rf /"
	b.Env = map[string]string{"FXD_TOKEN": strange, "A": ""}
	b.Init = []string{"echo init >&2"}
	script := b.Body() + `printf '%s|%s' "$FXD_TOKEN" "${A-unset}"`
	out, err := exec.Command("/bin/sh", "-c", script).Output()
	if err != nil || string(out) != strange+"|" {
		t.Errorf("script\n%s\nprinted %q, %v; want %q", script, out, err, strange+"|")
	}
	if got := QuoteArgv([]string{"/usr/bin/fxd", "node", "--name", "a b", ""}); got != "/usr/bin/fxd node --name 'a b' ''" {
		t.Errorf("QuoteArgv = %q", got)
	}
}
